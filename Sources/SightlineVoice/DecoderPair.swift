import Foundation
import SightlineCore

/// A grammar decoder and the all-phone decoder that is its yardstick, on the same acoustic model:
/// everything that scores one utterance (`UtteranceDecision.judge`). Both see every sample, so
/// their voice-activity detectors open and close together.
struct DecoderPair: ~Copyable {
    /// What the pair said about the utterance that just ended; frames count 10 ms from the start.
    struct Scores {
        var hypothesis: String
        var grammarScore: Int
        var allPhoneScore: Int
        /// The grammar's first and last word.
        var words: ClosedRange<Int>?
        /// The phones (not silences) the all-phone decoder found: the speech in the utterance,
        /// whatever the voice-activity detector added around it (it opens early while it learns
        /// the noise floor).
        var speech: ClosedRange<Int>?
        /// (grammar − all-phone) acoustic score per frame over the grammar's last word.
        var lastWordMargin: Double?
    }

    private let grammar: SphinxDecoder
    private let allPhone: SphinxDecoder
    /// Both decoders' cepstral-mean normalizers as the current utterance found them.
    private var normalizations: (grammar: SphinxDecoder.Normalization?, allPhone: SphinxDecoder.Normalization?)

    /// - Parameters:
    ///   - arguments: the model, dictionary and front end both decoders share.
    ///   - phoneModel: the phone language model of the all-phone decoder.
    init(name: String, arguments: [String], grammar jsgf: String, phoneModel: String) throws(VoiceRecognizerError) {
        let grammar = try SphinxDecoder(role: "\(name) grammar", arguments: arguments)
        try grammar.useGrammar(jsgf)
        // Wide beams keep the phone loop cheap (about 0.03 of real time); context-independent
        // phones are enough for a yardstick.
        let allPhone = try SphinxDecoder(role: "\(name) all-phone", arguments: arguments + [
            "-allphone", phoneModel, "-allphone_ci", "yes", "-beam", "1e-20", "-pbeam", "1e-20", "-lw", "2.0",
        ])
        try grammar.startUtterance()
        try allPhone.startUtterance()
        normalizations = (grammar.normalization(), allPhone.normalization())
        self.grammar = grammar
        self.allPhone = allPhone
    }

    var inSpeech: Bool { grammar.inSpeech }

    func process(_ piece: UnsafeBufferPointer<Int16>) throws(VoiceRecognizerError) {
        try grammar.process(piece)
        try allPhone.process(piece)
    }

    /// Ends the utterance, reads both decoders' verdicts and starts the next utterance.
    ///
    /// An utterance in which the grammar found no word (the detector's start-up, a bang, a cough)
    /// leaves the live cepstral-mean normalizers as it found them: PocketSphinx updates them from
    /// every utterance, and one of noise alone taught them the noise as the speaker's channel, so
    /// the next command was normalised wrongly — the first command after start-up scored −2136 in
    /// clean speech instead of +397 (docs/VOICE.md "End of speech").
    mutating func closeUtterance() throws(VoiceRecognizerError) -> Scores {
        try grammar.endUtterance()
        try allPhone.endUtterance()
        let best = grammar.hypothesis()
        let words = grammar.segments().filter(\.isWord)
        let phones = allPhone.segments()
        let scores = Scores(hypothesis: best.text, grammarScore: best.score, allPhoneScore: allPhone.hypothesis().score,
                            words: Self.span(words), speech: Self.span(phones.filter(\.isWord)),
                            lastWordMargin: words.last.map { Self.margin(of: $0, against: phones) })
        if scores.words == nil {
            if let saved = normalizations.grammar { grammar.restore(saved) }
            if let saved = normalizations.allPhone { allPhone.restore(saved) }
        }
        try grammar.startUtterance()
        try allPhone.startUtterance()
        normalizations = (grammar.normalization(), allPhone.normalization())
        return scores
    }

    /// From the first segment's first frame to the last one's last.
    static func span(_ segments: [SphinxDecoder.Segment]) -> ClosedRange<Int>? {
        guard let first = segments.first, let last = segments.last else { return nil }
        return first.frames.lowerBound...last.frames.upperBound
    }

    /// (word − phones) acoustic score per frame over the word's frames; a phone segment that only
    /// partly overlaps them counts in proportion.
    static func margin(of word: SphinxDecoder.Segment, against phones: [SphinxDecoder.Segment]) -> Double {
        var phoneScore = 0.0
        for phone in phones {
            let overlap = min(phone.frames.upperBound, word.frames.upperBound) - max(phone.frames.lowerBound, word.frames.lowerBound) + 1
            guard overlap > 0 else { continue }
            phoneScore += Double(phone.acousticScore) * Double(overlap) / Double(phone.frames.count)
        }
        return (Double(word.acousticScore) - phoneScore) / Double(word.frames.count)
    }
}
