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
    }

    private let grammar: SphinxDecoder
    private let allPhone: SphinxDecoder

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
        self.grammar = grammar
        self.allPhone = allPhone
    }

    var inSpeech: Bool { grammar.inSpeech }

    func process(_ piece: UnsafeBufferPointer<Int16>) throws(VoiceRecognizerError) {
        try grammar.process(piece)
        try allPhone.process(piece)
    }

    /// Ends the utterance, reads both decoders' verdicts and starts the next utterance.
    func closeUtterance() throws(VoiceRecognizerError) -> Scores {
        try grammar.endUtterance()
        try allPhone.endUtterance()
        let best = grammar.hypothesis()
        let scores = Scores(hypothesis: best.text, grammarScore: best.score, allPhoneScore: allPhone.hypothesis().score,
                            words: grammar.wordFrames(), speech: allPhone.wordFrames())
        try grammar.startUtterance()
        try allPhone.startUtterance()
        return scores
    }
}
