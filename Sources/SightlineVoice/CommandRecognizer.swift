import Foundation
import SightlineCore

/// Recognizes voice commands in 16 kHz mono audio: a grammar decoder that can only say one of the
/// phrases, with end-of-speech detection, and an all-phone decoder scoring the same audio as the
/// yardstick for rejection (`UtteranceDecision.judge`) — and a second such pair on a copy of the
/// model adapted to noisy speech, whose scores judge the utterances the SNR estimate calls noisy.
/// Every decoder hears every piece; the voice-activity detector works on the audio, before the
/// acoustic model, so both pairs open and close the same utterances.
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
    private var plain: DecoderPair
    /// Nil when `voice.noise_adapted_below_db` is 0.
    private var noiseAdapted: DecoderPair?
    /// Speex's denoiser in front of the decoders; nil when `voice.noise_suppression_db` is 0.
    private let suppressor: NoiseSuppressor?
    /// When not nil, every piece the decoders hear (after suppression) is appended: the adaptation
    /// data of `scripts/make-noise-transform`, through `sightctl voice test --write-heard`.
    public var heardAudio: [Int16]?
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
    /// The power the SNR estimate and the background's level are measured on.
    private var speechBand = SubsonicFilter()
    private var utterancePower = 0.0
    private var utterancePieces = 0

    /// Loads the model two or four times (about a second each) and checks every phrase word
    /// against the dictionary.
    /// - Parameter noiseTransformFile: the noise-adapted decoders' MLLR transform
    ///   (`voice.noise_transform`); nil for the built-in one.
    public init(modelDirectory: String, vocabulary: VoiceVocabulary, thresholds: VoiceThresholds,
                noiseTransformFile: String? = nil) throws(VoiceRecognizerError) {
        let directory = URL(fileURLWithPath: modelDirectory)
        let acoustic = directory.appendingPathComponent("en-us").path
        let dictionary = directory.appendingPathComponent("cmudict-en-us.dict").path
        let phones = directory.appendingPathComponent("en-us-phone.lm.bin").path
        for path in [acoustic + "/mdef", dictionary, phones] where !FileManager.default.fileExists(atPath: path) {
            throw .modelMissing(path: path)
        }
        let endSilenceFrames = String(max(1, thresholds.endSilenceMilliseconds / 10))
        guard let full = FileManager.default.contents(atPath: dictionary) else { throw .modelMissing(path: dictionary) }
        let subset = PronunciationDictionary.subset(of: full, for: Set(vocabulary.words))
        guard subset.missing.isEmpty else { throw .wordsNotInDictionary(subset.missing, dictionary: dictionary) }
        // The decoders read these files in `ps_init`.
        let words = try Self.privateFile(subset.text, suffix: "dict")
        defer { unlink(words) }
        let common = ["-hmm", acoustic, "-dict", words, "-vad_postspeech", endSilenceFrames]
        // Checked before any model is loaded: a bad file fails at once.
        let transform = thresholds.noiseAdaptedBelowDecibels > 0 ? try Self.noiseTransform(from: noiseTransformFile, for: acoustic) : nil
        let plain = try DecoderPair(name: "plain", arguments: common, grammar: vocabulary.grammar, phoneModel: phones)
        let noiseAdapted: DecoderPair? = if let transform {
            try Self.noiseAdaptedPair(common, transform: transform, vocabulary: vocabulary, phoneModel: phones)
        } else {
            nil
        }
        // Until the background's level is known the suppressor passes audio through (0 dB).
        suppressor = thresholds.noiseSuppressionDecibels > 0
            ? try NoiseSuppressor(sampleRate: Self.sampleRate, suppressionDecibels: 0) : nil
        self.plain = plain
        self.noiseAdapted = noiseAdapted
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
        let power = speechBand.meanPower(samples)
        suppressor?.process(&piece)
        heardAudio?.append(contentsOf: piece)
        let result: Result<Void, VoiceRecognizerError> = piece.withUnsafeBufferPointer { piece in
            do throws(VoiceRecognizerError) {
                try plain.process(piece)
                try noiseAdapted?.process(piece)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
        position += piece.count
        let speaking = plain.inSpeech
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

    private static func noiseAdaptedPair(_ arguments: [String], transform: NoiseTransform, vocabulary: VoiceVocabulary,
                                         phoneModel: String) throws(VoiceRecognizerError) -> DecoderPair {
        let file = try privateFile(transform.text, suffix: "mllr")
        defer { unlink(file) }
        return try DecoderPair(name: "noise-adapted", arguments: arguments + ["-mllr", file],
                               grammar: vocabulary.grammar, phoneModel: phoneModel)
    }

    /// The transform of `file` (nil: the built-in one), checked against the acoustic model's
    /// feature streams: PocketSphinx would apply one of another shape without a word.
    static func noiseTransform(from file: String?, for acousticModel: String) throws(VoiceRecognizerError) -> NoiseTransform {
        var text = NoiseAdaptedTransform.text
        if let file {
            // A transform is a few kilobytes; a megabyte is the wrong file, and is not read further.
            let limit = 1 << 20
            guard let handle = FileHandle(forReadingAtPath: file) else {
                throw .noiseTransformUnusable(source: file, reason: "it cannot be read")
            }
            defer { try? handle.close() }
            // nil at the end of the file: an empty one.
            guard let data = try? handle.read(upToCount: limit + 1) ?? Data() else {
                throw .noiseTransformUnusable(source: file, reason: "it cannot be read")
            }
            guard data.count <= limit else { throw .noiseTransformUnusable(source: file, reason: "it is larger than 1 MB") }
            text = String(decoding: data, as: UTF8.self)
        }
        let transform: NoiseTransform
        do {
            transform = try NoiseTransform(text: text)
        } catch {
            throw .noiseTransformUnusable(source: file, reason: error.description)
        }
        let parameters = (try? String(contentsOfFile: acousticModel + "/feat.params", encoding: .utf8)) ?? ""
        guard let needed = NoiseTransform.streamLengths(featureParameters: parameters) else {
            throw .noiseTransformUnusable(source: file, reason: "the feature streams of the acoustic model in \(acousticModel) are unknown (its feat.params names neither -svspec nor -feat 1s_c_d_dd)")
        }
        guard transform.streamLengths == needed else {
            func streams(_ lengths: [Int]) -> String { lengths.map(String.init).joined(separator: ", ") }
            throw .noiseTransformUnusable(source: file, reason: "its feature streams have \(streams(transform.streamLengths)) values, the acoustic model's in \(acousticModel) \(streams(needed))")
        }
        return transform
    }

    /// Writes `text` to a private (0600) temporary file for a decoder to load; the caller removes it.
    private static func privateFile(_ text: String, suffix: String) throws(VoiceRecognizerError) -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sightline-voice-\(getpid())-\(UUID().uuidString).\(suffix)").path
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .temporaryFileNotWritten(path: file, errno: errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else {
            let code = errno
            unlink(file)
            throw .temporaryFileNotWritten(path: file, errno: code)
        }
        return file
    }

    private static func seconds(_ frames: ClosedRange<Int>) -> (Double, Double) {
        (Double(frames.lowerBound) / 100, Double(frames.upperBound + 1) / 100)
    }

    private mutating func closeUtterance(startedAt start: Int) throws(VoiceRecognizerError) -> UtteranceDecision {
        utteranceStart = nil
        let plainScores = try plain.closeUtterance()
        let adaptedScores = try noiseAdapted?.closeUtterance()
        let signalToNoise = background.power.flatMap {
            SignalToNoise.decibels(power: utterancePower / Double(max(1, utterancePieces)), over: $0)
        }
        utterancePower = 0
        utterancePieces = 0
        let judged = thresholds.usesNoiseAdaptedModel(signalToNoise: signalToNoise) ? adaptedScores : nil
        let scores = judged ?? plainScores
        let rate = Double(Self.sampleRate)
        let utterance = (Double(start) / rate, Double(position) / rate)
        let words = scores.words.map(Self.seconds) ?? utterance
        let speech = scores.speech.map(Self.seconds) ?? utterance
        return UtteranceDecision.judge(
            UtteranceScores(hypothesis: scores.hypothesis, grammarScore: scores.grammarScore, allPhoneScore: scores.allPhoneScore,
                            speechStart: speech.0, speechEnd: speech.1, phraseStart: words.0, phraseEnd: words.1,
                            decidedAt: utterance.1, signalToNoise: signalToNoise, noiseAdapted: judged != nil,
                            lastWordMargin: scores.lastWordMargin),
            vocabulary: vocabulary, thresholds: thresholds)
    }
}
