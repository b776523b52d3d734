import Foundation
import SightlineAudio
import SightlineCore
import SightlineTesting
import Testing

/// The ALSA backend on a real kernel driver: snd-aloop, where what is played into
/// `hw:Loopback,0,0` is captured on `hw:Loopback,1,0`. The recorder opens first (it fixes the
/// loopback's format); the player's deep buffer rides out the emulated CPU's hiccups.
extension DeviceLab {
    @Suite("ALSA on snd-aloop")
    struct AudioLabTests {
        static let playbackDevice = "hw:Loopback,0,0"
        static let captureDevice = "hw:Loopback,1,0"
        static let player = ALSABackend(periodTime: .milliseconds(20), bufferPeriods: 10)
        static let recorder = ALSABackend(periodTime: .milliseconds(20), bufferPeriods: 4)
        /// For comparing signals: 200 ms of capture buffer, so the emulated CPU's stalls (an
        /// overrun shifts everything after it) do not decide the result. The overrun test keeps
        /// the shallow one.
        static let steadyRecorder = ALSABackend(periodTime: .milliseconds(20), bufferPeriods: 10)

        /// Reads frames until `duration` of audio arrived or `timeout` passed.
        static func collect(_ capture: any AudioCapture, duration: Duration, timeout: Duration) async -> [Int16] {
            var samples: [Int16] = []
            let wanted = AudioFormat.stream.frames(milliseconds: Int(duration / .milliseconds(1)))
            let deadline = ContinuousClock.now + timeout
            while samples.count < wanted, ContinuousClock.now < deadline {
                guard capture.frames.count > 0 else {
                    try? await Task.sleep(for: .milliseconds(5))
                    continue
                }
                guard let frame = await capture.frames.next() else { break }
                samples += frame.samples
            }
            return samples
        }

        @Test("Speech played into the loopback comes back through our ALSA capture: correlation ≥ 0.8 after alignment, level within 3 dB")
        func loopbackSpeech() async throws {
            let speech = try await SpeechVoice.shared.synthesize("Sightline audio check on the loopback card.").converted(to: .stream)
            // The emulated CPU stalls now and then for longer than either side's buffer; a stall
            // cuts a gap into the recording (usually counted as an xrun). A round trip that does
            // not match is tried again, up to three times, each printed with its xruns: a broken
            // path fails all three.
            var attempts: [(match: SignalMatch, xruns: UInt64)] = []
            for attempt in 1...3 {
                let (match, xruns) = try await roundTrip(speech)
                print("snd-aloop speech, attempt \(attempt): \(match); \(xruns) xruns")
                attempts.append((match, xruns))
                if match.correlation >= 0.8 && abs(match.levelDifferenceDB) <= 3 { break }
            }
            let best = try #require(attempts.max { $0.match.correlation < $1.match.correlation })
            #expect(best.match.correlation >= 0.8, "\(attempts)")
            #expect(abs(best.match.levelDifferenceDB) <= 3, "\(attempts)")
        }

        /// Plays `speech` into the loopback and records it back; returns how well the recording
        /// matches and how many xruns either side counted.
        func roundTrip(_ speech: AudioClip) async throws -> (SignalMatch, xruns: UInt64) {
            let capture = try Self.steadyRecorder.openCapture(device: Self.captureDevice, format: .stream)
            let playback = try Self.player.openPlayback(device: Self.playbackDevice, format: .stream)
            let frames = speech.frames(tail: .milliseconds(300))
            async let recorded = Self.collect(capture, duration: speech.duration + .seconds(1), timeout: .seconds(60))
            for frame in frames { #expect(await playback.play(frame)) }
            #expect(await playback.drain(timeout: .seconds(30)))
            let samples = await recorded
            await playback.stop()
            await capture.stop()
            #expect(playback.statistics.frames == UInt64(frames.count))
            // Aligned piece by piece, so that one gap shifts only what follows it.
            let match = SignalMatch.piecewise(reference: speech.samples, in: samples, maxLag: 48000)
            print("capture \(capture.statistics); playback \(playback.statistics)")
            return (match, capture.statistics.xruns + playback.statistics.xruns)
        }

        @Test("A reader that stalls makes the loopback overrun: the xrun is counted and capture goes on")
        func stalledReaderOverruns() async throws {
            let tone = AudioClip(format: .stream, samples: (0..<(48000 * 5)).map { Int16(8000 * sin(2 * Double.pi * 440 * Double($0) / 48000)) })
            let capture = try Self.recorder.openCapture(device: Self.captureDevice, format: .stream)
            let playback = try Self.player.openPlayback(device: Self.playbackDevice, format: .stream)
            let feeding = Task { for frame in tone.frames(tail: .zero) where !(await playback.play(frame)) { break } }
            _ = await Self.collect(capture, duration: .milliseconds(200), timeout: .seconds(20))
            // Nobody reads for 2 s: the bounded queue (1 s) fills, the capture thread waits, the
            // device's 80 ms buffer overruns.
            try await Task.sleep(for: .seconds(2))
            let afterStall = capture.statistics
            let resumed = await Self.collect(capture, duration: .seconds(1.5), timeout: .seconds(20))
            await feeding.value
            await playback.stop()
            await capture.stop()
            print("snd-aloop overrun: after the stall \(afterStall); at the end \(capture.statistics)")
            #expect(capture.statistics.xruns >= 1, "\(capture.statistics)")
            #expect(resumed.count >= AudioFormat.stream.frames(milliseconds: 1500), "capture did not go on after the overrun")
            #expect(AudioLevel(samples: resumed.suffix(48000 / 2)).rmsDBFS > -20, "after recovery the tone is heard again")
        }
    }
}
