import CSystemd
import Foundation

/// Talks to systemd's notification socket (`sd_notify(3)`): readiness, status lines, watchdog
/// pings, reload and stop announcements. Without `NOTIFY_SOCKET` (running in a terminal) every
/// call is a no-op, so the daemon runs unchanged outside systemd.
public struct SystemdNotifier: Sendable {
    public init() {}

    /// Whether a service manager listens (`NOTIFY_SOCKET` is set).
    public var isSupervised: Bool {
        ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] != nil
    }

    /// The watchdog interval systemd asked for (`WatchdogSec=`), or nil when no watchdog is
    /// configured for this process (`sd_watchdog_enabled(3)`).
    public var watchdogInterval: Duration? {
        var microseconds: UInt64 = 0
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return .microseconds(Int64(clamping: microseconds))
    }

    public func ready(status: String) { send("READY=1\nSTATUS=\(status)") }
    public func status(_ text: String) { send("STATUS=\(text)") }
    public func watchdogPing() { send("WATCHDOG=1") }
    public func stopping(status: String) { send("STOPPING=1\nSTATUS=\(status)") }

    /// `RELOADING=1` with the monotonic timestamp systemd 253+ expects for `Type=notify-reload`.
    public func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        send("RELOADING=1\nMONOTONIC_USEC=\(microseconds)")
    }

    private func send(_ message: String) {
        // A failed notification cannot be reported anywhere useful; systemd's own timeouts
        // (start, watchdog) are the backstop.
        _ = sd_notify(0, message)
    }
}
