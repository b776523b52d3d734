/// Decides when a voice note ends, from the level of each 16 kHz chunk: after
/// `silenceMilliseconds` of quiet that follows speech, at `maximumMilliseconds`, or when nothing
/// is said within `waitForSpeechMilliseconds`. Pure, so its timing is testable without a microphone.
public struct NoteEnd: Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        case recording
        /// Speech was followed by enough silence.
        case silence
        case maximumLength
        /// No speech at all.
        case nothingSaid
    }

    /// Quieter than this (RMS, dBFS) counts as silence: well above a quiet room's -60 dBFS and
    /// below speech at arm's length from a head-worn microphone (-30 to -15 dBFS).
    public static let silenceThresholdDBFS = -45.0

    public let silenceMilliseconds: Int
    public let maximumMilliseconds: Int
    public let waitForSpeechMilliseconds: Int
    public private(set) var elapsedMilliseconds = 0.0
    public private(set) var heardSpeech = false
    private var quietMilliseconds = 0.0

    public init(silenceMilliseconds: Int, maximumMilliseconds: Int, waitForSpeechMilliseconds: Int = 5000) {
        self.silenceMilliseconds = silenceMilliseconds
        self.maximumMilliseconds = maximumMilliseconds
        self.waitForSpeechMilliseconds = waitForSpeechMilliseconds
    }

    /// Accounts for one chunk of `sampleRate` mono audio and says whether the note goes on.
    public mutating func feed(_ chunk: [Int16], sampleRate: Int = 16000) -> Decision {
        let duration = Double(chunk.count) * 1000 / Double(sampleRate)
        elapsedMilliseconds += duration
        if AudioLevel(samples: chunk).rmsDBFS < Self.silenceThresholdDBFS {
            quietMilliseconds += duration
        } else {
            quietMilliseconds = 0
            heardSpeech = true
        }
        if elapsedMilliseconds >= Double(maximumMilliseconds) { return .maximumLength }
        if heardSpeech, quietMilliseconds >= Double(silenceMilliseconds) { return .silence }
        if !heardSpeech, elapsedMilliseconds >= Double(waitForSpeechMilliseconds) { return .nothingSaid }
        return .recording
    }
}
