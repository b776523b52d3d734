import Foundation
import Testing
@testable import SightlineCore
import SightlineTesting

@Suite("Voice vocabulary and decisions")
struct VoiceVocabularyTests {
    @Test("the built-in vocabulary has one phrase for every action and a grammar of exactly those phrases")
    func builtIn() throws {
        let vocabulary = VoiceVocabulary.builtIn
        #expect(Set(vocabulary.phrases.map(\.action)) == Set(VoiceAction.allCases))
        #expect(vocabulary.phrases.count == VoiceAction.allCases.count)
        let grammar = vocabulary.grammar
        #expect(grammar.hasPrefix("#JSGF V1.0;"))
        for phrase in vocabulary.phrases { #expect(grammar.contains(phrase.phrase)) }
        #expect(vocabulary.action(forHypothesis: "take  a picture") == .takePhoto)
        #expect(vocabulary.action(forHypothesis: "take a photo") == nil)
        #expect(vocabulary.action(forHypothesis: "") == nil)
    }

    @Test("phrase entries parse, normalise and refuse what a grammar cannot hold")
    func entries() throws {
        let phrase = try VoicePhrase(entry: "  Snap  The Picture =take_photo")
        #expect(phrase.phrase == "snap the picture")
        #expect(phrase.action == .takePhoto)
        #expect(phrase.entry == "snap the picture=take_photo")
        #expect(throws: VoiceVocabularyError.unknownAction("take_pic")) { try VoicePhrase(entry: "snap=take_pic") }
        #expect(throws: VoiceVocabularyError.notAnEntry("snap")) { try VoicePhrase(entry: "snap") }
        #expect(throws: VoiceVocabularyError.emptyPhrase) { try VoicePhrase(entry: " =take_photo") }
        #expect(throws: VoiceVocabularyError.badWord("2", phrase: "zoom 2")) { try VoicePhrase(entry: "zoom 2=zoom_in") }
        #expect(throws: VoiceVocabularyError.badWord("<x>|", phrase: "a <x>|")) { try VoicePhrase(entry: "a <x>|=zoom_in") }
        #expect(throws: VoiceVocabularyError.duplicatePhrase("zoom in")) {
            try VoiceVocabulary(entries: ["zoom in=zoom_in", "Zoom  in=zoom_out"])
        }
        #expect(try VoiceVocabulary(entries: []) == .builtIn)
    }

    @Test("a command is accepted only with a phrase, a short utterance and enough margin")
    func judgement() {
        let vocabulary = VoiceVocabulary.builtIn
        let thresholds = VoiceThresholds(minimumMargin: -200, maximumCommandMilliseconds: 1500, endSilenceMilliseconds: 300)
        func judge(_ hypothesis: String, grammar: Int, allPhone: Int, speech: Double) -> UtteranceDecision {
            UtteranceDecision.judge(
                UtteranceScores(hypothesis: hypothesis, grammarScore: grammar, allPhoneScore: allPhone, speechStart: 2,
                                speechEnd: 2 + speech, phraseStart: 2.1, phraseEnd: 1.9 + speech, decidedAt: 2.3 + speech),
                vocabulary: vocabulary, thresholds: thresholds)
        }
        let good = judge("call the expert", grammar: -3000, allPhone: -3100, speech: 1.0)
        #expect(good.accepted)
        #expect(good.margin == 100)
        #expect(good.command?.action == .callExpert)
        #expect(good.command?.decidedAtSeconds == 3.3)
        // 200 behind the all-phone decoder over the whole utterance is still in, whatever its
        // length (per second it would be 400 in half a second); 201 is out.
        #expect(judge("call the expert", grammar: -3300, allPhone: -3100, speech: 1.0).accepted)
        #expect(judge("call the expert", grammar: -3300, allPhone: -3100, speech: 0.5).margin == -200)
        #expect(judge("call the expert", grammar: -3300, allPhone: -3100, speech: 0.5).accepted)
        #expect(judge("call the expert", grammar: -3301, allPhone: -3100, speech: 1.0).rejection == .lowMargin)
        #expect(judge("call the expert", grammar: -3000, allPhone: -3100, speech: 1.6).rejection == .tooLong)
        #expect(judge("", grammar: 0, allPhone: -3100, speech: 1.0).rejection == .noPhrase)
        #expect(judge("", grammar: 0, allPhone: -3100, speech: 1.0).command == nil)
    }

