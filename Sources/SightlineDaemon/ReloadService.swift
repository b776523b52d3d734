import Logging
import ServiceLifecycle
import UnixSignals
import SightlineCore
import SightlineSystem

/// SIGHUP re-reads the configuration file. A bad file is reported and ignored (the daemon
/// keeps the configuration it runs with); keys marked reloadable take effect at once, and a
/// change to any other key is reported as needing a restart.
struct ReloadService: Service {
    let configurationPath: String?
    let running: DaemonConfiguration
    let logLevel: LogLevelSetting
    let notifier: SystemdNotifier
    let logger: Logger

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        var current = running
        for await _ in hangups.cancelOnGracefulShutdown() {
            guard let path = configurationPath else {
                logger.notice("SIGHUP: running on embedded defaults; nothing to reload")
                continue
            }
            notifier.reloading()
            do {
                let fresh = try DaemonConfiguration.load(path: path)
                let restartNeeded = ConfigurationChanges.keysNeedingRestart(from: current, to: fresh)
                if let level = Logger.Level(rawValue: fresh.logLevel) { logLevel.set(level) }
                current.logLevel = fresh.logLevel
                if restartNeeded.isEmpty {
                    logger.notice("configuration reloaded", metadata: ["file": "\(path)"])
                } else {
                    logger.warning("configuration reloaded; some changes need a restart (systemctl restart sightlined)",
                                   metadata: ["keys": "\(restartNeeded.joined(separator: ","))"])
                }
            } catch {
                for diagnostic in error.diagnostics {
                    logger.error("configuration not reloaded: \(diagnostic)")
                }
            }
            notifier.ready(status: "running; configuration \(path)")
        }
    }
}

enum ConfigurationChanges {
    /// Keys whose new value only takes effect after a restart.
    static func keysNeedingRestart(from old: DaemonConfiguration, to new: DaemonConfiguration) -> [String] {
        var oldAdjusted = old
        oldAdjusted.logLevel = new.logLevel
        guard oldAdjusted != new else { return [] }
        var keys: [String] = []
        if old.stateDirectory != new.stateDirectory { keys.append("state_directory") }
        if old.controlSocket != new.controlSocket { keys.append("control.socket") }
        if old.controlGroup != new.controlGroup { keys.append("control.group") }
        if old.metricsEnabled != new.metricsEnabled { keys.append("metrics.enabled") }
        if old.metricsListen != new.metricsListen { keys.append("metrics.listen") }
        if old.shutdownBudgetSeconds != new.shutdownBudgetSeconds { keys.append("shutdown.budget_seconds") }
        if old.watchdogStallSeconds != new.watchdogStallSeconds { keys.append("watchdog.stall_seconds") }
        if old.camera != new.camera { keys.append("camera") }
        if old.faultInjection != new.faultInjection { keys.append("debug.fault_injection") }
        return keys
    }
}
