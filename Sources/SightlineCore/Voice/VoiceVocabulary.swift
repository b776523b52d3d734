/// The phrases the recognizer listens for, and the closed grammar built from them.
///
/// The built-in phrases have three or more syllables and share no leading word with a phrase of
/// another action: short phrases ("zoom in") leave the rejection test too little speech to tell
/// a command from ordinary talk, and pairs that differ in one short word ("start recording" /
/// "stop recording", "privacy on" / "privacy off") are the confusions measured in docs/VOICE.md.
public struct VoiceVocabulary: Sendable, Equatable {
    public let phrases: [VoicePhrase]

    public init(_ phrases: [VoicePhrase]) throws(VoiceVocabularyError) {
        guard !phrases.isEmpty else { throw .empty }
        var seen: Set<String> = []
        for phrase in phrases where !seen.insert(phrase.phrase).inserted {
            throw .duplicatePhrase(phrase.phrase)
        }
        self.phrases = phrases
    }

    /// Reads `voice.phrases` entries; an empty list means the built-in phrases.
    public init(entries: [String]) throws(VoiceVocabularyError) {
        if entries.isEmpty {
            self = .builtIn
            return
        }
        var phrases: [VoicePhrase] = []
        for entry in entries { phrases.append(try VoicePhrase(entry: entry)) }
        try self.init(phrases)
    }

    public static let builtInEntries: [(String, VoiceAction)] = [
        ("take a picture", .takePhoto),
        ("begin recording", .startRecording),
        ("finish recording", .stopRecording),
        ("add a voice note", .addVoiceNote),
        ("end of note", .endNote),
        ("call the expert", .callExpert),
        ("hang up the call", .endCall),
        ("mark this step", .markStep),
        ("privacy please", .privacyOn),
        ("resume streaming", .privacyOff),
        ("zoom in closer", .zoomIn),
        ("zoom out wider", .zoomOut),
        ("say that again", .repeatLast),
    ]

    public static var builtIn: VoiceVocabulary {
        do {
            return try VoiceVocabulary(builtInEntries.map { entry throws(VoiceVocabularyError) in
                try VoicePhrase(phrase: entry.0, action: entry.1)
            })
        } catch {
            preconditionFailure("the built-in voice phrases do not validate: \(error)")
        }
    }

    /// The action of a decoded hypothesis, which the grammar makes exactly one of the phrases.
    public func action(forHypothesis hypothesis: String) -> VoiceAction? {
        let normalised = hypothesis.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return phrases.first { $0.phrase == normalised }?.action
    }

    /// Every distinct word of every phrase, sorted: what must be in the pronunciation dictionary.
    public var words: [String] {
        Array(Set(phrases.flatMap(\.words))).sorted()
    }

    /// A JSGF grammar whose only sentences are the phrases: the decoder can say nothing else, and
    /// the all-phone comparison decides whether it should have said anything at all.
    public var grammar: String {
        "#JSGF V1.0;\ngrammar commands;\npublic <command> = "
            + phrases.map(\.phrase).joined(separator: " | ") + ";\n"
    }
}
