import Foundation
import SightlineCore
import SightlineTesting
import SightlineVoice
import Testing

/// Accuracy by speaking rate and by broadband noise, with floors near the measured figures so that
/// a regression fails (docs/VOICE.md lists them).
@Suite("Voice accuracy by speed and noise")
struct AccuracyTests {
    /// Every built-in phrase in every voice, `tempo` times as fast, noise mixed at `snr` dB over
    /// the whole recording (a hall is never quiet between commands).
    func accuracy(tempo: Double, snr: Double?) async throws -> (right: Int, wrong: Int, total: Int) {
        var corpus = VoiceCorpus()
        corpus.pause(0.8)
        let phrases = VoiceFixture.configuration.vocabulary.phrases
        for voice in SpeechSynthesizer.voices {
            for phrase in phrases { try corpus.say(phrase.phrase, voice: voice, tempo: tempo) }
        }
        var samples = corpus.samples
        if let snr {
            samples = SpeechSynthesizer.mix(samples, noise: SpeechSynthesizer.noise(seconds: 7.3, amplitude: 10000, seed: 3), snr: snr)
        }
        let configuration = VoiceFixture.configuration
        let decisions = try await CommandRecognizer.decide(samples: samples, modelDirectory: configuration.modelDirectory,
                                                           vocabulary: configuration.vocabulary, thresholds: configuration.thresholds)
        let reasons = Dictionary(grouping: decisions.compactMap(\.rejection), by: { $0 }).mapValues(\.count)
        print("tempo \(tempo) snr \(snr ?? 99): \(decisions.count) utterances, rejections \(reasons), speech \(decisions.map { String(format: "%.1f", $0.speechSeconds) }.prefix(12))")
        var right = 0, wrong = 0
        for decision in decisions where decision.accepted {
            let part = corpus.part(of: decision)
            if let part, phrases.first(where: { $0.phrase == part.text })?.action == decision.action { right += 1 } else { wrong += 1 }
        }
        return (right, wrong, corpus.parts.count)
    }

    /// Measured 52 of 52 at each rate (normal speed is the built-in phrase test).
    @Test("speaking rate", arguments: [(0.9, 50), (1.15, 50)])
    func speakingRate(tempo: Double, floor: Int) async throws {
        let result = try await accuracy(tempo: tempo, snr: nil)
        print("voice accuracy tempo \(tempo): \(result.right)/\(result.total), \(result.wrong) wrong")
        #expect(result.right >= floor)
        #expect(result.wrong == 0)
    }

    /// White noise is the hard case for this model (docs/VOICE.md): the floors hold today's figures
    /// (26, 1 and 0 of 52) with some slack; what must never happen is a wrong action.
    @Test("broadband noise", arguments: [(20.0, 20), (10.0, 0), (5.0, 0)])
    func noise(snr: Double, floor: Int) async throws {
        let result = try await accuracy(tempo: 1.0, snr: snr)
        print("voice accuracy white noise \(snr) dB: \(result.right)/\(result.total), \(result.wrong) wrong")
        #expect(result.right >= floor)
        #expect(result.wrong <= 1)
    }

    @Test("unrelated speech in white noise triggers nothing", arguments: [20.0, 10.0])
    func unrelatedSpeechInNoise(snr: Double) async throws {
        var corpus = VoiceCorpus()
        corpus.pause(0.8)
        for (index, sentence) in VoiceFixture.unrelatedSentences.enumerated() {
            try corpus.say(sentence, voice: SpeechSynthesizer.voices[index % SpeechSynthesizer.voices.count], pauseAfter: 0.9)
        }
        let samples = SpeechSynthesizer.mix(corpus.samples, noise: SpeechSynthesizer.noise(seconds: 7.3, amplitude: 10000, seed: 5), snr: snr)
        let configuration = VoiceFixture.configuration
        let decisions = try await CommandRecognizer.decide(samples: samples, modelDirectory: configuration.modelDirectory,
                                                           vocabulary: configuration.vocabulary, thresholds: configuration.thresholds)
        let accepted = decisions.filter(\.accepted)
        print("false accepts in white noise \(snr) dB: \(accepted.count) in \(corpus.parts.count) sentences; \(accepted.map(\.phrase))")
        #expect(decisions.count >= corpus.parts.count / 2)
        #expect(accepted.isEmpty)
    }
}
