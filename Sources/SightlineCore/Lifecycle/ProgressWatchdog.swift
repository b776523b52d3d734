/// Decides whether the daemon may tell systemd `WATCHDOG=1`: only while every registered main
/// loop has made progress recently. A loop that stalls therefore leads to a watchdog kill and
/// a restart, instead of a daemon that looks alive while doing nothing.
///
/// Pure state: the caller supplies the time, so tests drive it with a mock clock.
public struct ProgressWatchdog: Sendable {
    public struct Stall: Sendable, Equatable {
        public let loop: String
        public let silentFor: Duration
    }

    private var lastProgress: [String: ContinuousClock.Instant] = [:]
    public let stallAfter: Duration

    public init(stallAfter: Duration) {
        self.stallAfter = stallAfter
    }

    /// A loop joins at `now`; it counts as fresh until `stallAfter` passes without progress.
    public mutating func register(_ loop: String, at now: ContinuousClock.Instant) {
        lastProgress[loop] = now
    }

    public mutating func unregister(_ loop: String) {
        lastProgress[loop] = nil
    }

    public mutating func progress(_ loop: String, at now: ContinuousClock.Instant) {
        guard lastProgress[loop] != nil else { return }
        lastProgress[loop] = now
    }

    /// The loops that have been silent for longer than `stallAfter`, longest first.
    public func stalls(at now: ContinuousClock.Instant) -> [Stall] {
        lastProgress
            .map { Stall(loop: $0.key, silentFor: now - $0.value) }
            .filter { $0.silentFor > stallAfter }
            .sorted { $0.silentFor > $1.silentFor }
    }

    public func mayPing(at now: ContinuousClock.Instant) -> Bool {
        stalls(at: now).isEmpty
    }
}
