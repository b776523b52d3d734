import Foundation
import SightlineCore
import SightlineTesting
import SightlineVoice
import Testing

/// Accuracy by speaking rate and by broadband noise, and false activations on unrelated speech in
/// noise, with the default configuration (noise suppressor included). The floors are the figures
/// measured in docs/VOICE.md less a little slack for the synthesiser, so a regression fails;
/// `bench/run voice` measures the full corpus (three speaking rates at every noise level).
@Suite("Voice accuracy by speed and noise")
struct AccuracyTests {
    func accuracy(tempo: Double, snr: Double?) async throws -> (right: Int, wrong: Int, total: Int, noiseAdapted: Int) {
        let configuration = VoiceFixture.configuration
        let corpus = try VoiceCorpus.commands(configuration.vocabulary, tempo: tempo, snr: snr)
        let decisions = try await VoiceFixture.decide(corpus)
        let reasons = Dictionary(grouping: decisions.compactMap(\.rejection), by: { $0 }).mapValues(\.count)
        print("tempo \(tempo) snr \(snr ?? 99): \(decisions.count) utterances, rejections \(reasons), "
            + "margins \(decisions.filter { $0.action != nil }.map(\.margin).sorted())")
        let score = corpus.score(decisions, vocabulary: configuration.vocabulary)
        return (score.right, score.wrong, corpus.parts.count, decisions.filter(\.noiseAdapted).count)
    }

    /// Measured 52 of 52 at each rate (normal speed is the built-in phrase test); the target is 97 %.
    @Test("speaking rate", arguments: [(0.9, 51), (1.15, 51)])
    func speakingRate(tempo: Double, floor: Int) async throws {
        let result = try await accuracy(tempo: tempo, snr: nil)
        print("voice accuracy tempo \(tempo): \(result.right)/\(result.total), \(result.wrong) wrong")
        #expect(result.right >= floor)
        #expect(result.wrong == 0)
        #expect(result.noiseAdapted == 0, "clean speech is judged by the plain model")
    }

    /// White noise over the whole recording (docs/VOICE.md has the figures). Noise may cost
    /// commands; it must never produce a wrong action.
    @Test("broadband noise", arguments: [(20.0, NoiseFloors.at20), (10.0, NoiseFloors.at10), (5.0, NoiseFloors.at5)])
    func noise(snr: Double, floor: Int) async throws {
        let result = try await accuracy(tempo: 1.0, snr: snr)
        print("voice accuracy white noise \(snr) dB: \(result.right)/\(result.total), \(result.wrong) wrong, "
            + "\(result.noiseAdapted) utterances judged by the noise-adapted model")
        #expect(result.right >= floor)
        #expect(result.wrong == 0)
        if snr <= 10 { #expect(result.noiseAdapted >= result.total / 2) }
    }

    /// At 10 dB every sentence in every voice (160), as `bench/run voice` does: the bench's one
    /// false activation with the previous defaults ("zoom out wider" in "the zoom lens is dirty")
    /// was in a voice that a single pass does not use.
    @Test("unrelated speech in white noise triggers nothing", arguments: [(20.0, 1), (10.0, 4), (5.0, 1)])
    func unrelatedSpeechInNoise(snr: Double, passes: Int) async throws {
        let corpus = try VoiceCorpus.unrelatedSpeech(passes: passes, snr: snr)
        let decisions = try await VoiceFixture.decide(corpus)
        let accepted = decisions.filter(\.accepted)
        print("false accepts in white noise \(snr) dB: \(accepted.count) in \(corpus.parts.count) sentences; \(accepted.map(\.phrase)); "
            + "closest margins \(decisions.filter { $0.rejection == .lowMargin }.map(\.margin).sorted().suffix(5))")
        #expect(decisions.count >= corpus.parts.count / 2)
        #expect(accepted.isEmpty)
    }

    /// The hardest negatives: 40 short sentences sharing most of a command's words ("say it
    /// again", "mark this down"), in every voice. Some get through at any threshold that keeps
    /// the commands (docs/VOICE.md); the ceilings hold the measured counts, so a change of the
    /// decision cannot let more of them through unnoticed.
    @Test("near misses of the commands", arguments: [(nil, NearMissCeilings.clean), (10.0, NearMissCeilings.at10)] as [(Double?, Int)])
    func nearMisses(snr: Double?, ceiling: Int) async throws {
        let corpus = try VoiceCorpus.nearMisses(snr: snr)
        let accepted = try await VoiceFixture.decide(corpus).filter(\.accepted)
        print("near misses accepted at \(snr ?? 99) dB: \(accepted.count) of \(corpus.parts.count): "
            + "\(accepted.map { "\(corpus.part(of: $0)?.text ?? "?") as \($0.phrase) (\($0.margin))" })")
        #expect(accepted.count <= ceiling)
    }
}

/// Near misses (`VoiceCorpus.nearMisses`, 160 utterances) the default decision lets through:
/// measured 4 clean and 14 at 10 dB SNR with the last-word test, the noise-adapted model judging
/// below 15 dB and 250 ms of end silence (8 and 15 without the last-word test; docs/VOICE.md).
enum NearMissCeilings {
    static let clean = 4
    static let at10 = 14
}

/// Commands of 52 that must still be recognised at each SNR: the measured 50, 41 and 19 with the
/// defaults (below 15 dB the noise-adapted model with `voice.noise_adapted_min_utterance_margin`
/// −1000 and `voice.noise_adapted_min_last_word_margin` −20; above, `voice.min_utterance_margin` −150
/// falling to `voice.noisy_min_utterance_margin` −800 and `voice.min_last_word_margin` −16;
/// `voice.max_command_ms` 1450, `voice.end_silence_ms` 250) less one or two. Without the last-word
/// test, at −700: 51, 33 and 11; the plain model alone kept 51, 30 and 6 (before the suppressor and
/// the noise-aware margin: 26, 1 and 0). The decoders and the noise are deterministic; the slack
/// is for other versions of flite and PocketSphinx. The issue's target, 97 % at 10 dB, is not
/// reached yet (docs/VOICE.md); raise these as it comes closer.
enum NoiseFloors {
    static let at20 = 49
    static let at10 = 39
    static let at5 = 17
}
