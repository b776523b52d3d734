import Foundation
import SightlineAudio
import SightlineControlClient
import SightlineCore
import SightlineTesting
import Synchronization
import Testing

/// The call's voice channel end to end: a daemon on a real PulseAudio server (microphone = one
/// null sink's monitor, speaker = a second null sink), the real relay, and an expert in Swift or
/// in headless Chromium.
@Suite("Call audio through the relay", .serialized)
struct CallAudioTests {
    static let speakerSink = "speaker"

    /// A Pulse server with a second null sink for the device's speaker, and a daemon in a call.
    struct Rig {
        let server: PulseAudioServer
        let relay: RelayProcess
        let daemon: DaemonProcess
        let client: ControlClient

        init(through link: (RelayProcess) throws -> ThrottledLink? = { _ in nil }) async throws {
            server = try PulseAudioServer()
            try await server.start()
            try server.addNullSink(named: CallAudioTests.speakerSink)
            relay = try RelayProcess()
            try await relay.start()
            let forwarder = try link(relay)
            // Through a narrow link, video heavy enough to fill the socket buffers at once.
            let configuration = server.callConfiguration(relay: relay, speaker: CallAudioTests.speakerSink, through: forwarder,
                                                         heavyVideo: forwarder != nil)
            daemon = try DaemonProcess(configuration: configuration,
                                       environment: ["PULSE_SERVER": server.server])
            try daemon.start()
            try await daemon.waitUntilServing()
            client = ControlClient(socketPath: daemon.socketPath)
        }

        func invite() async throws -> String {
            let call = try await client.post(ControlAPI.callPath, json: [String: String](), as: CallStatus.self)
            return try #require(call.invite, "no invite in \(call)")
        }

        /// Waits until the daemon's microphone delivers (an idle null sink starts in a block of ~2 s).
        func waitForMicrophone() async throws {
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                let status = try await client.get(ControlAPI.audioPath, as: AudioStatus.self)
                if (status.capture?.frames ?? 0) >= 25 { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw TestFailure("the daemon's microphone delivered nothing within 20 s; daemon log:\n\(daemon.log)")
        }

        func callAudio() async throws -> CallAudioStatus {
            try #require(try await client.get(ControlAPI.callPath, as: CallStatus.self).audio)
        }
    }

    /// A spoken sentence at 48 kHz and its Opus packets, as an expert's microphone would give them.
    static func speech() async throws -> (reference: [Int16], packets: [[UInt8]]) {
        let clip = try await SpeechVoice.shared.synthesize("Open the left valve, then check the pressure gauge.").converted(to: .stream)
        // A pause first, as before any sentence: the idle null sink loses its first ~100 ms.
        let frames = clip.frames(lead: .milliseconds(400), tail: .milliseconds(200))
        let encoder = try OpusVoiceEncoder(format: .stream)
        let decoder = try OpusVoiceDecoder(format: .stream)
        let packets = try frames.map { try encoder.encode($0) }
        // What the device can at best play: the Opus-decoded speech.
        let reference = try packets.flatMap { try decoder.decode($0).samples }
        return (reference, packets.map(\.bytes))
    }

    @Test("An expert's speech, sealed under its own key, plays on the device's speaker: correlation ≥ 0.8 after alignment, level within 3 dB")
    func expertSpeechReachesSpeaker() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let rig = try await Rig()
        let invite = try #require(ExpertClient.Invite(try await rig.invite()))
        let (reference, packets) = try await Self.speech()
        let recorder = try PulseBackend(server: rig.server.server).openCapture(device: "\(Self.speakerSink).monitor", format: .stream)
        defer { Task { await recorder.stop() } }
        let recording = Task {
            var samples: [Int16] = []
            for await frame in recorder.frames { samples += frame.samples }
            return samples
        }
        // The expert speaks 2.5 s after joining: the daemon opens its speaker when the expert
        // is verified, and a null sink nobody played to runs its first ~2 s in one block, during
        // which it asks for nothing (what arrived then would be dropped, as after any stall of
        // a sound system, and the comparison would miss it).
        let report = try await ExpertClient.run(invite, frames: 1, timeout: .seconds(60),
                                                speech: .init(packets: packets, delay: .milliseconds(2500)))
        // The speaker plays in real time behind the jitter buffer; give it time to finish.
        try await Task.sleep(for: .seconds(2))
        await recorder.stop()
        let recorded = await recording.value
        let audio = try await rig.callAudio()
        // Piece by piece: on a loaded machine the playout may run late and the speaker insert a
        // moment of silence or concealment, which shifts what follows (counted, not hidden:
        // see the jitter buffer's counters printed below).
        let match = SignalMatch.piecewise(reference: reference, in: recorded, maxLag: 48000 * 8)
        print("expert speech on the device's speaker: \(match); sent \(report.audioFramesSent); device \(audio)")
        #expect(report.audioFramesSent == packets.count)
        #expect(audio.framesReceived == UInt64(packets.count), "\(audio)")
        // On a loaded machine the jitter buffer may skip a few frames to catch up (counted).
        #expect(audio.framesPlayed + audio.skipped >= UInt64(packets.count) - 5, "\(audio)")
        #expect(audio.openFailures == 0)
        // Where the voice waited: each part is measured, and none of them holds it for seconds.
        let parts = [audio.expertToDeviceMsP50, audio.jitterWaitMsP50, audio.speakerLatencyMsP50]
        #expect(parts.allSatisfy { ($0 ?? -1) >= 0 && ($0 ?? .infinity) < 1000 }, "\(audio)")
        #expect(match.correlation >= 0.8, "\(match)\ndaemon log:\n\(rig.daemon.log)")
        #expect(abs(match.levelDifferenceDB) <= 3, "\(match)")
    }

