import CUdev
import Foundation
import SightlineCamera
import SightlineCore
import Synchronization

/// A device appearing or going away, as udev reports it.
public enum DeviceEvent: Sendable, Equatable {
    /// `receivedAt`: when the monitor thread took the event off the netlink socket, where the
    /// time to a re-added camera's first frame starts.
    case added(DiscoveredDevice, receivedAt: ContinuousClock.Instant)
    case removed(syspath: String, role: DeviceRole)
    /// Events were lost (the kernel drops them when the monitor's socket buffer is full, and
    /// `events` when the consumer falls `eventBufferLimit` behind) and the devices were read
    /// again: the `added`/`removed` events that follow bring the consumer up to date.
    case resynchronized
}

/// Finds cameras, sound devices and buttons with libudev: an enumeration at start, then the
/// netlink monitor ("udev" events once udevd has processed a device, "kernel" events where no
/// udevd runs) on a dedicated thread that blocks in `poll` on the monitor and an eventfd.
public final class UdevDiscovery: Sendable {
    static let subsystems = ["video4linux", "sound", "input"]
    /// Events for the daemon; bounded, since a burst of uevents must not grow memory without limit.
    public let events: AsyncStream<DeviceEvent>
    private let continuation: AsyncStream<DeviceEvent>.Continuation
    private let wakeFD: Int32
    private let source: String
    private let done = Atomic<Bool>(false)
    /// The devices as the consumer will know them once it has read every event yielded: a
    /// change whose event `events` dropped is taken back here, so the next `resynchronize`
    /// reports it again.
    private let known = Mutex<[String: DiscoveredDevice]>([:])
    /// Events yielded and not yet marked handled by the consumer (`handled()`).
    private let backlog = Atomic<Int>(0)
    /// Events were lost: the monitor thread reads the devices again once the consumer has
    /// caught up (room in `events` for what the reading reports).
    private let needsResynchronizing = Atomic<Bool>(false)
    /// The monitor's netlink socket while the monitor thread runs, else -1.
    private let monitorFD = Atomic<Int32>(-1)

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Whether udevd runs here: without it only raw kernel events exist, with fewer properties.
    public static var udevdRunning: Bool { FileManager.default.fileExists(atPath: "/run/udev/control") }

    /// - Parameter eventBufferLimit: how many events `events` holds for a consumer that is
    ///   behind; beyond it events are dropped and the devices read again once it has caught up.
    public init(eventBufferLimit: Int = 1024) throws(Failure) {
        (events, continuation) = AsyncStream.makeStream(of: DeviceEvent.self, bufferingPolicy: .bufferingOldest(eventBufferLimit))
        source = Self.udevdRunning ? "udev" : "kernel"
        wakeFD = cudev_eventfd()
        guard wakeFD >= 0 else { throw Failure(description: "eventfd failed: \(String(cString: strerror(errno)))") }
    }

    // Closed here rather than when the monitor thread ends: `handled()` may still wake it.
    deinit { close(wakeFD) }

    /// The devices present now (`udev_enumerate`).
    public func enumerate() -> [DiscoveredDevice] {
        let found = scan()
        known.withLock { map in for device in found { map[device.syspath] = device } }
        return found
    }

    private func scan() -> [DiscoveredDevice] {
        guard let udev = udev_new() else { return [] }
        defer { udev_unref(udev) }
        guard let enumerate = udev_enumerate_new(udev) else { return [] }
        defer { udev_enumerate_unref(enumerate) }
        for subsystem in Self.subsystems { udev_enumerate_add_match_subsystem(enumerate, subsystem) }
        udev_enumerate_scan_devices(enumerate)
        var found: [DiscoveredDevice] = []
        var entry = udev_enumerate_get_list_entry(enumerate)
        while let current = entry {
            if let syspath = udev_list_entry_get_name(current),
               let device = udev_device_new_from_syspath(udev, syspath) {
                // udev_device_new_from_syspath returns an owned reference.
                if let discovered = Self.classify(device, waitForCard: waitsForSoundCards) { found.append(discovered) }
                udev_device_unref(device)
            }
            entry = udev_list_entry_get_next(current)
        }
        return found
    }

