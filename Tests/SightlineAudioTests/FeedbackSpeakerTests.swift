import Foundation
import SightlineAudio
import SightlineCore
import SightlineTesting
import Testing

/// Spoken confirmations from the espeak-ng library and earcons, played through both backends.
@Suite("Feedback: espeak-ng speech and earcons on the speaker", .serialized)
struct FeedbackSpeakerTests {
    static let confirmation = "Recording started."

    @Test("espeak-ng speaks a confirmation off the caller's thread: audible, of plausible length, alike each time even when asked concurrently")
    func synthesis() async throws {
        async let first = SpeechVoice.shared.synthesize(Self.confirmation)
        async let second = SpeechVoice.shared.synthesize(Self.confirmation)
        let (one, two) = try await (first, second)
        #expect(one.format.channels == 1)
        #expect(one.format.sampleRate >= 16000)
        #expect(one.duration >= .milliseconds(500) && one.duration <= .seconds(3), "\(one.duration)")
        let level = AudioLevel(samples: one.samples)
        #expect(level.rmsDBFS > -35, "\(level)")
        // espeak-ng randomises its waveform a little, so two runs are alike (measured ≈ 0.5), not
        // identical; an unrelated text is not alike at all.
        let same = SignalMatch.find(reference: one.samples, in: two.samples, maxLag: 2000)
        #expect(same.correlation >= 0.3, "two syntheses of the same text: \(same)")
        #expect(abs(one.samples.count - two.samples.count) <= one.format.sampleRate / 50)
        let other = try await SpeechVoice.shared.synthesize("Photo taken.")
        let different = SignalMatch.find(reference: one.samples, in: other.samples, maxLag: 2000)
        #expect(different.correlation < same.correlation, "another text: \(different), the same text: \(same)")
    }

    @Test("A voice espeak-ng does not have fails with a message that says what to check")
    func unknownVoice() async {
        await #expect(throws: AudioError.self) { try await SpeechVoice.shared.synthesize("hello", voice: "no-such-voice-xx") }
        do {
            _ = try await SpeechVoice.shared.synthesize("hello", voice: "no-such-voice-xx")
        } catch {
            #expect(error.description.contains("espeak-ng --voices"), "\(error)")
        }
    }

    @Test("Through ALSA: an earcon and a spoken clip reach the device sample for sample at 48 kHz; speak() plays a whole phrase")
    func alsaFeedback() async throws {
        let directory = try TemporaryDirectory(prefix: "sightline-feedback")
        let outfile = directory.file("out.raw")
        let backend = ALSABackend(configuration: ALSABackendTests.configuration(infile: directory.file("none.raw"), outfile: outfile))
        let speaker = FeedbackSpeaker(backend: backend, device: "speech_out", leadIn: .milliseconds(40))

        let statistics = try await speaker.earcon(.accepted)
        let expected = Earcon.accepted.clip(sampleRate: 48000).frames(lead: .milliseconds(40)).flatMap(\.samples)
        let written = try RawAudio.read(outfile)
        #expect(written.count == expected.count && written == expected, "the earcon was not written as generated")
        #expect(statistics.frames == UInt64(expected.count / 960))

        let spoken = try await SpeechVoice.shared.synthesize(Self.confirmation)
        try await speaker.play(spoken)
        let resampled = try RawAudio.read(outfile)
        let converted = try spoken.converted(to: .stream).frames(lead: .milliseconds(40)).flatMap(\.samples)
        #expect(resampled.count == converted.count && resampled == converted, "the 22050 Hz clip was not written as converted to 48 kHz")

        try await speaker.speak(Self.confirmation)
        let phrase = try RawAudio.read(outfile)
        let match = SignalMatch.find(reference: converted, in: phrase, maxLag: 4800)
        // espeak-ng varies its waveform from run to run (two runs correlate at about 0.5), so
        // what speak() wrote is compared by length and level, not sample by sample.
        #expect(abs(phrase.count - converted.count) <= 48000 / 10, "\(phrase.count) samples written, \(converted.count) expected")
        #expect(abs(AudioLevel(samples: phrase).rmsDBFS - AudioLevel(samples: converted).rmsDBFS) <= 3)
    }

    @Test("Through PulseAudio: an earcon and a spoken phrase, asked for at once, play one after the other, never mixed, and the sink's monitor records both")
    func pulseFeedback() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer()
        try await server.start()
        let recorder = try PulseBackend(server: server.server).openCapture(device: server.monitorSource, format: .stream)
        try await PulseBackendTests.warmUp(recorder)
        // A deep buffer so a loaded machine does not underrun (an underrun inserts silence).
        // A long lead-in: the idle null sink loses about the first 100 ms after it starts.
        let speaker = FeedbackSpeaker(backend: PulseBackend(server: server.server, playbackLatency: .milliseconds(200)), device: server.sinkName,
                                      leadIn: .milliseconds(400))
        let earcon = Earcon.recordingStarted.clip(sampleRate: 48000)
        // espeak-ng varies from run to run: the phrase is synthesised once and played as a clip.
        let phrase = try await SpeechVoice.shared.synthesize(Self.confirmation)
        let spoken = try phrase.converted(to: .stream)

        async let recording = PulseBackendTests.collect(recorder, for: earcon.duration + spoken.duration + .seconds(4))
        async let playedEarcon = speaker.earcon(.recordingStarted)
        async let playedSpeech = speaker.play(phrase)
        let (earconStatistics, speechStatistics) = try await (playedEarcon, playedSpeech)
        let recorded = await recording.flatMap(\.samples)
        await recorder.stop()

        let earconMatch = SignalMatch.find(reference: earcon.samples, in: recorded, maxLag: 48000 * 3)
        let speechMatch = SignalMatch.find(reference: spoken.samples, in: recorded, maxLag: 48000 * 4)
        print("feedback from the monitor: earcon \(earconMatch) \(earconStatistics); speech \(speechMatch) \(speechStatistics)")
        #expect(earconMatch.correlation >= 0.8, "\(earconMatch)")
        #expect(abs(earconMatch.levelDifferenceDB) <= 3, "\(earconMatch)")
        #expect(speechMatch.correlation >= 0.8, "\(speechMatch)")
        #expect(abs(speechMatch.levelDifferenceDB) <= 3, "\(speechMatch)")
        // One after the other, not mixed (which goes first is the scheduler's choice).
        let apart = speechMatch.lag >= earconMatch.lag + earcon.samples.count || earconMatch.lag >= speechMatch.lag + spoken.samples.count
        #expect(apart, "earcon at \(earconMatch.lag), speech at \(speechMatch.lag): they overlap")
    }

    @Test("A speaker that does not exist fails a long clip within its time limit instead of blocking it, and the next clip, forever")
    func missingSpeakerFailsInTime() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer()
        try await server.start()
        let speaker = FeedbackSpeaker(backend: PulseBackend(server: server.server), device: "no_such_speaker")
        // Longer than the playback queue holds: its frames would wait for room that never comes.
        let clip = AudioClip(format: .stream, samples: [Int16](repeating: 1000, count: 48000 * 3))
        let started = ContinuousClock.now
        await #expect(throws: AudioError.self) { try await speaker.play(clip) }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(3) + clip.duration + .seconds(2), "took \(elapsed)")
        await #expect(throws: AudioError.self) { try await speaker.earcon(.rejected) }
    }
}