    @Test("The device's microphone reaches the expert as Opus; privacy mode: zero audio frames leave, the expert is told, and audio returns after")
    func privacyStopsAudio() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let rig = try await Rig()
        try await rig.waitForMicrophone()
        let invite = try #require(ExpertClient.Invite(try await rig.invite()))

        let live = try await ExpertClient.run(invite, frames: 1, timeout: .seconds(60), audioFrames: 25)
        #expect(live.audioFramesOpened >= 25, "\(live.audioFramesOpened) audio frames; daemon log:\n\(rig.daemon.log)")
        #expect(live.openFailures == 0)
        let sequences = live.audioHeaders.map(\.sequence)
        #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $1 == $0 &+ 1 }, "sequence numbers not consecutive: \(sequences.prefix(30))")
        #expect(live.audioHeaders.allSatisfy { $0.frameSamples == 960 })
        // The packets are real Opus for the device's format.
        let decoder = try OpusVoiceDecoder(format: .stream)
        for (index, bytes) in live.audioPackets.prefix(25).enumerated() {
            #expect(try decoder.decode(OpusPacket(bytes: bytes, timestamp: .zero, sequence: UInt64(index))).samples.count == 960)
        }

        let muted = try await rig.client.post(ControlAPI.audioMutePath, json: AudioMuteRequest(muted: true), as: AudioStatus.self)
        #expect(muted.capture?.muted == true)
        try await Task.sleep(for: .milliseconds(500))  // frames captured before the mute drain out
        let before = try await rig.callAudio()
        #expect(before.microphoneMuted)
        let whileMuted = try await ExpertClient.run(invite, frames: 45, timeout: .seconds(60))
        let after = try await rig.callAudio()
        #expect(whileMuted.framesOpened >= 45, "video goes on while the microphone is muted")
        #expect(whileMuted.audioFramesOpened == 0, "audio left the device in privacy mode")
        #expect(whileMuted.streamStates.last?.audioMuted == true, "\(whileMuted.streamStates)")
        #expect(after.framesSent == before.framesSent, "frames sent while muted: \(before.framesSent) → \(after.framesSent)")
        let statusText = try CommandLineTool.run("sightctl", ["status", "--socket", rig.daemon.socketPath]).stdout
        #expect(statusText.contains("muted (privacy)"), "\(statusText)")
        let callText = try CommandLineTool.run("sightctl", ["call", "status", "--socket", rig.daemon.socketPath]).stdout
        #expect(callText.contains("microphone muted"), "\(callText)")
        let watchMuted = try CommandLineTool.run("sightctl", ["audio", "--watch", "--count", "2", "--socket", rig.daemon.socketPath]).stdout
        #expect(watchMuted.split(separator: "\n").count == 2 && watchMuted.contains("muted (privacy)"), "\(watchMuted)")

