import Foundation
import SightlineAudio
import SightlineCore
import SightlineTesting
import Synchronization
import Testing

/// ALSA without any daemon or sound card: a private configuration with `type file` PCMs whose
/// slave is the `null` plugin. Capture reads `infile`; playback writes `file`. Unpaced by a clock,
/// so these run as fast as the code does and the results are bit-exact.
@Suite("ALSA backend through file PCMs")
struct ALSABackendTests {
    static func configuration(infile: String, outfile: String) -> String {
        """
        pcm.speech_in {
            type file
            slave { pcm { type null } }
            file "/dev/null"
            infile "\(infile)"
            format "raw"
        }
        pcm.speech_out {
            type file
            slave { pcm { type null } }
            file "\(outfile)"
            format "raw"
        }
        """
    }

    /// Collects frames until `count` samples arrived or `timeout` passed.
    static func collect(_ capture: any AudioCapture, samples count: Int, timeout: Duration = .seconds(20)) async -> [AudioFrame] {
        var frames: [AudioFrame] = []
        var total = 0
        let deadline = ContinuousClock.now + timeout
        while total < count, ContinuousClock.now < deadline {
            guard let frame = await capture.frames.next() else { break }
            frames.append(frame)
            total += frame.samples.count
        }
        return frames
    }

    @Test("Capture delivers the file's samples bit-exact in 20 ms frames with rising timestamps, and they survive Opus")
    func captureFromFile() async throws {
        if let reason = SpeechFixture.unavailableReason { print("skipped: \(reason)"); return }
        let directory = try TemporaryDirectory(prefix: "sightline-alsa")
        let speech = try SpeechFixture.samples(rate: 48000, in: directory)
        let infile = directory.file("in.raw")
        try RawAudio.write(speech, to: infile)
        let backend = ALSABackend(configuration: Self.configuration(infile: infile, outfile: directory.file("out.raw")))
        let capture = try backend.openCapture(device: "speech_in", format: .stream)
        let frames = await Self.collect(capture, samples: speech.count)
        await capture.stop()

        let captured = Array(frames.flatMap(\.samples).prefix(speech.count))
        #expect(captured.count == speech.count)
        #expect(captured == speech, "captured samples differ from the file")
        #expect(frames.allSatisfy { $0.samples.count == 960 && $0.format == .stream })
        #expect(frames.map(\.sequence) == (0..<UInt64(frames.count)).map { $0 })
        #expect(zip(frames, frames.dropFirst()).allSatisfy { $0.timestamp <= $1.timestamp })
        let statistics = capture.statistics
        #expect(statistics.frames >= UInt64(frames.count))
        #expect(statistics.xruns == 0)
        #expect(statistics.level != nil)

        let decoded = try opusRoundTrip(Array(frames.prefix(speech.count / 960)))
        let match = SignalMatch.find(reference: speech, in: decoded.flatMap(\.samples), maxLag: 4800)
        print("ALSA file capture through Opus: \(match)")
        #expect(match.correlation >= 0.8, "\(match)")
        #expect(abs(match.levelDifferenceDB) <= 3, "\(match)")
    }