    @Test("a phrase whose last word the all-phone decoder fits far better is rejected, with each model's own threshold")
    func lastWordMargin() {
        let thresholds = VoiceThresholds(minimumMargin: -150, maximumCommandMilliseconds: 1450, endSilenceMilliseconds: 250,
                                         noiseAdaptedMinimumMargin: -1000, minimumLastWordMargin: -16,
                                         noiseAdaptedMinimumLastWordMargin: -20)
        func judge(lastWord: Double?, adapted: Bool = false) -> UtteranceDecision {
            UtteranceDecision.judge(
                UtteranceScores(hypothesis: "finish recording", grammarScore: -3000, allPhoneScore: -3000, speechStart: 1,
                                speechEnd: 2, phraseStart: 1, phraseEnd: 2, decidedAt: 2.3, signalToNoise: adapted ? 8 : 40,
                                noiseAdapted: adapted, lastWordMargin: lastWord),
                vocabulary: .builtIn, thresholds: thresholds)
        }
        #expect(judge(lastWord: -16).accepted)
        #expect(judge(lastWord: -16.5).rejection == .lastWord)
        #expect(judge(lastWord: -16.5).lastWordMargin == -16.5)
        #expect(judge(lastWord: -18, adapted: true).accepted)
        #expect(judge(lastWord: -20.5, adapted: true).rejection == .lastWord)
        // Without a word there is nothing to compare; the other tests decide.
        #expect(judge(lastWord: nil).accepted)
        // The whole utterance's margin is checked first, so its reason is the one reported.
        let both = UtteranceDecision.judge(
            UtteranceScores(hypothesis: "finish recording", grammarScore: -3200, allPhoneScore: -3000, speechStart: 1, speechEnd: 2,
                            phraseStart: 1, phraseEnd: 2, decidedAt: 2.3, lastWordMargin: -40),
            vocabulary: .builtIn, thresholds: thresholds)
        #expect(both.rejection == .lowMargin)
    }

    @Test("the margin a command needs falls from the quiet to the noisy threshold as the SNR drops")
    func noiseAwareMargin() {
        let thresholds = VoiceThresholds(minimumMargin: -200, maximumCommandMilliseconds: 1500, endSilenceMilliseconds: 300,
                                         noisyMinimumMargin: -600)
        #expect(thresholds.minimumMargin(signalToNoise: nil) == -200)
        #expect(thresholds.minimumMargin(signalToNoise: 45) == -200)
        #expect(thresholds.minimumMargin(signalToNoise: 30) == -200)
        #expect(thresholds.minimumMargin(signalToNoise: 20) == -400)
        #expect(thresholds.minimumMargin(signalToNoise: 10) == -600)
        #expect(thresholds.minimumMargin(signalToNoise: -3) == -600)
        func judge(margin: Int, snr: Double?) -> UtteranceDecision {
            UtteranceDecision.judge(
                UtteranceScores(hypothesis: "mark this step", grammarScore: -3000 + margin, allPhoneScore: -3000, speechStart: 1,
                                speechEnd: 2, phraseStart: 1, phraseEnd: 2, decidedAt: 2.3, signalToNoise: snr),
                vocabulary: .builtIn, thresholds: thresholds)
        }
        #expect(judge(margin: -500, snr: 10).accepted)
        #expect(judge(margin: -500, snr: 40).rejection == .lowMargin)
        #expect(judge(margin: -500, snr: nil).rejection == .lowMargin)
        #expect(SignalToNoise.decibels(power: 1000, over: 10) == 20)
    }

