import Logging
import ServiceLifecycle
import SightlineCore
import SightlineDiscovery

/// Runs udev discovery: the devices present at start, then hotplug events, into the registry.
struct DiscoveryService: Service {
    let registry: DeviceRegistry
    let state: DaemonState
    let logger: Logger

    func run() async throws {
        let discovery: UdevDiscovery
        do {
            discovery = try UdevDiscovery()
            try discovery.start()
        } catch {
            logger.error("device discovery unavailable; devices present now are used, hotplug is not seen",
                         metadata: ["reason": "\(error)"])
            await state.set("discovery", .degraded, "\(error)")
            try await gracefulShutdown()
            return
        }
        // Start listening before enumerating, so nothing plugged in between is missed.
        for device in discovery.enumerate() { await registry.added(device, hotplug: false) }
        let source = discovery.eventSource
        registry.pendingEvents.attach { discovery.hasPendingEvents }
        defer { registry.pendingEvents.attach(nil) }
        await state.set("discovery", .running, "watching \(source) events for cameras, sound devices and buttons")
        logger.info("device discovery running", metadata: ["source": "\(source)"])
        await withGracefulShutdownHandler {
            for await event in discovery.events {
                switch event {
                case .added(let device, let receivedAt):
                    // Logged once the registry has it: the log line is not on the way to a camera's first frame.
                    await registry.added(device, hotplug: true, receivedAt: receivedAt, dequeuedAt: .now)
                    discovery.handled()
                    logger.info("device added", metadata: ["role": "\(device.role.rawValue)", "identity": "\(device.identity)", "node": "\(device.devnode)"])
                case .resynchronized:
                    discovery.handled()
                    logger.warning("device events were lost (the kernel's buffer or the daemon's queue for them was full); the device list was read again")
                case .removed(let syspath, let role):
                    await registry.removed(syspath: syspath)
                    discovery.handled()
                    logger.info("device removed", metadata: ["role": "\(role.rawValue)", "syspath": "\(syspath)"])
                }
            }
        } onGracefulShutdown: {
            discovery.stop()
        }
        await registry.finishWatchers()
        await state.set("discovery", .stopped, "shut down")
    }
}
