import Foundation
import Metrics
import SightlineCore
import Synchronization

/// Every device discovery knows of, the policies' decisions (the camera's, and the
/// microphone's and speaker's when the configuration names preferred ones), and who is
/// watching. The discovery service feeds it; the camera and audio services follow its
/// decisions; the control API reads it.
actor DeviceRegistry {
    private var devices: [String: DiscoveredDevice] = [:]
    private var order: [String] = []
    private var failures: [String: String] = [:]
    /// The device each role's service runs now, with why it was chosen.
    private var inUse: [DeviceRole: (syspath: String, why: String?)] = [:]
    private var policies: [DeviceRole: DevicePolicy]
    private var decisionWatchers: [UUID: (role: DeviceRole, continuation: AsyncStream<DevicePolicy.Decision>.Continuation)] = [:]
    private var eventWatchers: [UUID: AsyncStream<DeviceEventRecord>.Continuation] = [:]
    private var addedAt: [String: AddEvent] = [:]
    private var pendingTick: Task<Void, Never>?
    private let hotplugEvents = Counter(label: "sightline_hotplug_events_total")
    /// Made once rather than looked up in the metrics registry on every device event.
    private let deviceGauges: [DeviceRole: Gauge]
    /// Whether discovery holds device events it has not passed on yet.
    nonisolated let pendingEvents = PendingEventsProbe()

    /// - Parameter policies: at most one per role.
    init(policies: [DevicePolicy]) {
        self.policies = Dictionary(policies.map { ($0.role, $0) }) { first, _ in first }
        deviceGauges = Dictionary(uniqueKeysWithValues: DeviceRole.allCases.map { role in
            (role, Gauge(label: "sightline_devices", dimensions: [("role", role.rawValue)]))
        })
    }

    // MARK: Discovery input

    /// When a device's udev add event was received and when it reached the registry.
    struct AddEvent: Sendable {
        let received: ContinuousClock.Instant
        /// When discovery's task took the event from the monitor thread.
        let dequeued: ContinuousClock.Instant
        let registered: ContinuousClock.Instant
        /// When the policy had decided on it (and its decision was passed on).
        var decided: ContinuousClock.Instant?
    }

    /// - Parameters:
    ///   - hotplug: true for a udev add event (its time starts the time-to-first-frame clock),
    ///     false for a device found by the enumeration at start.
    ///   - receivedAt: when discovery received the event (default: now).
    func added(_ device: DiscoveredDevice, hotplug: Bool, receivedAt: ContinuousClock.Instant? = nil,
               dequeuedAt: ContinuousClock.Instant? = nil) {
        if devices[device.syspath] == nil { order.append(device.syspath) }
        devices[device.syspath] = device
        failures[device.syspath] = nil
        let now = ContinuousClock.now
        addedAt[device.syspath] = hotplug ? AddEvent(received: receivedAt ?? now, dequeued: dequeuedAt ?? now, registered: now) : nil
        // The decision first: the rest is bookkeeping nobody waits for.
        apply(role: device.role) { $0.added(device, at: .now) }
        if hotplug { addedAt[device.syspath]?.decided = .now }
        hotplugEvents.increment()
        updateCounts()
        publish(DeviceEventRecord(event: "added", role: device.role, identity: device.identity, devnode: device.devnode,
                                  detail: device.name, time: Date().timeIntervalSince1970))
    }

    func removed(syspath: String) {
        guard let device = devices.removeValue(forKey: syspath) else { return }
        order.removeAll { $0 == syspath }
        failures[syspath] = nil
        hotplugEvents.increment()
        updateCounts()
        publish(DeviceEventRecord(event: "removed", role: device.role, identity: device.identity, devnode: device.devnode,
                                  detail: device.name, time: Date().timeIntervalSince1970))
        apply(role: device.role) { $0.removed(syspath: syspath, at: .now) }
    }

    // MARK: Camera and audio service input

    /// The service of `role` runs `syspath` now (nil: none), chosen for `why` when known.
    func markInUse(_ syspath: String?, role: DeviceRole = .camera, why: String? = nil) {
        inUse[role] = syspath.map { ($0, why) }
        if let syspath { failures[syspath] = nil }
    }

    func markFailed(_ syspath: String, reason: String) {
        guard let device = devices[syspath] else { return }
        failures[syspath] = reason
        if inUse[device.role]?.syspath == syspath { inUse[device.role] = nil }
        publish(DeviceEventRecord(event: "failed", role: device.role, identity: device.identity, devnode: device.devnode,
                                  detail: reason, time: Date().timeIntervalSince1970))
        apply(role: device.role) { $0.failed(syspath: syspath, at: .now) }
    }

    /// Why the policy of the device's role would use it (which preference it matches).
    func reason(for device: DiscoveredDevice) -> String? {
        policies[device.role]?.reason(for: device)
    }

    /// When the device was last added, to measure the time to its first frame.
    func addEvent(_ syspath: String) -> AddEvent? { addedAt[syspath] }

    // MARK: Outputs

    /// The role's decision now (nil: the role has no policy).
    func decision(for role: DeviceRole) -> DevicePolicy.Decision? { policies[role]?.decision }

    /// The camera decisions, starting with the current one.
    func cameraDecisions() -> AsyncStream<DevicePolicy.Decision> { decisions(for: .camera) }

    /// The decisions of the role's policy, starting with the current one; a role without a
    /// policy yields nothing.
    func decisions(for role: DeviceRole) -> AsyncStream<DevicePolicy.Decision> {
        let (stream, continuation) = AsyncStream.makeStream(of: DevicePolicy.Decision.self, bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        decisionWatchers[id] = (role, continuation)
        if let decision = policies[role]?.decision { continuation.yield(decision) }
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
        for watcher in decisionWatchers.values { watcher.continuation.finish() }
        eventWatchers.removeAll()
        decisionWatchers.removeAll()
        pendingTick?.cancel()
    }

    func list() -> [DeviceStatus] {
        order.compactMap { syspath in
            guard let device = devices[syspath] else { return nil }
            if let reason = failures[syspath] { return DeviceStatus(device: device, state: .failed, reason: reason) }
            guard let used = inUse[device.role], used.syspath == syspath else { return DeviceStatus(device: device, state: .standby, reason: nil) }
            return DeviceStatus(device: device, state: .inUse, reason: nil, why: used.why)
        }
    }

    // MARK: Internals

    private func dropDecisionWatcher(_ id: UUID) { decisionWatchers[id] = nil }
    private func dropEventWatcher(_ id: UUID) { eventWatchers[id] = nil }

    /// Feeds the role's policy (if there is one) and passes on a changed decision.
    private func apply(role: DeviceRole, _ change: (inout DevicePolicy) -> DevicePolicy.Decision?) {
        guard var policy = policies[role] else { return }
        let decision = change(&policy)
        policies[role] = policy
        if let decision {
            for watcher in decisionWatchers.values where watcher.role == role { watcher.continuation.yield(decision) }
            if case .placeholder(let reason) = decision {
                publish(DeviceEventRecord(event: "placeholder", role: role, identity: nil, devnode: nil, detail: reason,
                                          time: Date().timeIntervalSince1970))
            }
        }
        scheduleTick()
    }

    /// A pending switch (after the role's switch delay) needs a tick at its deadline.
    private func scheduleTick() {
        pendingTick?.cancel()
        guard let deadline = policies.values.compactMap(\.pendingSwitchDeadline).min() else { return }
        pendingTick = Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            guard !Task.isCancelled else { return }
            self.tick()
        }
    }

    private func tick() {
        for role in policies.keys { apply(role: role) { $0.tick(at: .now) } }
    }

    private func publish(_ record: DeviceEventRecord) {
        for watcher in eventWatchers.values { watcher.yield(record) }
    }

    private func updateCounts() {
        for (role, gauge) in deviceGauges {
            gauge.record(devices.values.filter { $0.role == role }.count)
        }
    }
}

/// Asks discovery whether device events are still on their way, for the camera service to hold
/// back an open that the next events of a burst may change. Answers false when no discovery runs.
final class PendingEventsProbe: Sendable {
    private let probe = Mutex<(@Sendable () -> Bool)?>(nil)

    func attach(_ body: (@Sendable () -> Bool)?) {
        probe.withLock { $0 = body }
    }

    var any: Bool { probe.withLock { $0 }?() ?? false }
}