    @Test("Playback writes every queued sample, in order, to the device")
    func playbackToFile() async throws {
        if let reason = SpeechFixture.unavailableReason { print("skipped: \(reason)"); return }
        let directory = try TemporaryDirectory(prefix: "sightline-alsa")
        let speech = try SpeechFixture.samples(rate: 48000, in: directory)
        let outfile = directory.file("out.raw")
        let backend = ALSABackend(configuration: Self.configuration(infile: directory.file("none.raw"), outfile: outfile))
        let playback = try backend.openPlayback(device: "speech_out", format: .stream)
        let frames = RawAudio.frames(speech, format: .stream)
        for frame in frames { #expect(await playback.play(frame)) }
        #expect(await playback.drain(timeout: .seconds(20)))
        await playback.stop()
        #expect(await playback.play(frames[0]) == false)
        let written = try RawAudio.read(outfile)
        #expect(written.count == frames.count * 960)
        #expect(Array(written.prefix(speech.count)) == speech)
        #expect(playback.statistics.frames == UInt64(frames.count))
    }

    @Test("A pulled playback asks its source for each frame as the device takes it, in order; nil plays silence")
    func pulledPlaybackToFile() async throws {
        if let reason = SpeechFixture.unavailableReason { print("skipped: \(reason)"); return }
        let directory = try TemporaryDirectory(prefix: "sightline-alsa")
        let speech = try SpeechFixture.samples(rate: 48000, in: directory)
        let outfile = directory.file("out.raw")
        let backend = ALSABackend(configuration: Self.configuration(infile: directory.file("none.raw"), outfile: outfile))
        let frames = RawAudio.frames(speech, format: .stream)
        let next = Mutex(0)
        let playback = try backend.openPlayback(device: "speech_out", format: .stream, source: {
            next.withLock { index in
                defer { index += 1 }
                return index < frames.count ? frames[index].samples : nil
            }
        })
        let deadline = ContinuousClock.now + .seconds(20)
        while next.withLock({ $0 }) < frames.count + 10, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        await playback.stop()
        let written = try RawAudio.read(outfile)
        #expect(written.count >= (frames.count + 5) * 960, "the source was asked for more once it had nothing")
        #expect(Array(written.prefix(speech.count)) == speech)
        #expect(written.dropFirst(frames.count * 960).prefix(5 * 960).allSatisfy { $0 == 0 }, "nil from the source is silence")
    }

    @Test("Privacy mute: no samples leave the backend while muted; capture resumes after")
    func privacyMute() async throws {
        let directory = try TemporaryDirectory(prefix: "sightline-alsa")
        let infile = directory.file("in.raw")
        try RawAudio.write((0..<48000 * 20).map { Int16(truncatingIfNeeded: $0 % 2000 + 100) }, to: infile)
        let backend = ALSABackend(configuration: Self.configuration(infile: infile, outfile: directory.file("out.raw")))
        let capture = try backend.openCapture(device: "speech_in", format: .stream)
        capture.setMuted(true)
        // Drain whatever was read before the mute took effect (at most the frames queued so far).
        try await Task.sleep(for: .milliseconds(200))
        var early = 0
        while capture.frames.count > 0, await capture.frames.next() != nil { early += 1 }
        let before = capture.statistics
        try await Task.sleep(for: .milliseconds(300))
        let during = capture.statistics
        #expect(capture.frames.count == 0, "frames were queued while muted")
        #expect(during.frames == before.frames, "frames were delivered while muted")
        #expect(during.mutedFrames > before.mutedFrames)
        #expect(during.muted)
        capture.setMuted(false)
        let resumed = await Self.collect(capture, samples: 960 * 5, timeout: .seconds(5))
        await capture.stop()
        #expect(resumed.count >= 5)
        #expect(!capture.statistics.muted)
        print("muted \(during.mutedFrames) frames; \(early) delivered before the mute took effect")
    }

    @Test("A wrong PCM name fails with ALSA's reason, and ALSA's message goes to our handler, not stderr")
    func unknownDevice() throws {
        let backend = ALSABackend(configuration: "pcm.other { type null }")
        // Other tests may make ALSA talk at the same time; keep only what concerns this device.
        let seen = Mutex<[String]>([])
        ALSADiagnostics.setHandler { message in
            if message.contains("no_such_pcm") { seen.withLock { $0.append(message) } }
        }
        #expect {
            _ = try backend.openCapture(device: "no_such_pcm", format: .stream)
        } throws: { error in
            guard let error = error as? AudioError, case .alsa(let operation, let device, _) = error else { return false }
            return operation == "snd_pcm_open" && device == "no_such_pcm" && error.description.contains("arecord -L")
        }
        let messages = seen.withLock { $0 }
        print("ALSA said: \(messages)")
        #expect(messages.contains { $0.contains("Unknown PCM") }, "\(messages)")
    }
}
