import Foundation
import SightlineAudio
import SightlineCore
import SightlineTesting
import Synchronization
import Testing

/// Against a real PulseAudio server per test (private runtime directory, anonymous unix socket,
/// a 48 kHz mono null sink). What is played into the sink comes back from its monitor.
@Suite("PulseAudio backend against a real server", .serialized)
struct PulseBackendTests {
    static func unavailable() -> String? { PulseAudioServer.unavailableReason ?? SpeechFixture.unavailableReason }

    /// Collects the frames that arrive within `duration`.
    static func collect(_ capture: any AudioCapture, for duration: Duration) async -> [AudioFrame] {
        var frames: [AudioFrame] = []
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            // Poll the count so the loop ends on time even when no frame arrives.
            guard capture.frames.count > 0 else {
                try? await Task.sleep(for: .milliseconds(5))
                continue
            }
            guard let frame = await capture.frames.next() else { break }
            frames.append(frame)
        }
        return frames
    }

    /// Waits until `capture` delivers (silence, at first) and drops what came. An idle null sink
    /// renders in blocks of about 2 s; until the first block after our stream joined is over,
    /// nothing arrives and what is played meanwhile comes late, in a burst.
    static func warmUp(_ capture: any AudioCapture, timeout: Duration = .seconds(8)) async throws {
        let deadline = ContinuousClock.now + timeout
        while capture.statistics.frames + capture.statistics.mutedFrames < 3, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        guard capture.statistics.frames + capture.statistics.mutedFrames >= 3 else {
            throw TestFailure("no audio from the capture within \(timeout): \(capture.statistics)")
        }
        while capture.frames.count > 0, await capture.frames.next() != nil {}
    }

    @Test("An espeak-ng phrase played into the sink comes back through our capture and Opus: correlation ≥ 0.8, level within 3 dB")
    func capturePhrase() async throws {
        if let reason = Self.unavailable() { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer()
        try await server.start()
        let speech = try SpeechFixture.samples(rate: 48000, in: server.directory)
        let raw = server.directory.file("speech.raw")
        try RawAudio.write(speech, to: raw)

        let capture = try PulseBackend(server: server.server).openCapture(device: server.monitorSource, format: .stream)
        try await Self.warmUp(capture)
        #expect(capture.statistics.connected)
        let player = try server.play(rawFile: raw)
        let seconds = Double(speech.count) / 48000
        let frames = await Self.collect(capture, for: .milliseconds(Int(seconds * 1000) + 1500))
        player.wait()
        await capture.stop()
        #expect(player.wait() == 0)

        #expect(frames.allSatisfy { $0.samples.count == 960 })
        #expect(zip(frames, frames.dropFirst()).allSatisfy { $1.sequence == $0.sequence + 1 && $0.timestamp < $1.timestamp })
        let decoded = try opusRoundTrip(frames)
        let match = SignalMatch.find(reference: speech, in: decoded.flatMap(\.samples), maxLag: 48000 * 2)
        print("PulseAudio capture through Opus: \(match), \(frames.count) frames, statistics \(capture.statistics)")
        #expect(match.correlation >= 0.8, "\(match)")
        #expect(abs(match.levelDifferenceDB) <= 3, "\(match)")
        #expect(capture.statistics.xruns == 0)
        // Timestamps are CLOCK_MONOTONIC and recent.
        if let last = frames.last {
            #expect(last.timestamp > .zero)
        }
    }

    @Test("Server killed and restarted mid-capture: the same capture reconnects and delivers again")
    func serverRestart() async throws {
        if let reason = Self.unavailable() { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer()
        try await server.start()
        let tone = try Self.tone(server, seconds: 2)
        let capture = try PulseBackend(server: server.server).openCapture(device: server.monitorSource, format: .stream)
        try await Self.warmUp(capture)

        let first = try server.play(rawFile: tone)
        let before = await Self.collect(capture, for: .milliseconds(1200))
        first.wait()
        #expect(before.count >= 25, "no capture before the restart: \(capture.statistics)")

        server.kill()
        try await Task.sleep(for: .milliseconds(300))
        #expect(!capture.statistics.connected)
        _ = await Self.collect(capture, for: .milliseconds(200))
        try await server.start()

        let reconnectDeadline = ContinuousClock.now + .seconds(10)
        while capture.statistics.reconnects == 0, ContinuousClock.now < reconnectDeadline { try await Task.sleep(for: .milliseconds(20)) }
        let delivered = capture.statistics.frames
        let flowDeadline = ContinuousClock.now + .seconds(8)
        while capture.statistics.frames < delivered + 3, ContinuousClock.now < flowDeadline { try await Task.sleep(for: .milliseconds(10)) }
        while capture.frames.count > 0, await capture.frames.next() != nil {}
        let second = try server.play(rawFile: tone)
        let after = await Self.collect(capture, for: .milliseconds(1500))
        second.wait()
        await capture.stop()
        let statistics = capture.statistics
        print("restart: \(before.count) frames before, \(after.count) after, statistics \(statistics)")
        #expect(statistics.reconnects >= 1)
        #expect(after.count >= 25)
        // The tone is back, not just silence from a fresh stream.
        let loudest = after.map { AudioLevel(samples: $0.samples).rmsDBFS }.max() ?? AudioLevel.floor
        #expect(loudest > -15, "loudest frame after restart \(loudest) dBFS")
        // Sequence numbers keep counting across the reconnect.
        #expect((after.first?.sequence ?? 0) > (before.last?.sequence ?? .max))
    }

    @Test("Playback through our backend (Opus-decoded speech) reaches the sink: the monitor records it")
    func playbackReachesSink() async throws {
        if let reason = Self.unavailable() { print("skipped: \(reason)"); return }
        let (server, speech, recorder) = try await Self.speechAndMonitor()

        // A deep buffer: on a loaded machine 40 ms underruns, and each underrun inserts silence
        // that breaks the alignment (counted in `xruns`; printed below).
        let playback = try PulseBackend(server: server.server, playbackLatency: .milliseconds(200))
            .openPlayback(device: server.sinkName, format: .stream)
        let decoded = try opusRoundTrip(RawAudio.frames(speech, format: .stream))
        async let recording = Self.collect(recorder, for: .milliseconds(speech.count / 48 + 2500))
        for frame in decoded { #expect(await playback.play(frame)) }
        #expect(await playback.drain(timeout: .seconds(15)))
        let recorded = await recording.flatMap(\.samples)
        await playback.stop()
        await recorder.stop()

        let match = SignalMatch.find(reference: speech, in: recorded, maxLag: 48000 * 2)
        print("PulseAudio playback recorded from the monitor: \(match), statistics \(playback.statistics)")
        #expect(playback.statistics.frames == UInt64(decoded.count))
        #expect(match.correlation >= 0.8, "\(match)")
        #expect(abs(match.levelDifferenceDB) <= 3, "\(match)")
    }

    @Test("A pulled playback plays what its source gives on the server's clock, with no more than two frames queued ahead")
    func pulledPlaybackReachesSink() async throws {
        if let reason = Self.unavailable() { print("skipped: \(reason)"); return }
        let (server, speech, recorder) = try await Self.speechAndMonitor()
        let frames = RawAudio.frames(speech, format: .stream)
        // Silence first, while the idle sink settles into the latency asked of it.
        let lead = 100, next = Mutex(0)
        let playback = try PulseBackend(server: server.server).openPlayback(device: server.sinkName, format: .stream, source: {
            next.withLock { index in
                defer { index += 1 }
                return (lead..<lead + frames.count).contains(index) ? frames[index - lead].samples : nil
            }
        })
        let recorded = await Self.collect(recorder, for: .milliseconds(speech.count / 48 + (lead * 20) + 2500)).flatMap(\.samples)
        let statistics = playback.statistics
        await playback.stop()
        await recorder.stop()

        let match = SignalMatch.find(reference: speech, in: recorded, maxLag: 48000 * 5)
        print("PulseAudio pulled playback recorded from the monitor: \(match), statistics \(statistics)")
        #expect(next.withLock { $0 } >= lead + frames.count, "the source was asked for every frame")
        #expect(match.correlation >= 0.8, "\(match)")
        #expect(abs(match.levelDifferenceDB) <= 3, "\(match)")
        #expect((statistics.latencyMs ?? .infinity) <= 60, "queued ahead: \(String(describing: statistics.latencyMs)) ms")
    }

    @Test("Privacy mute: zero frames leave the backend while speech plays; unmuted, they flow again")
    func privacyMute() async throws {
        if let reason = Self.unavailable() { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer()
        try await server.start()
        let tone = try Self.tone(server, seconds: 3)
        let capture = try PulseBackend(server: server.server).openCapture(device: server.monitorSource, format: .stream)
        try await Self.warmUp(capture)
        capture.setMuted(true)
        let deliveredBefore = capture.statistics.frames
        let player = try server.play(rawFile: tone)
        let muted = await Self.collect(capture, for: .milliseconds(1200))
        let statistics = capture.statistics
        capture.setMuted(false)
        let unmuted = await Self.collect(capture, for: .milliseconds(1000))
        player.wait()
        await capture.stop()
        print("privacy: \(muted.count) frames while muted (\(statistics.mutedFrames) discarded), \(unmuted.count) after")
        #expect(muted.isEmpty)
        #expect(statistics.frames == deliveredBefore)
        #expect(statistics.mutedFrames >= 25)
        #expect(unmuted.count >= 25)
    }

    /// A server, a spoken phrase at 48 kHz, and the sink's monitor recorded by our capture
    /// (checked against an independent player above), already delivering.
    static func speechAndMonitor() async throws -> (PulseAudioServer, [Int16], any AudioCapture) {
        let server = try PulseAudioServer()
        try await server.start()
        let speech = try SpeechFixture.samples(rate: 48000, in: server.directory)
        let recorder = try PulseBackend(server: server.server).openCapture(device: server.monitorSource, format: .stream)
        try await warmUp(recorder)
        return (server, speech, recorder)
    }

    /// Plays a loud tone into the sink for `seconds`.
    static func tone(_ server: PulseAudioServer, seconds: Int) throws -> String {
        let path = server.directory.file("tone-\(seconds).raw")
        try RawAudio.write((0..<48000 * seconds).map { Int16(10000 * sin(2 * Double.pi * 440 * Double($0) / 48000)) }, to: path)
        return path
    }

    @Test("Pulse capture with a stalled consumer: the loss is counted as an xrun and capture goes on")
    func pulseOverrun() async throws {
        if let reason = Self.unavailable() { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer()
        try await server.start()
        let capture = try PulseBackend(server: server.server).openCapture(device: server.monitorSource, format: .stream)
        try await Self.warmUp(capture)
        let player = try server.play(rawFile: try Self.tone(server, seconds: 6))
        _ = await Self.collect(capture, for: .milliseconds(500))
        // Read nothing for longer than our queue (1 s) and the stream's buffer (0.5 s) hold.
        try await Task.sleep(for: .milliseconds(3000))
        let after = await Self.collect(capture, for: .milliseconds(1500))
        player.wait()
        await capture.stop()
        let statistics = capture.statistics
        let gaps = zip(after, after.dropFirst()).map { $1.timestamp - $0.timestamp }.filter { $0 > .milliseconds(100) }
        print("pulse overrun: statistics \(statistics), timestamp gaps \(gaps)")
        #expect(statistics.xruns >= 1)
        #expect(after.count >= 50)
    }

    @Test("auto picks PulseAudio when the server answers and ALSA when it does not")
    func automaticSelection() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer()
        try await server.start()
        #expect(AudioBackendSelection.choose(.auto, pulseServer: server.server).backend.kind == .pulse)
        server.kill()
        let fallback = AudioBackendSelection.choose(.auto, pulseServer: server.server)
        #expect(fallback.backend.kind == .alsa)
        #expect(fallback.reason.contains("no PulseAudio server"), "\(fallback.reason)")
        #expect(AudioBackendSelection.choose(.pulse, pulseServer: server.server).backend.kind == .pulse)
        #expect(AudioBackendSelection.choose(.alsa).backend.kind == .alsa)
    }

    /// The harness's server has no ALSA card, so no source or sink of PulseAudio's ALSA modules
    /// (`module-alsa-card`, which writes `alsa.card`/`alsa.device`) exists here: what a real
    /// card's source looks like is not exercised. Null devices given those two properties stand
    /// in for one; the introspection, the matching and opening the result are real.
    @Test("A discovered card's node becomes the server's source or sink with the same alsa.card/alsa.device; none is said clearly")
    func deviceByALSAProperties() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer()
        try await server.start()
        let backend = PulseBackend(server: server.server)
        let microphone = SoundDeviceAddress(card: 7, device: 0, direction: .capture)
        let speaker = SoundDeviceAddress(card: 7, device: 0, direction: .playback)

        // The null sink as the server describes it: no alsa.* properties, so nothing matches.
        let sinks = try backend.devices(.playback)
        let vsink = try #require(sinks.first { $0.name == server.sinkName }, "\(sinks)")
        #expect(vsink.properties["device.description"] != nil, "\(vsink.properties)")
        #expect(try backend.devices(.capture).first { $0.name == server.monitorSource }?.isMonitor == true)
        #expect(throws: AudioError.self) { try backend.deviceName(for: speaker) }
        do {
            _ = try backend.deviceName(for: microphone)
            Issue.record("a source was found for card 7 on a server without one")
        } catch {
            #expect("\(error)".contains("no source for ALSA card 7 device 0"), "\(error)")
            #expect("\(error)".contains(server.monitorSource), "the message lists what the server has: \(error)")
        }

        // module-null-source takes no properties; a remapped source does (and is no monitor).
        let properties = "'alsa.card=7 alsa.device=0 device.description=Headset'"
        for arguments in [["module-null-sink", "sink_name=headset", "sink_properties=\(properties)", "rate=48000", "channels=1"],
                          ["module-remap-source", "source_name=headset_mic", "master=\(server.monitorSource)", "source_properties=\(properties)"]] {
            let loaded = try server.pactl(["load-module"] + arguments)
            #expect(loaded.status == 0, "\(arguments[0]): \(loaded.stderr)")
        }
        #expect(try backend.deviceName(for: speaker) == "headset")
        // The sink's monitor carries its properties too, but records what is played: the source wins.
        #expect(try backend.deviceName(for: microphone) == "headset_mic")
        #expect(throws: AudioError.self) { try backend.deviceName(for: SoundDeviceAddress(card: 7, device: 1, direction: .capture)) }

        let capture = try backend.openCapture(device: try backend.deviceName(for: microphone), format: .stream)
        try await Self.warmUp(capture)
        #expect(capture.statistics.connected)
        await capture.stop()
    }
}