    @Test("below its SNR the noise-adapted decoders' scores are judged against their own threshold")
    func noiseAdaptedMargin() {
        let thresholds = VoiceThresholds(minimumMargin: -150, maximumCommandMilliseconds: 1450, endSilenceMilliseconds: 300,
                                         noisyMinimumMargin: -800, noiseAdaptedBelowDecibels: 15, noiseAdaptedMinimumMargin: -700)
        #expect(thresholds.usesNoiseAdaptedModel(signalToNoise: 14.9))
        #expect(!thresholds.usesNoiseAdaptedModel(signalToNoise: 15))
        #expect(!thresholds.usesNoiseAdaptedModel(signalToNoise: nil))
        let off = VoiceThresholds(minimumMargin: -150, maximumCommandMilliseconds: 1450, endSilenceMilliseconds: 300,
                                  noiseAdaptedBelowDecibels: 0)
        #expect(!off.usesNoiseAdaptedModel(signalToNoise: -5))
        func judge(margin: Int, adapted: Bool) -> UtteranceDecision {
            UtteranceDecision.judge(
                UtteranceScores(hypothesis: "mark this step", grammarScore: -3000 + margin, allPhoneScore: -3000, speechStart: 1,
                                speechEnd: 2, phraseStart: 1, phraseEnd: 2, decidedAt: 2.3, signalToNoise: 5, noiseAdapted: adapted),
                vocabulary: .builtIn, thresholds: thresholds)
        }
        // At 5 dB the plain decoders need −800, the adapted ones −700.
        #expect(judge(margin: -750, adapted: false).accepted)
        #expect(judge(margin: -750, adapted: true).rejection == .lowMargin)
        #expect(judge(margin: -700, adapted: true).accepted)
        #expect(judge(margin: -700, adapted: true).noiseAdapted)
        #expect(SignalToNoise.decibels(power: 1000, over: 0) == nil)
    }

    @Test("the background level counts only pieces well clear of speech")
    func backgroundLevel() {
        var level = BackgroundLevel()
        // Quiet, then loud speech: the detector opens late, as PocketSphinx's does.
        for _ in 0..<60 { level.observe(piecePower: 100, inSpeech: false) }
        #expect(level.power == 100)
        for index in 0..<50 { level.observe(piecePower: 1_000_000, inSpeech: index >= 10) }
        // The end silence: quiet again, detector still open for 15 pieces, then closed.
        for index in 0..<60 { level.observe(piecePower: 100, inSpeech: index < 15) }
        // Neither the speech before the detector opened nor its tail reached the background.
        #expect(level.power == 100)
        // A steady noise that starts is followed within a second or two.
        for _ in 0..<150 { level.observe(piecePower: 10_000, inSpeech: false) }
        let power = level.power ?? 0
        #expect(power > 9_000 && power <= 10_000)
        #expect(BackgroundLevel.meanPower([3, -4]) == 12.5)
        #expect(BackgroundLevel().power == nil)
        #expect(BackgroundLevel().suppression(maximum: 30) == 0)
    }

    @Test("the speech-band power leaves speech frequencies as they are and drops DC and rumble")
    func subsonicFilter() {
        /// Power of one second of `hertz` (0: a DC offset) after half a second to settle, in
        /// dB against the unfiltered signal's.
        func loss(hertz: Double, amplitude: Double = 8000) -> Double {
            let samples = (0..<24_000).map { index in
                Int16(hertz == 0 ? amplitude : amplitude * sin(2 * .pi * hertz * Double(index) / 16_000))
            }
            var filter = SubsonicFilter()
            _ = filter.meanPower(Array(samples[..<8000]))
            let rest = Array(samples[8000...])
            return 10 * log10(filter.meanPower(rest) / BackgroundLevel.meanPower(rest))
        }
        #expect(abs(loss(hertz: 1000)) < 0.05)
        #expect(abs(loss(hertz: 200)) < 0.2)
        #expect(abs(loss(hertz: 60) + 3) < 0.3)  // the cutoff: half the power
        #expect(loss(hertz: 15) < -23)
        #expect(loss(hertz: 0) < -60)
        var filter = SubsonicFilter()
        #expect(filter.meanPower([]) == 0)
    }

