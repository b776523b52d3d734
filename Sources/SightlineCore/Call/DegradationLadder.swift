/// Steps the live video down when the link cannot carry it and back up when it recovers
/// (docs/PROTOCOL.md, "Degradation ladder"): a frozen picture is worse for an expert than a
/// smaller one, stills on request are better than nothing, and when even stills do not get
/// through, the voice channel alone keeps the technician and the expert talking.
public struct DegradationLadder: Sendable {
    public enum Step: String, Sendable, CaseIterable, Comparable {
        case full, low, stills
        case audioOnly = "audio-only"

        /// Lower rungs compare greater: `full < low < stills < audioOnly`.
        var rung: Int {
            switch self {
            case .full: 0
            case .low: 1
            case .stills: 2
            case .audioOnly: 3
            }
        }

        public static func < (lhs: Step, rhs: Step) -> Bool { lhs.rung < rhs.rung }
    }

    /// One second of what the sender saw.
    public struct Second: Sendable {
        public var framesSent: Int
        /// Frames the relay reported dropped for the slowest receiver.
        public var framesDropped: Int
        /// The longest time a send (video, still or audio) waited for the socket.
        public var worstSendDelay: Duration
        /// Whether a live microphone feeds the call: without one, audio only would leave the
        /// expert with nothing, so stills stay the lowest rung.
        public var carriesAudio: Bool

        public init(framesSent: Int, framesDropped: Int, worstSendDelay: Duration, carriesAudio: Bool = false) {
            self.framesSent = framesSent
            self.framesDropped = framesDropped
            self.worstSendDelay = worstSendDelay
            self.carriesAudio = carriesAudio
        }
    }

    public static let delayLimit = Duration.seconds(1)
    public static let lossLimit = 0.10
    /// Seconds of trouble before stepping down, and of calm before stepping up.
    public static let secondsToStepDown = 3
    public static let secondsToStepUp = 10

    public private(set) var step: Step = .full
    private var troubledSeconds = 0
    private var calmSeconds = 0

    public init() {}

    /// Feeds one second; returns the new step when it changed.
    public mutating func record(_ second: Second) -> Step? {
        let lowest: Step = second.carriesAudio ? .audioOnly : .stills
        if step > lowest {
            // The microphone went away while only audio flowed: stills are all that is left.
            step = lowest
            troubledSeconds = 0
            calmSeconds = 0
            return lowest
        }
        let sent = max(second.framesSent + second.framesDropped, 1)
        let troubled = second.worstSendDelay > Self.delayLimit || Double(second.framesDropped) / Double(sent) > Self.lossLimit
        if troubled {
            troubledSeconds += 1
            calmSeconds = 0
        } else {
            calmSeconds += 1
            troubledSeconds = 0
        }
        if troubledSeconds >= Self.secondsToStepDown, let lower = Step.allCases.first(where: { $0 > step && $0 <= lowest }) {
            step = lower
            troubledSeconds = 0
            return lower
        }
        if calmSeconds >= Self.secondsToStepUp, let higher = Step.allCases.last(where: { $0 < step }) {
            step = higher
            calmSeconds = 0
            return higher
        }
        return nil
    }
}