    /// Brings the consumer up to date after events were lost: devices known but no longer
    /// present are reported removed, present ones that are new or changed added.
    func resynchronize() {
        needsResynchronizing.store(false, ordering: .sequentiallyConsistent)
        let receivedAt = ContinuousClock.now
        let present = scan()
        let presentPaths = Set(present.map(\.syspath))
        let gone = known.withLock { map in
            let gone = map.values.filter { !presentPaths.contains($0.syspath) }
            for device in gone { map[device.syspath] = nil }
            return gone
        }
        _ = yield(.resynchronized)
        for device in gone { reportRemoved(device) }
        for device in present { report(device, receivedAt: receivedAt) }
    }

    /// Starts the monitor thread. Events arrive on `events` until `stop()`.
    public func start() throws(Failure) {
        guard let udev = udev_new() else { throw Failure(description: "udev_new failed") }
        guard let monitor = udev_monitor_new_from_netlink(udev, source) else {
            udev_unref(udev)
            throw Failure(description: "cannot listen for \(source) device events (netlink): is AF_NETLINK allowed?")
        }
        for subsystem in Self.subsystems { udev_monitor_filter_add_match_subsystem_devtype(monitor, subsystem, nil) }
        // As udevadm and systemd's own monitors do: a burst (a hub of devices, a driver
        // registering many nodes) must not overflow the socket. Without CAP_NET_ADMIN the kernel
        // caps it at net.core.rmem_max; what still overflows is caught by `resynchronize`.
        _ = udev_monitor_set_receive_buffer_size(monitor, 16 << 20)
        guard udev_monitor_enable_receiving(monitor) >= 0 else {
            udev_monitor_unref(monitor)
            udev_unref(udev)
            throw Failure(description: "cannot receive \(source) device events")
        }
        let handles = MonitorHandles(udev: udev, monitor: monitor)
        let thread = Thread { [self] in
            self.monitorLoop(handles)
            udev_monitor_unref(handles.monitor)
            udev_unref(handles.udev)
        }
        thread.name = "udev monitor"
        thread.start()
    }

    /// Ends the monitor thread and the event stream.
    public func stop() {
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        wakeMonitor()
    }