    @Test("suppression stops at a microphone's own noise floor")
    func suppressionAmount() {
        func level(amplitude: Double) -> BackgroundLevel {
            var level = BackgroundLevel()
            for _ in 0..<60 { level.observe(piecePower: amplitude * amplitude, inSpeech: false) }
            return level
        }
        // A quiet room (about -71 dBFS) passes untouched; -50 dBFS loses 20 dB; loud noise the maximum.
        #expect(level(amplitude: 9).suppression(maximum: 30) == 0)
        #expect(level(amplitude: 104).suppression(maximum: 30) == 20)
        #expect(level(amplitude: 1036).suppression(maximum: 30) == 30)
        #expect(level(amplitude: 1036).suppression(maximum: 15) == 15)
    }
}

/// The voice keys, with the configuration tests' helpers.
extension ConfigurationTests {
    @Test("voice keys set the vocabulary and thresholds")
    func goodKeys() throws {
        let configuration = try DaemonConfiguration.parse("""
            voice:
              model_directory: /opt/model
              phrases: ["snap the picture=take_photo", "phone a friend=call_expert"]
              min_utterance_margin: -100
              max_command_ms: 2000
              end_silence_ms: 400
              noisy_min_utterance_margin: -900
              noise_suppression_db: 20
              noise_adapted_below_db: 12
              noise_adapted_min_utterance_margin: -650
              min_last_word_margin: -12
              noise_adapted_min_last_word_margin: -25
              noise_transform: /etc/sightline/site-noise.mllr
            """, file: "test.yaml")
        #expect(configuration.voice.modelDirectory == "/opt/model")
        #expect(configuration.voice.vocabulary.phrases.map(\.entry) == ["snap the picture=take_photo", "phone a friend=call_expert"])
        #expect(configuration.voice.thresholds == VoiceThresholds(minimumMargin: -100, maximumCommandMilliseconds: 2000, endSilenceMilliseconds: 400,
                                                                   noisyMinimumMargin: -900, noiseSuppressionDecibels: 20,
                                                                   noiseAdaptedBelowDecibels: 12, noiseAdaptedMinimumMargin: -650,
                                                                   minimumLastWordMargin: -12, noiseAdaptedMinimumLastWordMargin: -25))
        #expect(DaemonConfiguration.defaults.voice.thresholds.noiseSuppressionDecibels == VoiceThresholds.defaultNoiseSuppressionDecibels)
        #expect(configuration.voice.noiseTransformFile == "/etc/sightline/site-noise.mllr")
        #expect(DaemonConfiguration.defaults.voice.vocabulary == .builtIn)
        #expect(DaemonConfiguration.defaults.voice.noiseTransformFile == nil)
    }

    @Test("bad phrases are refused with key, line and the allowed actions", arguments: [
        ("[\"snap=take_pic\"]", "\"take_pic\" is not an action"),
        ("[\"snap\"]", "is not PHRASE=ACTION"),
        ("[\"zoom in=zoom_in\", \"zoom in=zoom_out\"]", "listed twice"),
        ("[\"zoom 2x=zoom_in\"]", "not a plain word"),
        ("[]", ""),
        ("take_photo", "expected a list"),
    ])
    func badPhrases(value: String, message: String) {
        let problems = rejected("log_level: info\nvoice:\n  phrases: \(value)\n")
        if message.isEmpty {
            #expect(problems.isEmpty)
            return
        }
        #expect(problems.count == 1)
        #expect(problems.first?.key == "voice.phrases")
        #expect(problems.first?.line == 3)
        #expect(problems.first?.message.contains(message) == true, "\(problems)")
        #expect(problems.first?.message.contains("actions: take_photo") == true)
    }

    /// The per-second keys would mean something else as a whole-utterance margin: refused with
    /// their line and the key that replaced them, never read under the new meaning.
    @Test("the per-second margin keys are refused, naming their replacement", arguments: [
        ("min_margin", "voice.min_utterance_margin"), ("noisy_min_margin", "voice.noisy_min_utterance_margin"),
    ])
    func retiredMarginKeys(key: String, replacement: String) {
        let problems = rejected("log_level: info\nvoice:\n  \(key): -200\n")
        #expect(problems.count == 1)
        #expect(problems.first?.key == "voice." + key)
        #expect(problems.first?.line == 3)
        #expect(problems.first?.message.contains("per second") == true, "\(problems)")
        #expect(problems.first?.message.contains("set \(replacement) instead") == true, "\(problems)")
    }

    @Test("thresholds out of range are refused")
    func badThresholds() {
        #expect(rejected("voice:\n  min_utterance_margin: 20000\n").first?.key == "voice.min_utterance_margin")
        #expect(rejected("voice:\n  end_silence_ms: 50\n").first?.key == "voice.end_silence_ms")
        #expect(rejected("voice:\n  noise_suppression_db: 61\n").first?.key == "voice.noise_suppression_db")
        #expect(rejected("voice:\n  model_directory: model\n").first?.key == "voice.model_directory")
        #expect(rejected("voice:\n  noise_transform: site.mllr\n").first?.key == "voice.noise_transform")
    }
}

