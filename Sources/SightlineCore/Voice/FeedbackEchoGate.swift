/// Keeps the device from hearing itself. Spoken feedback says phrases ("Say finish recording to
/// cancel."), and on glasses the speaker sits next to the microphone: the recognizer would take
/// the device's own words for a command. So the voice tap is half duplex: audio captured while
/// feedback plays, and for a short echo tail after, does not reach the recognizer (a call still
/// hears it). The technician cannot talk over feedback; feedback is a second or two.
public struct FeedbackEchoGate: Sendable, Equatable {
    /// Room echo and the speaker's own buffering after the last sample was handed over.
    public static let echoTail = Duration.milliseconds(400)

    private var playing = 0
    private var playingSince: Duration?
    private var closedUntil: Duration?

    public init() {}

    /// Feedback starts playing at `now` (CLOCK_MONOTONIC).
    public mutating func began(at now: Duration) {
        if playing == 0 { playingSince = now }
        playing += 1
    }

    /// Feedback handed its last sample to the speaker at `now`.
    public mutating func ended(at now: Duration) {
        playing = max(0, playing - 1)
        guard playing == 0 else { return }
        playingSince = nil
        closedUntil = now + Self.echoTail
    }

    /// Audio kept from the recognizer so far, for `sightctl audio`.
    public private(set) var withheld = Duration.zero

    /// Whether audio captured at `captured` may reach the recognizer.
    public func admits(capturedAt captured: Duration) -> Bool {
        if let playingSince, captured >= playingSince { return false }
        if let closedUntil, captured < closedUntil { return false }
        return true
    }

    /// `admits`, counting what it keeps back (`length` of audio captured at `captured`).
    public mutating func pass(capturedAt captured: Duration, length: Duration) -> Bool {
        let admitted = admits(capturedAt: captured)
        if !admitted { withheld += length }
        return admitted
    }
}
