import Foundation
import SightlineCore

/// Recognizes voice commands in 16 kHz mono audio: a grammar decoder that can only say one of the
/// phrases, with end-of-speech detection, and an all-phone decoder scoring the same audio as the
/// yardstick for rejection (`UtteranceDecision.judge`). Both decoders see every sample, so their
/// voice-activity detectors open and close together.
///
/// Not thread-safe and blocking (model loading, decoding): use it on one dedicated thread, as
/// `VoiceCommandListener` and `CommandRecognizer.decide` do, never on the cooperative pool.
public struct CommandRecognizer: ~Copyable {
    public static let sampleRate = 16000
    /// Audio is fed in 20 ms pieces, so that utterance edges are known to 20 ms.
    static let pieceSamples = 320
    /// An utterance this many times longer than the longest command is cut off and rejected, so
    /// endless noise cannot grow the decoders' lattices without bound.
    static let runawayFactor = 3

    public let vocabulary: VoiceVocabulary
    public let thresholds: VoiceThresholds
    private let grammar: SphinxDecoder
    private let allPhone: SphinxDecoder
    /// Speex's denoiser in front of both decoders; nil when `voice.noise_suppression_db` is 0.
    private let suppressor: NoiseSuppressor?
    /// Samples consumed since the start: the stream clock.
    private var position = 0
    /// Where the voice-activity detector opened the current utterance.
    private var utteranceStart: Int?
    /// Samples short of a whole piece, waiting for the next call.
    private var pending: [Int16] = []
    /// The background's power as the microphone delivers it, and the open utterance's summed
    /// piece powers: the utterance's signal-to-noise ratio for the noise-aware margin.
    private var background = BackgroundLevel()
    private var suppression = 0
    private var utterancePower = 0.0
    private var utterancePieces = 0

    /// Loads the model twice (about a second each) and checks every phrase word against the dictionary.
    public init(modelDirectory: String, vocabulary: VoiceVocabulary, thresholds: VoiceThresholds) throws(VoiceRecognizerError) {
        let directory = URL(fileURLWithPath: modelDirectory)
        let acoustic = directory.appendingPathComponent("en-us").path
        let dictionary = directory.appendingPathComponent("cmudict-en-us.dict").path
        let phones = directory.appendingPathComponent("en-us-phone.lm.bin").path
        for path in [acoustic + "/mdef", dictionary, phones] where !FileManager.default.fileExists(atPath: path) {
            throw .modelMissing(path: path)
        }
        let endSilenceFrames = String(max(1, thresholds.endSilenceMilliseconds / 10))
        let words = try Self.vocabularyDictionary(dictionary, words: Set(vocabulary.words))
        defer { unlink(words) }
        let common = ["-hmm", acoustic, "-dict", words, "-vad_postspeech", endSilenceFrames]
        let grammar = try SphinxDecoder(role: "grammar", arguments: common)
        try grammar.useGrammar(vocabulary.grammar)
        // Wide beams keep the phone loop cheap (about 0.03 of real time); context-independent
        // phones are enough for a yardstick.
        let allPhone = try SphinxDecoder(role: "all-phone", arguments: common + [
            "-allphone", phones, "-allphone_ci", "yes", "-beam", "1e-20", "-pbeam", "1e-20", "-lw", "2.0",
        ])
        // Until the background's level is known the suppressor passes audio through (0 dB).
        let suppressor: NoiseSuppressor? = thresholds.noiseSuppressionDecibels > 0
            ? try NoiseSuppressor(sampleRate: Self.sampleRate, suppressionDecibels: 0) : nil
        try grammar.startUtterance()
        try allPhone.startUtterance()
        self.suppressor = suppressor
        self.grammar = grammar
        self.allPhone = allPhone
        self.vocabulary = vocabulary
        self.thresholds = thresholds
    }

    /// Stream time of the next sample, in seconds.
    public var streamSeconds: Double { Double(position) / Double(Self.sampleRate) }

    /// Decodes the next samples and returns a decision for every utterance that ended in them.
    /// Samples are decoded in whole 20 ms pieces (the suppressor's frame); a remainder waits for
    /// the next call, so callers may hand over chunks of any size.
    public mutating func process(_ samples: [Int16]) throws(VoiceRecognizerError) -> [UtteranceDecision] {
        pending += samples
        var decisions: [UtteranceDecision] = []
        var offset = 0
        while pending.count - offset >= Self.pieceSamples {
            if let decision = try decode(Array(pending[offset..<offset + Self.pieceSamples])) { decisions.append(decision) }
            offset += Self.pieceSamples
        }
        pending.removeFirst(offset)
        return decisions
    }

