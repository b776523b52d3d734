import Logging
import Metrics
import ServiceLifecycle
import SightlineCore
import SightlineSystem

/// Pings systemd's watchdog (`WATCHDOG=1`) at half the interval systemd asked for, but only
/// while every main loop makes progress. A stalled loop silences the pings, and systemd kills
/// and restarts the daemon: better a restart than a daemon that only looks alive.
struct WatchdogService: Service {
    let state: DaemonState
    let notifier: SystemdNotifier
    let logger: Logger
    /// How often to check when systemd configured no watchdog: stalls are still logged.
    let unsupervisedCheckInterval: Duration

    func run() async throws {
        let interval = notifier.watchdogInterval.map { $0 / 2 } ?? unsupervisedCheckInterval
        let pings = Counter(label: "sightline_watchdog_pings_total")
        let stalledLoops = Gauge(label: "sightline_watchdog_stalled_loops")
        let supervised = notifier.watchdogInterval != nil
        await state.set("watchdog", .running, supervised ? "pinging systemd every \(interval)" : "no systemd watchdog; checking loops")
        var reported: Set<String> = []
        while !Task.isShuttingDownGracefully {
            let stalls = await state.stalls()
            stalledLoops.record(stalls.count)
            if stalls.isEmpty {
                if supervised {
                    notifier.watchdogPing()
                    pings.increment()
                }
                if !reported.isEmpty {
                    logger.notice("all main loops make progress again; watchdog pings resumed")
                    reported.removeAll()
                    await state.set("watchdog", .running, "all loops make progress")
                }
            } else {
                for stall in stalls where !reported.contains(stall.loop) {
                    logger.error("main loop stalled; withholding WATCHDOG=1 so systemd restarts the daemon",
                                 metadata: ["loop": "\(stall.loop)", "silent_for": "\(stall.silentFor)"])
                    reported.insert(stall.loop)
                }
                let names = stalls.map(\.loop).joined(separator: ", ")
                await state.set("watchdog", .degraded, "stalled: \(names)")
                notifier.status("stalled: \(names)")
            }
            try? await Task.sleep(for: interval)
        }
    }
}