@Suite("WAV files")
struct WAVFileTests {
    /// A canonical WAV with the given fmt fields and raw data bytes.
    func wav(tag: UInt16 = 1, channels: UInt16 = 1, rate: UInt32 = 16000, bits: UInt16 = 16, data: [UInt8],
             extensible: Bool = false, extraChunk: Bool = false, dataSize: UInt32? = nil) -> Data {
        var bytes: [UInt8] = []
        func u16(_ value: UInt16) { bytes += [UInt8(value & 0xFF), UInt8(value >> 8)] }
        func u32(_ value: UInt32) { for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8((value >> UInt32(shift)) & 0xFF)) } }
        bytes += Array("RIFF".utf8); u32(0); bytes += Array("WAVE".utf8)
        if extraChunk { bytes += Array("LIST".utf8); u32(3); bytes += [1, 2, 3, 0] }
        bytes += Array("fmt ".utf8); u32(extensible ? 40 : 16)
        u16(extensible ? 0xFFFE : tag); u16(channels); u32(rate)
        u32(rate * UInt32(channels) * UInt32(bits / 8)); u16(channels * bits / 8); u16(bits)
        if extensible { u16(22); u16(bits); u32(0); u16(tag); bytes += [UInt8](repeating: 0, count: 14) }
        bytes += Array("data".utf8); u32(dataSize ?? UInt32(data.count)); bytes += data
        return Data(bytes)
    }

    @Test("integer PCM of 8, 16, 24 and 32 bits and 32-bit float decode to the same values")
    func sampleFormats() throws {
        let eight = try WAVFile(data: wav(bits: 8, data: [128, 192, 64, 255]))
        #expect(eight.samples == [0, 0.5, -0.5, 127.0 / 128])
        let sixteen = try WAVFile(data: wav(data: [0x00, 0x40, 0x00, 0xC0, 0xFF, 0x7F, 0x00, 0x80]))
        #expect(sixteen.samples == [0.5, -0.5, 32767.0 / 32768, -1])
        let twentyFour = try WAVFile(data: wav(bits: 24, data: [0, 0, 0x40, 0, 0, 0xC0]))
        #expect(twentyFour.samples == [0.5, -0.5])
        let thirtyTwo = try WAVFile(data: wav(bits: 32, data: [0, 0, 0, 0x40, 0, 0, 0, 0xC0], extensible: true))
        #expect(thirtyTwo.samples == [0.5, -0.5])
        let float = try WAVFile(data: wav(tag: 3, bits: 32, data: Array(withUnsafeBytes(of: Float(0.25).bitPattern.littleEndian) { Array($0) })))
        #expect(float.samples == [0.25])
    }

    @Test("channels stay interleaved; other chunks are skipped; a cut-off data chunk keeps whole frames")
    func layout() throws {
        let stereo = try WAVFile(data: wav(channels: 2, rate: 44100, data: [0, 0x40, 0, 0xC0, 0, 0x20, 0, 0xE0, 1], extraChunk: true, dataSize: 1000))
        #expect(stereo.channels == 2)
        #expect(stereo.sampleRate == 44100)
        #expect(stereo.frameCount == 2)
        #expect(stereo.samples == [0.5, -0.5, 0.25, -0.25])
        let encoded = WAVFile.encode(samples: [1, -2, 300, -32768], sampleRate: 22050, channels: 2)
        let decoded = try WAVFile(data: encoded)
        #expect(decoded.samples.map { Int16($0 * 32768) } == [1, -2, 300, -32768])
        #expect(decoded.duration == 2.0 / 22050)
    }

    @Test("what is not a usable WAV file is refused with what to do")
    func refusals() {
        #expect(throws: WAVFile.Failure.notRIFFWave) { try WAVFile(data: Data("ID3 mp3 data here".utf8)) }
        #expect(throws: WAVFile.Failure.unsupportedFormat(tag: 2, bits: 4)) { try WAVFile(data: wav(tag: 2, bits: 4, data: [0])) }
        #expect(throws: WAVFile.Failure.missingChunk("data")) { try WAVFile(data: wav(data: []).prefix(36)) }
        #expect(throws: WAVFile.Failure.self) { try WAVFile(data: wav(channels: 0, data: [0, 0])) }
        #expect(throws: WAVFile.Failure.self) { try WAVFile(contentsOf: "/nonexistent.wav") }
        #expect(WAVFile.Failure.notRIFFWave.description.contains("sox"))
    }
}