        _ = try await rig.client.post(ControlAPI.audioMutePath, json: AudioMuteRequest(muted: false), as: AudioStatus.self)
        let again = try await ExpertClient.run(invite, frames: 1, timeout: .seconds(60), audioFrames: 10)
        #expect(again.audioFramesOpened >= 10)
        let watching = try CommandLineTool.run("sightctl", ["audio", "--watch", "--count", "3", "--socket", rig.daemon.socketPath]).stdout
        let lines = watching.split(separator: "\n")
        #expect(lines.count == 3 && lines.allSatisfy { $0.contains("dBFS RMS") && $0.contains("xruns") }, "\(watching)")
    }

    @Test("On a choking uplink the call steps down full → low → stills → audio only, the voice still flows, and it climbs back when the link recovers")
    func ladderReachesAudioOnly() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let link = Mutex<ThrottledLink?>(nil)
        let rig = try await Rig(through: { relay in
            let forwarder = try ThrottledLink(targetPort: relay.port)
            link.withLock { $0 = forwarder }
            return forwarder
        })
        let uplink = try #require(link.withLock { $0 })
        defer { uplink.stop() }
        try await rig.waitForMicrophone()
        let invite = try #require(ExpertClient.Invite(try await rig.invite()))
        // The expert stays in the call (and verified) until it has seen the whole way down and
        // one rung back up, in order (consecutive duplicates are re-announcements).
        let expected = ["full", "low", "stills", "audio-only", "stills"]
        let expert = Task {
            try await ExpertClient.run(invite, frames: .max, timeout: .seconds(75)) { LiveCallTests.changes($0.streamStates.map(\.step)) == expected }
        }
        defer { expert.cancel() }

        func waitForStep(_ step: String, within limit: Duration) async throws -> Duration {
            let started = ContinuousClock.now
            while ContinuousClock.now - started < limit {
                if try await rig.client.get(ControlAPI.callPath, as: CallStatus.self).step == step { return ContinuousClock.now - started }
                try await Task.sleep(for: .milliseconds(200))
            }
            throw TestFailure("the call did not reach \(step) within \(limit); daemon log:\n\(rig.daemon.log)\nrelay log:\n\(rig.relay.log)")
        }
        // Wait until video flows to the verified expert, then choke the uplink to 1 kB/s:
        // too little for any picture, too little even for the voice channel's ~4 kB/s.
        let deadline = ContinuousClock.now + .seconds(20)
        while try await rig.client.get(ControlAPI.callPath, as: CallStatus.self).framesSent < 15 {
            guard ContinuousClock.now < deadline else { throw TestFailure("no video went out; daemon log:\n\(rig.daemon.log)") }
            try await Task.sleep(for: .milliseconds(200))
        }
        uplink.limit(bytesPerSecond: 1000)
        let toAudioOnly = try await waitForStep("audio-only", within: .seconds(40))
        let framesAtAudioOnly = try await rig.client.get(ControlAPI.callPath, as: CallStatus.self).framesSent
        uplink.limit(bytesPerSecond: nil)
        let toStills = try await waitForStep("stills", within: .seconds(30))
        let status = try await rig.client.get(ControlAPI.callPath, as: CallStatus.self)
        print("ladder: audio-only \(toAudioOnly) after the choke, stills \(toStills) after it lifted; \(status)")
        // The sender writes one frame at a time: at most the one stuck in the socket when the
        // rung changed completes afterwards.
        #expect(status.framesSent <= framesAtAudioOnly + 1, "video left the device on the audio-only rung: \(framesAtAudioOnly) → \(status.framesSent)")
        #expect(try #require(status.audio).framesSent > 0)

        let report = try await expert.value
        let steps = report.streamStates.map(\.step)
        #expect(LiveCallTests.changes(steps) == expected, "\(steps)")
        #expect(report.openFailures == 0)
    }

    struct ViewerAudio: Decodable {
        var verified: Bool
        var audioFrames: Int
        var audioDecoded: Int
        var audioPlayed: Int
        var audioMuted: Bool
        var microphone: Bool
        var microphoneCapture: String?
        var microphoneFramesSent: Int
        var microphonePeakDbfs: Double?
        var microphoneError: String?
    }

    @Test("Headless Chromium hears the device (Opus decoded by WebCodecs) and its fake microphone, read by MediaStreamTrackProcessor, reaches the device's speaker; muting shows there",
          .enabled(if: HeadlessChromium.unavailableReason == nil, "\(HeadlessChromium.unavailableReason ?? ""); scripts/install-deps test installs it"))
    func viewerTwoWay() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let rig = try await Rig()
        let (heard, recorded) = try await viewerTalks(on: rig, expecting: "track-processor") {
            try await HeadlessChromium.start(extraArguments: ["--autoplay-policy=no-user-gesture-required"])
        }
        // Chromium's fake microphone beeps: the speaker played more than silence.
        let loudest = AudioLevel(samples: recorded).peakDBFS
        #expect(loudest > -40, "loudest peak on the device's speaker \(loudest) dBFS; viewer \(String(describing: heard))")
    }

    /// Firefox's fake microphone plays a steady 1 kHz sine.
    static let firefoxTone = 1000.0

    @Test("Headless Firefox talks: its fake microphone's 1 kHz tone, read through the AudioWorklet and sealed under its own key, plays on the device's speaker at the browser's level",
          .enabled(if: HeadlessFirefox.unavailableReason == nil, "\(HeadlessFirefox.unavailableReason ?? ""); scripts/install-deps test installs it"))
    func firefoxTalks() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let rig = try await Rig()
        // Firefox's audio engine runs only with an output: the rig's Pulse server, into a sink of
        // its own so that what the expert hears reaches neither the device's microphone nor its speaker.
        try rig.server.addNullSink(named: "expert")
        let (heard, recorded) = try await viewerTalks(on: rig, expecting: "worklet") {
            try await HeadlessFirefox.start(extraPreferences: HeadlessFirefox.autoplayPreferences,
                                            environment: ["PULSE_SERVER": rig.server.server, "PULSE_SINK": "expert"])
        }
        let windows = ToneMeter.loudWindows(recorded, frequency: Self.firefoxTone, sampleRate: 48000)
        let share = ToneMeter.median(windows.map(\.toneShare))
        let elsewhere = ToneMeter.median(ToneMeter.loudWindows(recorded, frequency: 1.5 * Self.firefoxTone, sampleRate: 48000).map(\.toneShare))
        let level = ToneMeter.median(windows.map(\.rmsDBFS))
        print("Firefox's tone on the device's speaker: \(windows.count) loud 20 ms windows, median 1 kHz share \(String(describing: share)), "
              + "1.5 kHz share \(String(describing: elsewhere)), median level \(String(describing: level)) dBFS RMS; viewer \(String(describing: heard))")
        // Most of a second of tone: the microphone ran for at least 50 frames.
        #expect(windows.count >= 40, "only \(windows.count) loud windows on the speaker")
        #expect((share ?? 0) >= 0.9, "the speaker did not play a 1 kHz tone: share \(String(describing: share))")
        #expect((elsewhere ?? 1) < 0.05, "energy at 1.5 kHz too: \(String(describing: elsewhere))")
        // A sine's RMS lies 3 dB below its peak, which the viewer measured at its microphone.
        let browserPeak = try #require(heard?.microphonePeakDbfs, "the viewer reported no microphone level")
        #expect(abs((level ?? -120) - (browserPeak - 3)) <= 3, "speaker \(String(describing: level)) dBFS RMS, browser peak \(browserPeak) dBFS")
    }

    /// The expert's browser joins the call, talks and hears the device; returns the viewer's
    /// stats once 50 microphone frames went out and everything the device's speaker played.
    func viewerTalks(on rig: Rig, expecting capture: String, browser start: () async throws -> any HeadlessBrowser) async throws -> (ViewerAudio?, [Int16]) {
        try await rig.waitForMicrophone()
        let invite = try await rig.invite()
        let recorder = try PulseBackend(server: rig.server.server).openCapture(device: "\(Self.speakerSink).monitor", format: .stream)
        let recording = Task {
            var samples: [Int16] = []
            for await frame in recorder.frames { samples += frame.samples }
            return samples
        }
        let browser = try await start()
        func stats() async throws -> ViewerAudio? {
            try? await browser.evaluate("return window.sightlineViewer ? window.sightlineViewer.stats : null;").decode(ViewerAudio.self)
        }
        func waitFor(_ what: String, _ condition: (ViewerAudio) -> Bool) async throws -> ViewerAudio? {
            var current: ViewerAudio?
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                current = try await stats()
                if let current, condition(current) { return current }
                try await Task.sleep(for: .milliseconds(250))
            }
            let log = (try? await browser.browserLog().joined(separator: "\n")) ?? ""
            Issue.record("viewer never got \(what): \(String(describing: current))\nbrowser log:\n\(log)\ndaemon log:\n\(rig.daemon.log)")
            return current
        }
        var heard: ViewerAudio?
        do {
            try await browser.open(invite)
            _ = try await waitFor("verified") { $0.verified }
            _ = try await browser.evaluate("await window.sightlineViewer.startMicrophone(); return true;")
            heard = try await waitFor("device audio and a live microphone") { $0.audioDecoded >= 50 && $0.microphoneFramesSent >= 50 }
            #expect(heard?.microphoneError == nil)
            #expect(heard?.microphoneCapture == capture)
            // The device opened and played the browser's Opus.
            var audio = try await rig.callAudio()
            let deadline = ContinuousClock.now + .seconds(20)
            while audio.framesPlayed < 50, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(250))
                audio = try await rig.callAudio()
            }
            print("viewer \(String(describing: heard)); device \(audio)")
            #expect(audio.framesReceived >= 50, "\(audio)")
            #expect(audio.framesPlayed >= 50, "\(audio)")
            #expect(audio.openFailures == 0, "\(audio)")

            _ = try await rig.client.post(ControlAPI.audioMutePath, json: AudioMuteRequest(muted: true), as: AudioStatus.self)
            let muted = try await waitFor("the muted state") { $0.audioMuted }
            #expect(muted?.audioMuted == true)
        } catch {
            await browser.quit()
            await recorder.stop()
            throw error
        }
        await browser.quit()
        await recorder.stop()
        return (heard, await recording.value)
    }
}
