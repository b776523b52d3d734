/// Turns noisy per-chunk capture times (now minus the latency the sound system reports) into
/// frame timestamps that advance by exactly the audio's duration, follow the measurements slowly
/// (sound card clocks drift from CLOCK_MONOTONIC), and jump only where samples were lost.
///
/// Steady timestamps matter downstream: the far end's jitter buffer and mouth-to-ear figures
/// read them as a media clock.
public struct CaptureClock: Sendable {
    public let format: AudioFormat
    /// A measurement this far ahead of the running clock means samples were lost.
    public let gapTolerance: Duration
    private var next: Duration?

    public init(format: AudioFormat, gapTolerance: Duration = .milliseconds(80)) {
        self.format = format
        self.gapTolerance = gapTolerance
    }

    /// The timestamp of a chunk of `frames` samples per channel whose first sample was measured
    /// at `measured`, and whether the stream skipped ahead (samples lost) before it.
    public mutating func stamp(frames: Int, measured: Duration) -> (timestamp: Duration, gap: Bool) {
        let duration = format.duration(frames: frames)
        guard let expected = next else {
            next = measured + duration
            return (measured, false)
        }
        if measured - expected > gapTolerance {
            next = measured + duration
            return (measured, true)
        }
        // Follow the measurements by 1/64 of the difference, at most a quarter chunk: smooths
        // jitter, tracks drift, and keeps timestamps rising even when a source runs unpaced.
        let limit = duration / 4
        let timestamp = expected + min(limit, max(.zero - limit, (measured - expected) / 64))
        next = timestamp + duration
        return (timestamp, false)
    }

    /// Forget the running clock, e.g. after a reconnect.
    public mutating func reset() { next = nil }
}
