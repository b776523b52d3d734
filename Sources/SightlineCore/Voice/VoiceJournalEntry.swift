import Foundation

/// One line of the voice-command journal (`STATE/voice/commands.jsonl`): what was heard, how
/// sure the recognizer was, and what the action did — the record a technician or an auditor reads
/// back when a photo is missing or a recording started unasked.
public struct VoiceJournalEntry: Sendable, Equatable, Codable {
    /// UTC, ISO 8601 with milliseconds.
    public let time: String
    public let phrase: String
    public let action: VoiceAction
    public let score: Int
    public let margin: Int
    /// Where the phrase lies in the audio stream since the recognizer started, in seconds.
    public let startS: Double
    public let endS: Double
    /// What the action did, e.g. `done`, or why it did not run.
    public let result: String

    enum CodingKeys: String, CodingKey {
        case time, phrase, action, score, margin, result
        case startS = "start_s"
        case endS = "end_s"
    }

    public init(time: Date, command: RecognizedCommand, result: String) {
        self.time = time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        phrase = command.phrase
        action = command.action
        score = command.score
        margin = command.margin
        startS = (command.startSeconds * 100).rounded() / 100
        endS = (command.endSeconds * 100).rounded() / 100
        self.result = result
    }

    /// The entry as one JSON line, newline included.
    public var line: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a struct of strings and numbers cannot fail.
        return ((try? encoder.encode(self)) ?? Data()) + Data("\n".utf8)
    }
}
