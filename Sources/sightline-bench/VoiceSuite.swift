import Foundation
import SightlineCore
import SightlineTesting
import SightlineVoice

/// `bench/run voice`: the recognizer with the default configuration on the full synthesised corpus.
///
/// - `accuracy_clean`, `accuracy_10db`, `accuracy_5db`: percent of commands recognised with the
///   right action, every built-in phrase in every flite voice at sox tempo 0.9, 1.0 and 1.15, with
///   white noise mixed over the whole recording at 10 and 5 dB SNR.
/// - `false_activations_per_hour`: accepted commands per hour of audio without one — the unrelated
///   sentences (near misses included) in every voice, clean and at 10 and 5 dB SNR, then silence,
///   mains hum and broadband noise.
/// - `end_of_phrase_to_action_ms_p50`/`_p99`: audio fed through `VoiceCommandListener` in 20 ms
///   chunks at the pace of real time; from the moment the last sample of a phrase was handed over
///   to the moment its command arrived.
/// - `cpu_pct` (of one core) and `rss_mb`: the process while it listens in real time.
enum VoiceSuite {
    static let configuration = DaemonConfiguration.defaults.voice
    static let tempos = [0.9, 1.0, 1.15]

    static func run() async throws -> [(String, Double)] {
        // Real time first, while the process holds nothing but the recognizer and its audio.
        let live = try await realTime()
        var results: [(String, Double)] = []
        for (key, snr) in [("accuracy_clean", nil), ("accuracy_10db", 10.0), ("accuracy_5db", 5.0)] as [(String, Double?)] {
            var right = 0, wrong = 0, total = 0
            for tempo in tempos {
                let corpus = try VoiceCorpus.commands(configuration.vocabulary, tempo: tempo, snr: snr)
                let score = corpus.score(try await decide(corpus.samples), vocabulary: configuration.vocabulary)
                right += score.right
                wrong += score.wrong
                total += corpus.parts.count
            }
            print("\(key): \(right)/\(total) right, \(wrong) wrong actions")
            results.append((key, 100 * Double(right) / Double(total)))
        }
        var falseActivations = 0
        var seconds = 0.0
        for snr in [nil, 10.0, 5.0] as [Double?] {
            let corpus = try VoiceCorpus.unrelatedSpeech(snr: snr)
            let accepted = try await decide(corpus.samples).filter(\.accepted)
            print("unrelated speech at \(snr.map { "\(Int($0)) dB" } ?? "clean"): \(accepted.count) false in \(Int(corpus.seconds)) s \(accepted.map(\.phrase))")
            falseActivations += accepted.count
            seconds += corpus.seconds
        }
        let background = SpeechSynthesizer.roomTone(seconds: 60) + SpeechSynthesizer.hum(seconds: 60)
            + SpeechSynthesizer.noise(seconds: 60, amplitude: 3000, seed: 11)
        let backgroundAccepted = try await decide(background).filter(\.accepted)
        print("silence, hum and noise: \(backgroundAccepted.count) false in 180 s")
        falseActivations += backgroundAccepted.count
        seconds += 180
        results.append(("false_activations_per_hour", Double(falseActivations) * 3600 / seconds))
        print(String(format: "%d false activations in %.2f h of audio without a command", falseActivations, seconds / 3600))
        return results + live
    }

    static func decide(_ samples: [Int16]) async throws -> [UtteranceDecision] {
        try await CommandRecognizer.decide(samples: samples, modelDirectory: configuration.modelDirectory,
                                           vocabulary: configuration.vocabulary, thresholds: configuration.thresholds,
                                           noiseTransformFile: configuration.noiseTransformFile)
    }

    /// Every phrase in every voice at 10 dB SNR, fed in real time.
    static func realTime() async throws -> [(String, Double)] {
        let corpus = try VoiceCorpus.commands(configuration.vocabulary, snr: 10)
        let listener = try await VoiceCommandListener.start(
            modelDirectory: configuration.modelDirectory, vocabulary: configuration.vocabulary, thresholds: configuration.thresholds,
            noiseTransformFile: configuration.noiseTransformFile)
        let clock = ContinuousClock()
        let start = clock.now
        let cpuBefore = processCPUSeconds()
        let samples = corpus.samples
        let feeder = Task {
            for (index, offset) in stride(from: 0, to: samples.count, by: 320).enumerated() {
                try? await clock.sleep(until: start + .milliseconds(20 * (index + 1)))
                listener.submit(Array(samples[offset..<min(offset + 320, samples.count)]))
            }
        }
        let consumer = Task {
            // Wall time from the phrase's end to the command, and the part of it that was audio
            // still to come before the end silence closed the utterance.
            var latencies: [(wall: Double, audio: Double, phrase: String)] = []
            for await decision in listener.decisions where decision.accepted {
                let arrived = Statistics.seconds(start.duration(to: clock.now))
                if let spoken = corpus.part(of: decision) {
                    // The chunk holding the phrase's last sample went in at the end of its 20 ms.
                    let handedOver = (spoken.end * 50).rounded(.up) / 50
                    latencies.append(((arrived - handedOver) * 1000, (decision.decidedAtSeconds - handedOver) * 1000, decision.phrase))
                }
            }
            return latencies
        }
        await feeder.value
        let wall = Statistics.seconds(start.duration(to: clock.now))
        let cpu = processCPUSeconds() - cpuBefore
        let rss = StartupSuite.residentMegabytes(pid: getpid())
        let statistics = await listener.finish()
        let measured = await consumer.value
        print("real time: \(measured.count)/\(corpus.parts.count) commands, \(statistics.droppedSamples) samples dropped, "
            + "\(String(format: "%.1f", cpu)) s CPU in \(String(format: "%.1f", wall)) s; slowest: "
            + measured.sorted { $0.wall > $1.wall }.prefix(3).map {
                "\($0.phrase) \(Int($0.wall)) ms (\(Int($0.audio)) ms of it audio before the decision)"
            }.joined(separator: ", "))
        let latencies = measured.map(\.wall)
        return [
            ("end_of_phrase_to_action_ms_p50", Statistics.percentile(latencies, 50)),
            ("end_of_phrase_to_action_ms_p99", Statistics.percentile(latencies, 99)),
            ("cpu_pct", 100 * cpu / wall),
            ("rss_mb", rss),
        ]
    }

    /// User and system time of this process (`getrusage`).
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}