    private func wakeMonitor() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, MemoryLayout<UInt64>.size)
    }

    /// "udev" or "kernel": which netlink source the monitor listens to.
    public var eventSource: String { source }

    /// The consumer has handled one event from `events`.
    public func handled() {
        let left = backlog.subtract(1, ordering: .sequentiallyConsistent).newValue
        // Caught up after a drop: the monitor thread may be waiting in `poll` for this.
        if left == 0, needsResynchronizing.load(ordering: .sequentiallyConsistent) { wakeMonitor() }
    }

    /// Whether more device events are on their way: yielded and not yet handled, or waiting
    /// on the netlink socket for the monitor thread. Lets a consumer hold back an action that
    /// the next events in a burst may change (a better camera among them).
    public var hasPendingEvents: Bool {
        if backlog.load(ordering: .relaxed) > 0 { return true }
        let fd = monitorFD.load(ordering: .relaxed)
        guard fd >= 0 else { return false }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0 && descriptor.revents & Int16(POLLIN) != 0
    }

    private func monitorLoop(_ handles: MonitorHandles) {
        let monitorFD = udev_monitor_get_fd(handles.monitor)
        self.monitorFD.store(monitorFD, ordering: .relaxed)
        defer {
            self.monitorFD.store(-1, ordering: .relaxed)
            continuation.finish()
        }
        var descriptors = [pollfd(fd: monitorFD, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        while true {
            // After lost events, once the consumer has caught up. Both this thread and
            // `handled()` check after their own update, so one of them sees the other's.
            if needsResynchronizing.load(ordering: .sequentiallyConsistent), backlog.load(ordering: .sequentiallyConsistent) == 0 {
                resynchronize()
            }
            descriptors[0].revents = 0
            descriptors[1].revents = 0
            let ready = poll(&descriptors, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if descriptors[1].revents != 0 {
                var count: UInt64 = 0
                _ = read(wakeFD, &count, MemoryLayout<UInt64>.size)
                if done.load(ordering: .acquiring) { return }
                if descriptors[0].revents == 0 { continue }
            }
            // udev_monitor_receive_device returns an owned reference, or nil on a bad message or
            // when the kernel dropped events because the socket's buffer was full.
            guard let device = udev_monitor_receive_device(handles.monitor) else {
                if errno == ENOBUFS { needsResynchronizing.store(true, ordering: .sequentiallyConsistent) }
                continue
            }
            // In the backlog from here: off the socket and not yet yielded.
            backlog.add(1, ordering: .sequentiallyConsistent)
            defer {
                backlog.subtract(1, ordering: .sequentiallyConsistent)
                udev_device_unref(device)
            }
            let receivedAt = ContinuousClock.now
            let action = udev_device_get_action(device).map { String(cString: $0) } ?? ""
            let syspath = udev_device_get_syspath(device).map { String(cString: $0) } ?? ""
            switch action {
            case "add", "change", "bind":
                if Self.isInitializedSoundCard(device) {
                    // The card is set up (its change event follows its last node's, see
                    // `waitsForSoundCards`): its PCM nodes can be reported with its properties.
                    for discovered in Self.soundNodes(of: device, udev: handles.udev) { report(discovered, receivedAt: receivedAt) }
                    continue
                }
                guard let discovered = Self.classify(device, waitForCard: waitsForSoundCards) else { continue }
                report(discovered, receivedAt: receivedAt)
            case "remove":
                if let gone = known.withLock({ $0.removeValue(forKey: syspath) }) { reportRemoved(gone) }
            default:
                continue
            }
        }
    }

    /// Yields a device unless it was reported before exactly like this.
    private func report(_ discovered: DiscoveredDevice, receivedAt: ContinuousClock.Instant) {
        let before = known.withLock { map in
            defer { map[discovered.syspath] = discovered }
            return map[discovered.syspath]
        }
        guard before != discovered else { return }
        if !yield(.added(discovered, receivedAt: receivedAt)) {
            known.withLock { $0[discovered.syspath] = before }
        }
    }

    /// Yields the removal of a device already taken out of `known`.
    private func reportRemoved(_ device: DiscoveredDevice) {
        if !yield(.removed(syspath: device.syspath, role: device.role)) {
            known.withLock { $0[device.syspath] = device }
        }
    }

    /// Yields an event, counted in the backlog until the consumer calls `handled()`; false
    /// when `events` was full and dropped it (the devices are read again once it has room).
    private func yield(_ event: DeviceEvent) -> Bool {
        backlog.add(1, ordering: .sequentiallyConsistent)
        guard case .dropped = continuation.yield(event) else { return true }
        backlog.subtract(1, ordering: .sequentiallyConsistent)
        needsResynchronizing.store(true, ordering: .sequentiallyConsistent)
        return false
    }

    /// With udevd, a sound card's PCM nodes are reported once the card is initialised: the
    /// kernel adds them before udevd has written the card's properties (78-sound-card.rules sets
    /// `SOUND_INITIALIZED` on the card's change event after its last node), and a node reported
    /// earlier would lack the properties preferences match on. Without udevd there is nothing
    /// to wait for.
    private var waitsForSoundCards: Bool { source == "udev" }

    /// A sound card (`card1`, borrowed) whose udev setup is complete.
    static func isInitializedSoundCard(_ device: OpaquePointer) -> Bool {
        guard let subsystem = udev_device_get_subsystem(device), String(cString: subsystem) == "sound",
              let sysname = udev_device_get_sysname(device), String(cString: sysname).hasPrefix("card") else { return false }
        return udev_device_get_property_value(device, "SOUND_INITIALIZED") != nil
    }

    /// The PCM nodes of a sound card (borrowed), classified.
    static func soundNodes(of card: OpaquePointer, udev: OpaquePointer) -> [DiscoveredDevice] {
        guard let enumerate = udev_enumerate_new(udev) else { return [] }
        defer { udev_enumerate_unref(enumerate) }
        udev_enumerate_add_match_parent(enumerate, card)
        udev_enumerate_add_match_subsystem(enumerate, "sound")
        udev_enumerate_scan_devices(enumerate)
        var found: [DiscoveredDevice] = []
        var entry = udev_enumerate_get_list_entry(enumerate)
        while let current = entry {
            // udev_device_new_from_syspath returns an owned reference.
            if let syspath = udev_list_entry_get_name(current), let node = udev_device_new_from_syspath(udev, syspath) {
                if let discovered = classify(node, waitForCard: false) { found.append(discovered) }
                udev_device_unref(node)
            }
            entry = udev_list_entry_get_next(current)
        }
        return found
    }

    /// A PCM node has no identifying properties of its own: udev puts the USB or PCI ids on its
    /// card (78-sound-card.rules) and `ID_PATH` on the card or its control node
    /// (60-persistent-alsa.rules). They are copied onto the node, with the card's ALSA id (what
    /// `hw:CARD=…` names) as `NAME`. Nil while the card is not initialised and `waitForCard`.
    private static func cardProperties(of device: OpaquePointer, waitForCard: Bool) -> [String: String]? {
        func text(_ pointer: UnsafePointer<CChar>?) -> String? { pointer.map { String(cString: $0) } }
        // Borrowed: the parent belongs to the child device.
        guard let card = udev_device_get_parent_with_subsystem_devtype(device, "sound", nil) else { return [:] }
        if waitForCard, udev_device_get_property_value(card, "SOUND_INITIALIZED") == nil { return nil }
        var properties: [String: String] = [:]
        var entry = udev_device_get_properties_list_entry(card)
        while let current = entry {
            if let name = text(udev_list_entry_get_name(current)), name.hasPrefix("ID_") || name == "SOUND_FORM_FACTOR" {
                properties[name] = text(udev_list_entry_get_value(current)) ?? ""
            }
            entry = udev_list_entry_get_next(current)
        }
        if properties["ID_PATH"] == nil, let number = text(udev_device_get_sysattr_value(card, "number")),
           let udev = udev_device_get_udev(device),
           let control = udev_device_new_from_subsystem_sysname(udev, "sound", "controlC\(number)") {
            // Owned reference.
            properties["ID_PATH"] = text(udev_device_get_property_value(control, "ID_PATH"))
            udev_device_unref(control)
        }
        if let id = text(udev_device_get_sysattr_value(card, "id")) { properties["NAME"] = id }
        return properties
    }

    /// Reads a udev device (borrowed) into the classifier's terms; nil for a PCM node whose
    /// card is not initialised yet when `waitForCard`.
    static func classify(_ device: OpaquePointer, waitForCard: Bool) -> DiscoveredDevice? {
        func text(_ pointer: UnsafePointer<CChar>?) -> String? { pointer.map { String(cString: $0) } }
        guard let subsystem = text(udev_device_get_subsystem(device)),
              let sysname = text(udev_device_get_sysname(device)),
              let syspath = text(udev_device_get_syspath(device)) else { return nil }
        var properties: [String: String] = [:]
        var entry = udev_device_get_properties_list_entry(device)
        while let current = entry {
            if let name = text(udev_list_entry_get_name(current)) {
                properties[name] = text(udev_list_entry_get_value(current)) ?? ""
            }
            entry = udev_list_entry_get_next(current)
        }
        // The node's own name ("vivid-001-vid-cap", a UVC camera's product) tells apart
        // several cameras behind one platform device, which share ID_PATH.
        if let name = text(udev_device_get_sysattr_value(device, "name")) { properties["NAME"] = name }
        if subsystem == "sound", sysname.hasPrefix("pcmC") {
            guard let card = cardProperties(of: device, waitForCard: waitForCard) else { return nil }
            properties.merge(card) { own, _ in own }
        }
        var links: [String] = []
        entry = udev_device_get_devlinks_list_entry(device)
        while let current = entry {
            if let link = text(udev_list_entry_get_name(current)) { links.append(link) }
            entry = udev_list_entry_get_next(current)
        }
        let devnode = text(udev_device_get_devnode(device))
        var captureCapable: Bool?
        if subsystem == "video4linux", properties["ID_V4L_CAPABILITIES"] == nil, let devnode {
            // No udevd to run v4l_id: ask the driver ourselves.
            captureCapable = (try? V4L2Camera(path: devnode)).map { camera in
                camera.close()
                return true
            } ?? false
        }
        return DeviceClassifier.classify(subsystem: subsystem, sysname: sysname, syspath: syspath, devnode: devnode,
                                         properties: properties, links: links, captureCapable: captureCapable)
    }
}

/// The monitor thread's libudev handles; only that thread touches them after start.
private struct MonitorHandles: @unchecked Sendable {
    let udev: OpaquePointer
    let monitor: OpaquePointer
}
