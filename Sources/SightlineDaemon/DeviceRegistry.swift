import Foundation
import Metrics
import SightlineCore

/// Every device discovery knows of, the camera policy's decision, and who is watching. The
/// discovery service feeds it; the camera service follows its decisions; the control API
/// reads it.
actor DeviceRegistry {
    private var devices: [String: DiscoveredDevice] = [:]
    private var order: [String] = []
    private var failures: [String: String] = [:]
    private var inUse: String?
    private var policy: CameraPolicy
    private var decisionWatchers: [UUID: AsyncStream<CameraPolicy.Decision>.Continuation] = [:]
    private var eventWatchers: [UUID: AsyncStream<DeviceEventRecord>.Continuation] = [:]
    private var addedAt: [String: ContinuousClock.Instant] = [:]
    private var pendingTick: Task<Void, Never>?
    private let hotplugEvents = Counter(label: "sightline_hotplug_events_total")

    init(policy: CameraPolicy) {
        self.policy = policy
    }

    // MARK: Discovery input

    /// - Parameter hotplug: true for a udev add event (its time starts the time-to-first-frame
    ///   clock), false for a device found by the enumeration at start.
    func added(_ device: DiscoveredDevice, hotplug: Bool) {
        if devices[device.syspath] == nil { order.append(device.syspath) }
        devices[device.syspath] = device
        failures[device.syspath] = nil
        addedAt[device.syspath] = hotplug ? .now : nil
        hotplugEvents.increment()
        updateCounts()
        publish(DeviceEventRecord(event: "added", role: device.role, identity: device.identity, devnode: device.devnode,
                                  detail: device.name, time: Date().timeIntervalSince1970))
        apply(policy.added(device, at: .now))
    }

    func removed(syspath: String) {
        guard let device = devices.removeValue(forKey: syspath) else { return }
        order.removeAll { $0 == syspath }
        failures[syspath] = nil
        hotplugEvents.increment()
        updateCounts()
        publish(DeviceEventRecord(event: "removed", role: device.role, identity: device.identity, devnode: device.devnode,
                                  detail: device.name, time: Date().timeIntervalSince1970))
        apply(policy.removed(syspath: syspath, at: .now))
    }

    // MARK: Camera service input

    func markInUse(_ syspath: String?) {
        inUse = syspath
        if let syspath { failures[syspath] = nil }
    }

    func markFailed(_ syspath: String, reason: String) {
        failures[syspath] = reason
        if inUse == syspath { inUse = nil }
        let device = devices[syspath]
        publish(DeviceEventRecord(event: "failed", role: device?.role, identity: device?.identity, devnode: device?.devnode,
                                  detail: reason, time: Date().timeIntervalSince1970))
        apply(policy.failed(syspath: syspath, at: .now))
    }

    /// When the device was last added, to measure the time to its first frame.
    func addedInstant(_ syspath: String) -> ContinuousClock.Instant? { addedAt[syspath] }

    // MARK: Outputs

    /// The camera decisions, starting with the current one.
    func cameraDecisions() -> AsyncStream<CameraPolicy.Decision> {
        let (stream, continuation) = AsyncStream.makeStream(of: CameraPolicy.Decision.self, bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        decisionWatchers[id] = continuation
        continuation.yield(policy.decision)
        continuation.onTermination = { _ in Task { await self.dropDecisionWatcher(id) } }
        return stream
    }

    /// Device events as they happen, for `sightctl devices --watch`. Bounded: a watcher that
    /// does not read loses the oldest events, never blocks discovery.
    func eventRecords() -> AsyncStream<DeviceEventRecord> {
        let (stream, continuation) = AsyncStream.makeStream(of: DeviceEventRecord.self, bufferingPolicy: .bufferingNewest(256))
        let id = UUID()
        eventWatchers[id] = continuation
        continuation.onTermination = { _ in Task { await self.dropEventWatcher(id) } }
        return stream
    }

    func finishWatchers() {
        for watcher in eventWatchers.values { watcher.finish() }
        for watcher in decisionWatchers.values { watcher.finish() }
        eventWatchers.removeAll()
        decisionWatchers.removeAll()
        pendingTick?.cancel()
    }

    func list() -> [DeviceStatus] {
        order.compactMap { syspath in
            guard let device = devices[syspath] else { return nil }
            if let reason = failures[syspath] { return DeviceStatus(device: device, state: .failed, reason: reason) }
            return DeviceStatus(device: device, state: inUse == syspath ? .inUse : .standby, reason: nil)
        }
    }

    // MARK: Internals

    private func dropDecisionWatcher(_ id: UUID) { decisionWatchers[id] = nil }
    private func dropEventWatcher(_ id: UUID) { eventWatchers[id] = nil }

    private func apply(_ decision: CameraPolicy.Decision?) {
        if let decision {
            for watcher in decisionWatchers.values { watcher.yield(decision) }
            if case .placeholder(let reason) = decision {
                publish(DeviceEventRecord(event: "placeholder", role: .camera, identity: nil, devnode: nil, detail: reason,
                                          time: Date().timeIntervalSince1970))
            }
        }
        scheduleTick()
    }

    /// A pending switch (after `switch_delay_ms`) needs a tick at its deadline.
    private func scheduleTick() {
        pendingTick?.cancel()
        guard let deadline = policy.pendingSwitchDeadline else { return }
        pendingTick = Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            guard !Task.isCancelled else { return }
            self.tick()
        }
    }

    private func tick() {
        apply(policy.tick(at: .now))
    }

    private func publish(_ record: DeviceEventRecord) {
        for watcher in eventWatchers.values { watcher.yield(record) }
    }

    private func updateCounts() {
        for role in DeviceRole.allCases {
            Gauge(label: "sightline_devices", dimensions: [("role", role.rawValue)])
                .record(devices.values.filter { $0.role == role }.count)
        }
    }
}