@Suite("Pronunciation dictionary subset")
struct PronunciationDictionaryTests {
    @Test("the entries of the wanted words, alternates included, and the missing words")
    func subset() {
        let dictionary = Data("""
            a AH
            a(2) EY
            read R EH D
            read(2) R IY D
            reader R IY D ER
            the DH AH
            """.utf8)
        let subset = PronunciationDictionary.subset(of: dictionary, for: ["read", "a", "zzz"])
        #expect(subset.text == "a AH\na(2) EY\nread R EH D\nread(2) R IY D\n")
        #expect(subset.missing == ["zzz"])
        #expect(PronunciationDictionary.subset(of: Data(), for: ["a"]).missing == ["a"])
    }
}

@Suite("Noise transforms")
struct NoiseTransformTests {
    static func transform(_ lengths: [Int]) -> String { NoiseTransformText.uniform(lengths, scale: "1.5", bias: "0.25") }

    @Test("a transform as mllr_solve writes it is read with its stream lengths")
    func wellFormed() throws {
        #expect(try NoiseTransform(text: Self.transform([13, 13, 13])).streamLengths == [13, 13, 13])
        #expect(try NoiseTransform(text: Self.transform([39])).streamLengths == [39])
    }

    @Test("a cut-off, overlong or non-numeric transform, or one of several classes, is refused saying where", arguments: [
        (String(transform([13, 13, 13]).dropLast(20)), "ends before stream 3's variance scale"),
        (transform([13]) + "7\n", "follows the last stream"),
        (transform([2]).replacingOccurrences(of: "0.25", with: "nan"), "not a finite number"),
        (transform([2]).replacingOccurrences(of: "0.25", with: "x"), "\"x\", not a finite number"),
        ("2\n" + transform([2]).dropFirst(2), "number of regression classes is 2,"),
        ("1 1 0\n", "length of stream 1 is 0,"),
        ("", "ends before the number of regression classes"),
    ])
    func malformed(text: String, reason: String) {
        #expect(throws: NoiseTransform.Invalid.self) { try NoiseTransform(text: text) }
        do {
            _ = try NoiseTransform(text: text)
        } catch {
            #expect(error.description.contains(reason), "\(error)")
        }
    }

