import Foundation
import Logging
import Synchronization
import SightlineCore
@testable import SightlineDaemon
import SightlineTesting
import Testing

/// The daemon's microphone against a real PulseAudio server: `audio.backend` chosen from the
/// configuration, `GET /v1/audio` and `sightctl audio` showing the level of what is played.
@Suite("Daemon audio", .serialized)
struct AudioDaemonTests {
    static func audioStatus(_ daemon: DaemonProcess) throws -> AudioStatus {
        let result = try CommandLineTool.run("sightctl", ["audio", "--json", "--socket", daemon.socketPath])
        guard result.status == 0 else { throw TestFailure("sightctl audio failed: \(result.stderr)") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(AudioStatus.self, from: Data(result.stdout.utf8))
    }

    @Test("audio.backend pulse: the daemon captures the sink's monitor; sightctl audio shows the tone's level")
    func pulseCapture() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer()
        try await server.start()
        let daemon = try DaemonProcess(configuration: "audio:\n  backend: pulse\n  capture_device: \(server.monitorSource)\n",
                                       environment: ["PULSE_SERVER": server.server])
        try daemon.start()
        try await daemon.waitUntilServing()

        // Wait for audio to flow (an idle null sink starts in a block of about 2 s).
        var status = try Self.audioStatus(daemon)
        let deadline = ContinuousClock.now + .seconds(15)
        while (status.capture?.frames ?? 0) < 10, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            status = try Self.audioStatus(daemon)
        }
        #expect(status.backend == "pulse")
        #expect(status.configured == "pulse")
        #expect(status.capture?.connected == true, "\(status)")
        let silent = status.capture?.level?.rmsDBFS ?? 0
        #expect(silent <= -100, "the idle sink should be silent: \(status)")

        let tone = server.directory.file("tone.raw")
        let samples = (0..<48000 * 3).map { Int16(16384 * sin(2 * Double.pi * 1000 * Double($0) / 48000)) }
        try Data(samples.withUnsafeBufferPointer { Data(buffer: $0) }).write(to: URL(fileURLWithPath: tone))
        let player = try server.play(rawFile: tone)
        var loudest = -200.0
        let toneDeadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < toneDeadline, player.isRunning {
            status = try Self.audioStatus(daemon)
            loudest = max(loudest, status.capture?.level?.rmsDBFS ?? -200)
            try await Task.sleep(for: .milliseconds(100))
        }
        player.wait()
        // A sine at half scale: -9.03 dBFS RMS.
        #expect(abs(loudest - -9.03) < 1, "loudest level \(loudest) dBFS")

        let text = try CommandLineTool.run("sightctl", ["audio", "--socket", daemon.socketPath])
        print(text.stdout)
        #expect(text.stdout.contains("backend:   pulse"))
        #expect(text.stdout.contains("xruns"))
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0)
    }

    @Test("audio.backend alsa with no usable device: the daemon keeps running and says what is wrong")
    func missingDevice() async throws {
        let daemon = try DaemonProcess(configuration: "audio:\n  backend: alsa\n  capture_device: no_such_pcm\n")
        try daemon.start()
        try await daemon.waitUntilServing()
        var status = try Self.audioStatus(daemon)
        let deadline = ContinuousClock.now + .seconds(10)
        while status.problem == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            status = try Self.audioStatus(daemon)
        }
        #expect(status.backend == "alsa")
        #expect(status.problem?.contains("no_such_pcm") == true, "\(status)")
        #expect(status.problem?.contains("arecord -L") == true, "\(status)")
        let text = try CommandLineTool.run("sightctl", ["status", "--socket", daemon.socketPath])
        #expect(text.stdout.contains("audio"))
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0)
        #expect(daemon.log.contains("microphone unavailable"))
    }

    @Test("The voice tap gets 16 kHz mono chunks of what the microphone hears; privacy mute stops them at the source")
    func voiceTap() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer()
        try await server.start()
        let directory = try TemporaryDirectory()
        let state = DaemonState(configurationLabel: "test", stateDirectory: directory.path,
                                identity: IdentityInfo(algorithm: "Ed25519", fingerprint: "test", publicKey: "", keyPath: ""),
                                stallAfter: .seconds(10))
        let (chunks, continuation) = VoiceTap.makeStream()
        let service = AudioService(configuration: .init(backend: .pulse, captureDevice: server.monitorSource), state: state,
                                   logger: Logger(label: "test"), voice: continuation, pulseServer: server.server)
        let running = Task { try await service.run() }
        defer { running.cancel() }

        // A reader task keeps what arrives; `collect` returns what came within `duration`.
        let arrived = Arrivals()
        let reader = Task {
            for await chunk in chunks { arrived.chunks.withLock { $0.append(chunk) } }
        }
        defer { reader.cancel() }
        func collect(for duration: Duration) async -> [[Int16]] {
            arrived.chunks.withLock { $0.removeAll() }
            try? await Task.sleep(for: duration)
            return arrived.chunks.withLock { $0 }
        }
        _ = await collect(for: .seconds(4))  // warm-up: the idle null sink's first block
        let tone = server.directory.file("tone.raw")
        let samples = (0..<48000 * 3).map { Int16(16384 * sin(2 * Double.pi * 1000 * Double($0) / 48000)) }
        try Data(samples.withUnsafeBufferPointer { Data(buffer: $0) }).write(to: URL(fileURLWithPath: tone))
        let player = try server.play(rawFile: tone)
        let heard = await collect(for: .milliseconds(2500))
        player.wait()
        #expect(heard.allSatisfy { $0.count == 320 }, "\(Set(heard.map(\.count)))")
        let loudest = heard.map { AudioLevel(samples: $0).rmsDBFS }.max() ?? -200
        #expect(abs(loudest - -9.03) < 1, "loudest 16 kHz chunk \(loudest) dBFS")

        service.setMuted(true)
        _ = await collect(for: .milliseconds(300))  // what was captured before the mute
        let player2 = try server.play(rawFile: tone)
        let whileMuted = await collect(for: .milliseconds(2000))
        player2.wait()
        print("voice tap: \(heard.count) chunks with the tone (loudest \(loudest) dBFS), \(whileMuted.count) while muted; \(service.status())")
        #expect(whileMuted.isEmpty)
        #expect((service.status().capture?.mutedFrames ?? 0) > 25)
        running.cancel()
        _ = await running.result
        #expect(service.status().capture?.connected == false)
    }
}

private final class Arrivals: Sendable {
    let chunks = Mutex<[[Int16]]>([])
}
