import Foundation
import SightlineCore
import SightlineTesting
import Testing

/// `sightctl voice test` and `voice list` as an integrator runs them: the real binary, real WAV
/// files in other formats, the configuration file the daemon would read.
@Suite("sightctl voice")
struct SightctlVoiceTests {
    struct Detections: Decodable {
        struct Detection: Decodable {
            let phrase: String
            let action: String?
            let start_s: Double
            let end_s: Double
            let score: Int
            let decided_s: Double
            let last_word_margin: Double?
        }
        let detections: [Detection]
    }

    @Test("voice test hears a command in a 44.1 kHz stereo recording, between other speech, at the right time")
    func resampledStereo() throws {
        var corpus = VoiceCorpus()
        corpus.pause(0.6)
        try corpus.say("the cover is off and the belt is loose", voice: "rms", pauseAfter: 0.8)
        try corpus.say("zoom in closer", voice: "kal16", pauseAfter: 1.0)
        let directory = try TemporaryDirectory()
        let path = directory.file("site.wav")
        try SpeechSynthesizer.writeWAV(corpus.samples, to: path, rate: 44100, channels: 2, bits: 24)
        let file = try WAVFile(contentsOf: path)
        #expect(file.sampleRate == 44100 && file.channels == 2 && file.bitsPerSample == 24)

        let result = try CommandLineTool.run("sightctl", ["voice", "test", path, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONDecoder().decode(Detections.self, from: Data(result.stdout.utf8))
        try #require(report.detections.count == 1, "\(result.stdout)")
        let detection = report.detections[0]
        let said = corpus.parts[1]
        #expect(detection.action == "zoom_in")
        #expect(detection.phrase == "zoom in closer")
        #expect(abs(detection.start_s - said.start) < 0.25, "start \(detection.start_s) vs \(said.start)")
        #expect(abs(detection.end_s - said.end) < 0.25, "end \(detection.end_s) vs \(said.end)")
        // Decided after the end silence, and the last word passed its test.
        #expect(detection.decided_s > detection.end_s && detection.decided_s - detection.end_s < 0.6, "\(result.stdout)")
        #expect((detection.last_word_margin ?? -99) >= Double(VoiceThresholds.defaultMinimumLastWordMargin), "\(result.stdout)")

        let text = try CommandLineTool.run("sightctl", ["voice", "test", path, "--all"])
        #expect(text.stdout.contains("zoom in closer → zoom_in"))
        #expect(text.stdout.contains("rejected: "), "the leading sentence is shown as rejected: \(text.stdout)")
    }

    @Test("voice test in noise: each utterance's SNR estimate, the noise-adapted model judging, and the audio as the decoders heard it")
    func noisyRecording() throws {
        var corpus = VoiceCorpus()
        corpus.pause(1.5)
        try corpus.say("the cover is off and the belt is loose", voice: "rms", pauseAfter: 0.8)
        try corpus.say("take a picture", voice: "slt", pauseAfter: 1.0)
        corpus.addNoise(snr: 5, seed: 11)
        let directory = try TemporaryDirectory()
        let path = directory.file("hall.wav")
        try WAVFile.encode(samples: corpus.samples, sampleRate: 16000, channels: 1).write(to: URL(fileURLWithPath: path))
        let heardPath = directory.file("heard.wav")

        let result = try CommandLineTool.run("sightctl", ["voice", "test", path, "--all", "--json", "--write-heard", heardPath])
        #expect(result.status == 0, "\(result.stderr)")
        struct Report: Decodable {
            struct Utterance: Decodable {
                let snr_db: Double?
                let noise_adapted: Bool
            }
            let detections: [Utterance]
            let rejected: [Utterance]
        }
        let report = try JSONDecoder().decode(Report.self, from: Data(result.stdout.utf8))
        let utterances = report.detections + report.rejected
        // Mixed at 5 dB; the estimate is coarse but far below the 15 dB switch.
        let estimates = utterances.compactMap(\.snr_db)
        #expect(!estimates.isEmpty && estimates.allSatisfy { $0 < 15 }, "\(result.stdout)")
        #expect(utterances.allSatisfy { ($0.snr_db ?? 99) >= 15 || $0.noise_adapted }, "\(result.stdout)")

        // The suppressor's output: as long as the recording, and the noise after the last phrase
        // (its last half second) attenuated by more than 10 dB.
        let heard = try WAVFile(contentsOf: heardPath)
        #expect(heard.sampleRate == 16000 && heard.channels == 1)
        let samples = heard.int16Samples
        #expect(samples.count == corpus.samples.count)
        let before = BackgroundLevel.meanPower(Array(corpus.samples.suffix(8000)))
        let after = BackgroundLevel.meanPower(Array(samples.suffix(8000)))
        #expect(after < before / 10, "noise power \(before) before the suppressor, \(after) after")

        let plain = try CommandLineTool.run("sightctl", ["voice", "test", path, "--all"])
        #expect(plain.stdout.contains("(noise-adapted model)"), "\(plain.stdout)")
    }

    @Test("voice list and voice test read the configured phrases; bad input is refused with a reason")
    func configuredPhrases() throws {
        let directory = try TemporaryDirectory()
        let config = directory.file("sightlined.yaml")
        try """
            voice:
              phrases: ["snap the picture=take_photo", "phone the office=call_expert"]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let list = try CommandLineTool.run("sightctl", ["voice", "list", "--json", "--config", config])
        #expect(list.status == 0)
        struct Phrases: Decodable {
            struct Entry: Decodable, Equatable { let phrase: String; let action: String }
            let phrases: [Entry]
        }
        let phrases = try JSONDecoder().decode(Phrases.self, from: Data(list.stdout.utf8)).phrases
        #expect(phrases == [.init(phrase: "snap the picture", action: "take_photo"), .init(phrase: "phone the office", action: "call_expert")])

        var corpus = VoiceCorpus()
        corpus.pause(0.6)
        try corpus.say("phone the office", voice: "slt")
        let recording = directory.file("office.wav")
        try WAVFile.encode(samples: corpus.samples, sampleRate: 16000, channels: 1).write(to: URL(fileURLWithPath: recording))
        let heard = try CommandLineTool.run("sightctl", ["voice", "test", recording, "--config", config])
        #expect(heard.status == 0)
        #expect(heard.stdout.contains("phone the office → call_expert"), "\(heard.stdout)")

        try "voice:\n  phrases: [\"snap=take_pic\"]\n".write(toFile: config, atomically: true, encoding: .utf8)
        let bad = try CommandLineTool.run("sightctl", ["voice", "list", "--config", config])
        #expect(bad.status == 78)
        #expect(bad.stderr.contains("\(config):2: voice.phrases:"), "\(bad.stderr)")

        let notATransform = directory.file("site.mllr")
        try "1\n3\n13\n0.5 0.25\n".write(toFile: notATransform, atomically: true, encoding: .utf8)
        try "voice:\n  noise_transform: \(notATransform)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let badTransform = try CommandLineTool.run("sightctl", ["voice", "test", recording, "--config", config])
        #expect(badTransform.status == 78)
        #expect(badTransform.stderr.contains("the noise transform \(notATransform) (voice.noise_transform) cannot be used: it ends before stream 1's rotation"),
                "\(badTransform.stderr)")

        try Data("not a wav".utf8).write(to: URL(fileURLWithPath: recording))
        let garbage = try CommandLineTool.run("sightctl", ["voice", "test", recording])
        #expect(garbage.status == 65)
        #expect(garbage.stderr.contains("not a WAV file"))
    }
}