    @Test("the streams a model needs come from its feat.params: subvectors, else cepstra with both differences")
    func modelStreams() {
        let debian = """
            -lowerf 130
            -feat 1s_c_d_dd
            -svspec 0-12/13-25/26-38
            -model ptm
            """
        #expect(NoiseTransform.streamLengths(featureParameters: debian) == [13, 13, 13])
        #expect(NoiseTransform.streamLengths(featureParameters: "-svspec 0-12,26-38/13-25") == [26, 13])
        #expect(NoiseTransform.streamLengths(featureParameters: "-feat 1s_c_d_dd\n") == [39])
        #expect(NoiseTransform.streamLengths(featureParameters: "-feat 1s_c_d_dd\n-ceplen 12\n") == [36])
        #expect(NoiseTransform.streamLengths(featureParameters: "-feat s2_4x\n") == nil)
        #expect(NoiseTransform.streamLengths(featureParameters: "-svspec 12-0\n") == nil)
        #expect(NoiseTransform.streamLengths(featureParameters: "") == nil)
    }
}

@Suite("Voice tap")
struct VoiceTapTests {
    @Test("48 kHz stereo frames become 16 kHz mono with the tone kept; 16 kHz mono passes through")
    func conversion() throws {
        var tap = VoiceTap()
        let stereo = AudioFormat(sampleRate: 48000, channels: 2)
        var output: [Int16] = []
        for index in 0..<50 {
            // A 1 kHz tone on the left channel, silence on the right: the average keeps half of it.
            let samples = (0..<960).flatMap { frame -> [Int16] in
                let time = Double(index * 960 + frame) / 48000
                return [Int16(16000 * sin(2 * .pi * 1000 * time)), 0]
            }
            output += try tap.convert(AudioFrame(format: stereo, timestamp: .zero, sequence: UInt64(index), samples: samples))
        }
        // One second in; the resampler holds back its look-ahead.
        #expect(output.count > 15_900 && output.count <= 16_000)
        let settled = output[1000..<15_000]
        let crossings = zip(settled, settled.dropFirst()).filter { $0 < 0 && $1 >= 0 }.count
        #expect(abs(crossings - 875) <= 2, "\(crossings) rising zero crossings in 0.875 s of a 1 kHz tone")
        #expect(abs((settled.map { Int($0) }.max() ?? 0) - 8000) < 400)

        let mono = AudioFrame(format: .voice, timestamp: .zero, sequence: 0, samples: [1, 2, 3])
        #expect(try tap.convert(mono) == [1, 2, 3])
    }
}

@Suite struct WakePhraseTests {
    @Test func everyCommandStartsWithTheWakePhrase() throws {
        var vocabulary = VoiceVocabulary.builtIn
        try vocabulary.requireWakePhrase("  Okay   Glasses ")
        #expect(vocabulary.wakeWords == ["okay", "glasses"])
        #expect(vocabulary.grammar.contains("public <command> = okay glasses ( take a picture | begin recording"))
        #expect(vocabulary.action(forHypothesis: "okay glasses take a picture") == .takePhoto)
        #expect(vocabulary.action(forHypothesis: "take a picture") == nil)
        #expect(vocabulary.words.contains("glasses"))
        #expect(vocabulary.spoken(vocabulary.phrases[0]) == "okay glasses take a picture")
        #expect(throws: VoiceVocabularyError.self) { try vocabulary.requireWakePhrase("okay <glasses>") }
    }

    @Test func theConfigurationAddsTheWakePhraseAndItsTime() throws {
        let plain = try DaemonConfiguration.parse("voice:\n  enabled: true\n", file: "test.yaml")
        let woken = try DaemonConfiguration.parse("voice:\n  wake_phrase: okay glasses\n", file: "test.yaml")
        #expect(plain.voice.vocabulary.wakeWords.isEmpty)
        #expect(woken.voice.vocabulary.wakeWords == ["okay", "glasses"])
        #expect(woken.voice.thresholds.maximumCommandMilliseconds == plain.voice.thresholds.maximumCommandMilliseconds + 1000)
        #expect(throws: ConfigurationRejected.self) { try DaemonConfiguration.parse("voice:\n  wake_phrase: okay 42\n", file: "test.yaml") }
    }
}
