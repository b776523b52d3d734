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
        let state = Self.state(in: directory)
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

    /// The daemon's state for an audio service run on its own.
    static func state(in directory: TemporaryDirectory) -> DaemonState {
        DaemonState(configurationLabel: "test", stateDirectory: directory.path,
                    identity: IdentityInfo(algorithm: "Ed25519", fingerprint: "test", publicKey: "", keyPath: ""),
                    stallAfter: .seconds(10))
    }

    /// Waits until `condition` holds; false after `timeout`.
    static func eventually(_ timeout: Duration = .seconds(15), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    /// A PCM node as discovery reports it (the card's udev properties copied onto the node),
    /// for a card the host does not have: the registry is fed by hand here, the kernel lab
    /// does it with real uevents.
    static func node(_ sysname: String, card: String) -> DiscoveredDevice? {
        DeviceClassifier.classify(subsystem: "sound", sysname: sysname, syspath: "/sys/devices/virtual/sound/\(card)/\(sysname)",
                                  devnode: "/dev/snd/\(sysname)", properties: ["NAME": card, "ID_PATH": "platform-\(card)"], links: [])
    }

    /// The Pulse server stands in for a sound server managing two cards (7: a headset, 8: a desk
    /// speakerphone): null sinks and remapped sources carrying their `alsa.card`/`alsa.device`.
    @Test("With preference lists the audio service follows discovery: fallback while none is present, the better card at once, the next one after the switch delay, a card the sound server lacks reported and passed over")
    func followsDiscovery() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer()
        try await server.start()
        for (name, card) in [("headset", 7), ("desk", 8)] {
            let properties = "'alsa.card=\(card) alsa.device=0'"
            for arguments in [["module-null-sink", "sink_name=\(name)", "sink_properties=\(properties)", "rate=48000", "channels=1"],
                              ["module-remap-source", "source_name=\(name)_mic", "master=\(server.monitorSource)", "source_properties=\(properties)"]] {
                let loaded = try server.pactl(["load-module"] + arguments)
                try #require(loaded.status == 0, "\(arguments[0]): \(loaded.stderr)")
            }
        }
        let directory = try TemporaryDirectory()
        let state = Self.state(in: directory)
        let configuration = DaemonConfiguration.AudioConfiguration(
            backend: .pulse, captureDevice: server.monitorSource, playbackDevice: nil,
            capturePreference: ["NAME=Headset", "NAME=Desk"], playbackPreference: ["NAME=Headset", "NAME=Desk"],
            fallback: true, switchDelayMilliseconds: 200)
        let registry = DeviceRegistry(policies: SightlineDaemon.audioPolicies(for: configuration))
        let service = AudioService(configuration: configuration, state: state, logger: Logger(label: "test"), registry: registry,
                                   pulseServer: server.server)
        let running = Task { try await service.run() }
        defer { running.cancel() }
        func using(_ capture: String, _ playback: String) async -> Bool {
            let status = service.status()
            return status.captureDevice == capture && status.capture?.connected == true && status.playbackDevice == playback
        }

        // Nothing preferred present: the configured devices, once the switch delay has passed.
        #expect(await Self.eventually { await using(server.monitorSource, "default") }, "\(service.status())")
        #expect(service.status().captureChoice?.hasPrefix("fallback (audio.fallback): no microphone found") == true, "\(service.status())")

        let desk = try #require(Self.node("pcmC8D0c", card: "Desk")), deskSpeaker = try #require(Self.node("pcmC8D0p", card: "Desk"))
        let headset = try #require(Self.node("pcmC7D0c", card: "Headset")), headsetSpeaker = try #require(Self.node("pcmC7D0p", card: "Headset"))
        await registry.added(desk, hotplug: true)
        await registry.added(deskSpeaker, hotplug: true)
        #expect(await Self.eventually { await using("desk_mic", "desk") }, "\(service.status())")
        #expect(service.status().captureChoice == "microphone Desk pcmC8D0c [\(desk.identity)]: matches preference 2 of 2 (NAME=Desk)")
        let speakerBefore = service.speakerGeneration

        // The better card replaces the desk at once; a playback opened now goes to its sink.
        await registry.added(headset, hotplug: true)
        await registry.added(headsetSpeaker, hotplug: true)
        #expect(await Self.eventually { await using("headset_mic", "headset") }, "\(service.status())")
        #expect(service.speakerGeneration > speakerBefore, "a call's playback learns that the speaker changed")
        let listed = await registry.list()
        #expect(listed.filter { $0.state == .inUse }.map(\.device.identity).sorted() == [headset.identity, headsetSpeaker.identity].sorted(), "\(listed)")
        #expect(listed.first { $0.device == headset }?.why?.contains("matches preference 1 of 2 (NAME=Headset)") == true)
        let playback = try service.openPlayback(source: { nil })
        #expect(await Self.eventually { playback.statistics.connected })
        let inputs = try server.pactl(["list", "sink-inputs"]).stdout
        let sinks = try server.pactl(["list", "short", "sinks"]).stdout
        let headsetIndex = sinks.split(separator: "\n").first { $0.contains("\theadset\t") }?.split(separator: "\t").first
        #expect(headsetIndex != nil && inputs.contains("Sink: \(headsetIndex ?? "?")"), "the playback is on the headset sink: \(sinks)\n\(inputs)")
        await playback.stop()

        // Unplugged: after the switch delay the desk takes over again.
        let unplugged = ContinuousClock.now
        await registry.removed(syspath: headset.syspath)
        await registry.removed(syspath: headsetSpeaker.syspath)
        #expect(await Self.eventually { await using("desk_mic", "desk") }, "\(service.status())")
        #expect(ContinuousClock.now - unplugged >= .milliseconds(200), "the desk took over before the switch delay")

        // A card the sound server does not manage: said clearly, marked failed, not opened.
        await registry.removed(syspath: desk.syspath)
        let unknown = try #require(Self.node("pcmC9D0c", card: "Headset"))
        await registry.added(unknown, hotplug: true)
        #expect(await Self.eventually { service.status().problem?.contains("no source for ALSA card 9 device 0") == true }, "\(service.status())")
        #expect(await Self.eventually { await registry.list().first { $0.device == unknown }?.state == .failed })
        running.cancel()
        _ = await running.result
    }

    @Test("ALSA: a preferred microphone that cannot be opened is marked failed, and the next preferred one is tried after the switch delay")
    func unopenableMicrophonePassedOver() async throws {
        let directory = try TemporaryDirectory()
        let state = Self.state(in: directory)
        let configuration = DaemonConfiguration.AudioConfiguration(
            backend: .alsa, captureDevice: nil, capturePreference: ["NAME=Headset", "NAME=Desk"], fallback: false, switchDelayMilliseconds: 200)
        let registry = DeviceRegistry(policies: SightlineDaemon.audioPolicies(for: configuration))
        let service = AudioService(configuration: configuration, state: state, logger: Logger(label: "test"), retryInterval: .milliseconds(200),
                                   registry: registry)
        let running = Task { try await service.run() }
        defer { running.cancel() }
        // Cards this machine does not have: ALSA cannot open them.
        let headset = try #require(Self.node("pcmC37D0c", card: "Headset")), desk = try #require(Self.node("pcmC38D0c", card: "Desk"))
        await registry.added(headset, hotplug: true)
        await registry.added(desk, hotplug: true)
        let failed = await Self.eventually {
            let entry = await registry.list().first { $0.device == headset }
            return entry?.state == .failed && entry?.reason?.contains("plughw:CARD=37,DEV=0") == true
        }
        let listed = await registry.list()
        #expect(failed, "\(listed)")
        #expect(await Self.eventually { service.status().problem?.contains("plughw:CARD=38,DEV=0") == true }, "\(service.status())")
        #expect(service.status().captureChoice?.contains("matches preference 2 of 2 (NAME=Desk)") == true, "\(service.status())")
        running.cancel()
        _ = await running.result
    }
}

private final class Arrivals: Sendable {
    let chunks = Mutex<[[Int16]]>([])
}