    /// Ends the stream: the last partial piece is decoded and an utterance still open is judged as it stands.
    public mutating func finish() throws(VoiceRecognizerError) -> [UtteranceDecision] {
        var decisions: [UtteranceDecision] = []
        if !pending.isEmpty, let decision = try decode(pending) { decisions.append(decision) }
        pending = []
        if let start = utteranceStart { decisions.append(try closeUtterance(startedAt: start)) }
        return decisions
    }

    /// Feeds one piece through the suppressor to both decoders and closes the utterance when the
    /// voice-activity detector does, or when it has run away.
    private mutating func decode(_ samples: [Int16]) throws(VoiceRecognizerError) -> UtteranceDecision? {
        var piece = samples
        let power = BackgroundLevel.meanPower(samples)
        suppressor?.process(&piece)
        let result: Result<Void, VoiceRecognizerError> = piece.withUnsafeBufferPointer { piece in
            do throws(VoiceRecognizerError) {
                try grammar.process(piece)
                try allPhone.process(piece)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
        position += piece.count
        let speaking = grammar.inSpeech
        background.observe(piecePower: power, inSpeech: speaking)
        let wanted = background.suppression(maximum: thresholds.noiseSuppressionDecibels)
        if wanted != suppression {
            suppressor?.setSuppression(decibels: wanted)
            suppression = wanted
        }
        if speaking {
            utterancePower += power
            utterancePieces += 1
        }
        if speaking, utteranceStart == nil {
            utteranceStart = position - piece.count
        } else if let start = utteranceStart {
            let runaway = position - start > Self.runawayFactor * thresholds.maximumCommandMilliseconds * Self.sampleRate / 1000
            if !speaking || runaway { return try closeUtterance(startedAt: start) }
        }
        return nil
    }

    /// Writes the dictionary entries of the phrase words to a private temporary file for the
    /// decoders to load (they read it in `ps_init`); the caller removes it.
    private static func vocabularyDictionary(_ path: String, words: Set<String>) throws(VoiceRecognizerError) -> String {
        guard let full = FileManager.default.contents(atPath: path) else { throw .modelMissing(path: path) }
        let subset = PronunciationDictionary.subset(of: full, for: words)
        guard subset.missing.isEmpty else { throw .wordsNotInDictionary(subset.missing, dictionary: path) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sightline-voice-\(getpid())-\(UUID().uuidString).dict").path
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .dictionaryNotWritten(path: file, errno: errno) }
        defer { close(fd) }
        let bytes = Array(subset.text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else {
            let code = errno
            unlink(file)
            throw .dictionaryNotWritten(path: file, errno: code)
        }
        return file
    }

    private static func seconds(_ frames: ClosedRange<Int>) -> (Double, Double) {
        (Double(frames.lowerBound) / 100, Double(frames.upperBound + 1) / 100)
    }

    private mutating func closeUtterance(startedAt start: Int) throws(VoiceRecognizerError) -> UtteranceDecision {
        utteranceStart = nil
        try grammar.endUtterance()
        try allPhone.endUtterance()
        let best = grammar.hypothesis()
        let yardstick = allPhone.hypothesis()
        let rate = Double(Self.sampleRate)
        let utterance = (Double(start) / rate, Double(position) / rate)
        let words = grammar.wordFrames().map(Self.seconds) ?? utterance
        // The phones (not silences) the all-phone decoder found: the speech in the utterance, whatever
        // the voice-activity detector added around it (it opens early while it learns the noise floor).
        let speech = allPhone.wordFrames().map(Self.seconds) ?? utterance
        let signalToNoise = background.power.flatMap {
            SignalToNoise.decibels(power: utterancePower / Double(max(1, utterancePieces)), over: $0)
        }
        utterancePower = 0
        utterancePieces = 0
        try grammar.startUtterance()
        try allPhone.startUtterance()
        return UtteranceDecision.judge(
            UtteranceScores(hypothesis: best.text, grammarScore: best.score, allPhoneScore: yardstick.score,
                            speechStart: speech.0, speechEnd: speech.1, phraseStart: words.0, phraseEnd: words.1,
                            decidedAt: utterance.1, signalToNoise: signalToNoise),
            vocabulary: vocabulary, thresholds: thresholds)
    }
}
