/// The phrases the recognizer listens for, and the closed grammar built from them.
///
/// The built-in phrases have three or more syllables and share no leading word with a phrase of
/// another action: short phrases ("zoom in") leave the rejection test too little speech to tell
/// a command from ordinary talk, and pairs that differ in one short word ("start recording" /
/// "stop recording", "privacy on" / "privacy off") are the confusions measured in docs/VOICE.md.
public struct VoiceVocabulary: Sendable, Equatable {
    public let phrases: [VoicePhrase]
    /// Words every command must start with (`voice.wake_phrase`), or none. A command then is one
    /// longer utterance ("okay glasses take a picture"): unrelated speech must match both parts
    /// to trigger anything, so false activations fall, at the price of saying more.
    public private(set) var wakeWords: [String] = []

    public init(_ phrases: [VoicePhrase]) throws(VoiceVocabularyError) {
        guard !phrases.isEmpty else { throw .empty }
        var seen: Set<String> = []
        for phrase in phrases where !seen.insert(phrase.phrase).inserted {
            throw .duplicatePhrase(phrase.phrase)
        }
        self.phrases = phrases
    }

    /// Reads `voice.phrases` entries; an empty list means the built-in phrases.
    public init(entries: [String], wakePhrase: String = "") throws(VoiceVocabularyError) {
        if entries.isEmpty {
            self = .builtIn
        } else {
            var phrases: [VoicePhrase] = []
            for entry in entries { phrases.append(try VoicePhrase(entry: entry)) }
            try self.init(phrases)
        }
        try requireWakePhrase(wakePhrase)
    }

    /// Makes every command start with `wakePhrase` (empty: none).
    public mutating func requireWakePhrase(_ wakePhrase: String) throws(VoiceVocabularyError) {
        let words = wakePhrase.lowercased().split(whereSeparator: \.isWhitespace).map(String.init)
        for word in words where !VoicePhrase.isGrammarWord(word) { throw .badWord(word, phrase: wakePhrase) }
        wakeWords = words
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

    /// The action of a decoded hypothesis, which the grammar makes exactly one of the phrases
    /// (after the wake phrase, when there is one).
    public func action(forHypothesis hypothesis: String) -> VoiceAction? {
        let words = hypothesis.split(whereSeparator: \.isWhitespace).map(String.init)
        guard words.starts(with: wakeWords) else { return nil }
        let phrase = words.dropFirst(wakeWords.count).joined(separator: " ")
        return phrases.first { $0.phrase == phrase }?.action
    }

    /// Every distinct word of every phrase and of the wake phrase, sorted: what must be in the
    /// pronunciation dictionary.
    public var words: [String] {
        Array(Set(phrases.flatMap(\.words) + wakeWords)).sorted()
    }

    /// A JSGF grammar whose only sentences are the phrases (each after the wake phrase, when
    /// there is one): the decoder can say nothing else, and the all-phone comparison decides
    /// whether it should have said anything at all.
    public var grammar: String {
        let commands = phrases.map(\.phrase).joined(separator: " | ")
        let sentence = wakeWords.isEmpty ? commands : wakeWords.joined(separator: " ") + " ( " + commands + " )"
        return "#JSGF V1.0;\ngrammar commands;\npublic <command> = " + sentence + ";\n"
    }

    /// What a technician says for `phrase`, wake phrase included.
    public func spoken(_ phrase: VoicePhrase) -> String {
        (wakeWords + phrase.words).joined(separator: " ")
    }
}
