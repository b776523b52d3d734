/// What a voice command does. The raw values are the names operators write in the configuration
/// (`voice.phrases`) and integrators see in JSON and journals, so they never change.
public enum VoiceAction: String, CaseIterable, Sendable, Codable, Hashable {
    case takePhoto = "take_photo"
    case startRecording = "start_recording"
    case stopRecording = "stop_recording"
    case addVoiceNote = "add_voice_note"
    case endNote = "end_note"
    case callExpert = "call_expert"
    case endCall = "end_call"
    case markStep = "mark_step"
    case privacyOn = "privacy_on"
    case privacyOff = "privacy_off"
    case zoomIn = "zoom_in"
    case zoomOut = "zoom_out"
    case repeatLast = "repeat_last"

    /// Every action's configuration name, for error messages.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// One phrase the recognizer listens for and the action it triggers.
public struct VoicePhrase: Sendable, Hashable, Codable {
    /// Lowercase words separated by single spaces, exactly as the grammar and the decoder spell it.
    public let phrase: String
    public let action: VoiceAction

    /// Normalises `phrase` (lowercase, single spaces) and checks that it can go into a grammar.
    public init(phrase: String, action: VoiceAction) throws(VoiceVocabularyError) {
        let words = phrase.lowercased().split(whereSeparator: \.isWhitespace).map(String.init)
        guard !words.isEmpty else { throw .emptyPhrase }
        for word in words where !Self.isGrammarWord(word) {
            throw .badWord(word, phrase: phrase)
        }
        self.phrase = words.joined(separator: " ")
        self.action = action
    }

    public var words: [String] { phrase.split(separator: " ").map(String.init) }

    /// Reads a `voice.phrases` entry, `PHRASE=ACTION` (`take a picture=take_photo`).
    public init(entry: String) throws(VoiceVocabularyError) {
        guard let equals = entry.lastIndex(of: "=") else { throw .notAnEntry(entry) }
        let name = entry[entry.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        guard let action = VoiceAction(rawValue: name) else { throw .unknownAction(name) }
        try self.init(phrase: String(entry[..<equals]), action: action)
    }

    /// The configuration spelling, the inverse of `init(entry:)`.
    public var entry: String { "\(phrase)=\(action.rawValue)" }

    /// Letters and apostrophes only: dictionary words, nothing JSGF would read as syntax.
    static func isGrammarWord(_ word: String) -> Bool {
        !word.isEmpty && word.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || $0 == "'" }
    }
}

public enum VoiceVocabularyError: Error, Equatable, Sendable, CustomStringConvertible {
    case emptyPhrase
    case badWord(String, phrase: String)
    case notAnEntry(String)
    case unknownAction(String)
    case duplicatePhrase(String)
    case empty

    public var description: String {
        switch self {
        case .emptyPhrase: "a phrase has no words"
        case .badWord(let word, let phrase): "\"\(word)\" in \"\(phrase)\" is not a plain word (letters and apostrophes only; write numbers as words)"
        case .notAnEntry(let entry): "\"\(entry)\" is not PHRASE=ACTION, like \"take a picture=take_photo\""
        case .unknownAction(let name): "\"\(name)\" is not an action; actions: \(VoiceAction.names)"
        case .duplicatePhrase(let phrase): "\"\(phrase)\" is listed twice; a phrase can trigger one action only"
        case .empty: "no phrases; list at least one, or leave the key out for the built-in phrases"
        }
    }
}
