import Foundation
import SightlineCore
import SightlineTesting
import SightlineVoice

enum VoiceFixture {
    static let configuration = DaemonConfiguration.defaults.voice

    static func decide(_ corpus: VoiceCorpus, vocabulary: VoiceVocabulary = configuration.vocabulary,
                       thresholds: VoiceThresholds = configuration.thresholds,
                       noiseTransformFile: String? = nil) async throws -> [UtteranceDecision] {
        try await CommandRecognizer.decide(samples: corpus.samples, modelDirectory: configuration.modelDirectory,
                                           vocabulary: vocabulary, thresholds: thresholds, noiseTransformFile: noiseTransformFile)
    }
}
