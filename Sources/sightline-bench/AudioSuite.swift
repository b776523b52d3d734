import Foundation
import SightlineAudio
import SightlineControlClient
import SightlineCore
import SightlineTesting
import Synchronization

/// The audio suite (issue "audio"): a live call on loopback with a real PulseAudio server (the
/// daemon's microphone is one null sink's monitor, its speaker a second null sink) and headless
/// Chromium as the expert, whose fake microphone plays a file of short tone bursts (or Firefox,
/// which records the same bursts from a third null sink's monitor: `SIGHTLINE_BENCH_EXPERT`). Mouth-to-ear
/// is the sum of its measured parts (browser capture → device, jitter buffer, speaker queue);
/// a burst's first loud sample in the browser to the same burst's in the speaker's monitor is
/// the cross-check. A second core is kept busy all along.
enum AudioSuite {
    static let speakerSink = "speaker"
    static let burstInterval = 0.5

    static var seconds: Int {
        ProcessInfo.processInfo.environment["SIGHTLINE_BENCH_SECONDS"].flatMap(Int.init).map { max(10, $0) } ?? 30
    }

    /// The expert's browser and how the viewer reads its microphone (`SIGHTLINE_BENCH_EXPERT`):
    /// Chromium with MediaStreamTrackProcessor (the viewer's choice there, and the default),
    /// Chromium through the AudioWorklet, or Firefox (AudioWorklet, its only way).
    enum Expert: String, CaseIterable {
        case chromium, chromiumWorklet = "chromium-worklet", firefox

        static func fromEnvironment() throws -> Expert {
            let name = ProcessInfo.processInfo.environment["SIGHTLINE_BENCH_EXPERT"] ?? Expert.chromium.rawValue
            guard let expert = Expert(rawValue: name) else {
                throw TestFailure("SIGHTLINE_BENCH_EXPERT=\(name) is none of \(allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return expert
        }

        var capture: String { self == .chromium ? "track-processor" : "worklet" }
        var unavailableReason: String? { self == .firefox ? HeadlessFirefox.unavailableReason : HeadlessChromium.unavailableReason }
    }

    /// Where Firefox's microphone records the bursts from, and where it plays what it hears.
    static let mouthSink = "mouth"
    static let expertSink = "expert"

    struct ViewerStats: Decodable {
        var verified: Bool
        var audioDecoded: Int
        var microphoneCapture: String?
        var microphoneFramesSent: Int
        var microphoneLastOnsetAt: Double?
        var microphoneError: String?
    }

    static func run() async throws -> [(String, Double)] {
        let expert = try Expert.fromEnvironment()
        if let reason = PulseAudioServer.unavailableReason ?? expert.unavailableReason { throw TestFailure(reason) }
        let server = try PulseAudioServer()
        try await server.start()
        try server.addNullSink(named: speakerSink)
        let bursts = server.directory.file("bursts.wav")
        try burstFile().write(to: URL(fileURLWithPath: bursts))
        // Firefox takes no file for its fake microphone: it records a sink's monitor, into which
        // pacat plays the bursts for the whole run (raw samples, so pacat needs no decoder).
        let rawBursts = server.directory.file("bursts.raw")
        try Data(burstSamples(seconds: seconds + 20).flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) })
            .write(to: URL(fileURLWithPath: rawBursts))
        let relay = try RelayProcess()
        try await relay.start()
        defer { relay.stop() }
        let daemon = try DaemonProcess(configuration: server.callConfiguration(relay: relay, speaker: speakerSink),
                                       environment: ["PULSE_SERVER": server.server])
        try daemon.start()
        defer {
            daemon.signal(SIGTERM)
            daemon.process.waitUntilExit()
        }
        let (client, invite) = try await StreamSuite.openCall(on: daemon)

        // The ear: the speaker's monitor, onsets stamped with their capture time (CLOCK_MONOTONIC).
        let recorder = try PulseBackend(server: server.server).openCapture(device: "\(speakerSink).monitor", format: .stream)
        let heard = Task { () -> [Double] in
            var onsets: [Double] = []
            var lastLoud = -Double.infinity
            let threshold = Int16(32768 * 0.0316)  // -30 dBFS
            for await frame in recorder.frames {
                let start = wallMilliseconds(ofMonotonic: frame.timestamp)
                for (index, sample) in frame.samples.enumerated() where abs(Int(sample)) >= Int(threshold) {
                    let at = start + Double(index) / 48.0
                    if at - lastLoud > 150 { onsets.append(at) }
                    lastLoud = at
                }
            }
            return onsets
        }

        let browser: any HeadlessBrowser
        var mouth: SpawnedProcess?
        if expert == .firefox {
            try server.addNullSink(named: mouthSink)
            try server.addNullSink(named: expertSink)
            browser = try await HeadlessFirefox.start(
                extraPreferences: HeadlessFirefox.autoplayPreferences.merging([
                    "media.navigator.streams.fake": "false", "media.audio_loopback_dev": "\"Monitor of \(mouthSink)\"",
                ]) { $1 },
                environment: ["PULSE_SERVER": server.server, "PULSE_SINK": expertSink])
        } else {
            browser = try await HeadlessChromium.start(extraArguments: [
                "--autoplay-policy=no-user-gesture-required", "--use-file-for-fake-audio-capture=\(bursts)",
            ])
        }
        defer {
            mouth?.signal(SIGTERM)
            _ = mouth?.wait()
        }
        do {
            try await browser.open(invite)
            @Sendable func stats() async throws -> ViewerStats {
                try await browser.evaluate("return window.sightlineViewer ? window.sightlineViewer.stats : null;").decode(ViewerStats.self)
            }
            let ready = ContinuousClock.now + .seconds(30)
            while (try? await stats())?.verified != true {
                guard ContinuousClock.now < ready else { throw TestFailure("the viewer was not verified within 30 s:\n\(daemon.log)") }
                try await Task.sleep(for: .milliseconds(200))
            }
            _ = try await browser.evaluate("await window.sightlineViewer.startMicrophone({ capture: arguments[0] }); return true;",
                                           arguments: [.string(expert.capture)])
            if expert == .firefox { mouth = try server.play(rawFile: rawBursts, into: mouthSink) }
            try await Task.sleep(for: .seconds(3))
            let capture = try await stats().microphoneCapture
            guard capture == expert.capture else { throw TestFailure("the viewer reads its microphone by \(capture ?? "nothing"), not \(expert.capture)") }

            let busy = BusyCore()
            busy.start()
            defer { busy.stop() }
            let xruns0 = try await client.get(ControlAPI.audioPath, as: AudioStatus.self).capture?.xruns ?? 0
            let cpu0 = CameraSuite.cpuSeconds(pid: daemon.pid)
            let started = ContinuousClock.now
            var spoken: [Double] = []
            var jitterMs: [Double] = []
            var lastPoll = ContinuousClock.now
            while ContinuousClock.now - started < .seconds(seconds) {
                if let onset = try await stats().microphoneLastOnsetAt, onset != spoken.last { spoken.append(onset) }
                if ContinuousClock.now - lastPoll > .milliseconds(500) {
                    lastPoll = ContinuousClock.now
                    if let audio = try await client.get(ControlAPI.callPath, as: CallStatus.self).audio { jitterMs.append(Double(audio.jitterBufferMs)) }
                }
                try await Task.sleep(for: .milliseconds(40))
            }
            let elapsed = Statistics.seconds(ContinuousClock.now - started)
            let cpu = CameraSuite.cpuSeconds(pid: daemon.pid) - cpu0
            let xruns = (try await client.get(ControlAPI.audioPath, as: AudioStatus.self).capture?.xruns ?? 0) - xruns0
            let audio = try await client.get(ControlAPI.callPath, as: CallStatus.self).audio
            let viewer = try await stats()
            busy.stop()
            await browser.quit()
            await recorder.stop()
            let ears = await heard.value

            // Each burst heard belongs to the latest one spoken before it, within 400 ms.
            var delays: [Double] = []
            for ear in ears {
                guard let mouth = spoken.last(where: { $0 <= ear }), ear - mouth < 400 else { continue }
                delays.append(ear - mouth)
            }
            print("audio (\(expert.rawValue), \(expert.capture)): \(Int(elapsed)) s, \(spoken.count) bursts spoken, \(ears.count) heard, \(delays.count) matched; "
                  + "viewer \(viewer); device \(String(describing: audio))")
            guard !delays.isEmpty else { throw TestFailure("no burst from the browser was heard on the device's speaker:\n\(daemon.log)") }
            // Mouth to ear is the sum of its measured parts: the browser's capture time to the
            // packet's arrival on the device (one machine, one wall clock), the wait in the
            // jitter buffer, and what the device queued ahead of the speaker as PulseAudio
            // reports it. The speaker monitor's onsets are the cross-check, not the figure: a
            // null sink's monitor gets audio when the sink renders it, ahead of its clock by an
            // amount the recorder cannot see, so onsets there scatter by ±100 ms between runs.
            let parts = [audio?.expertToDeviceMsP50, audio?.jitterWaitMsP50, audio?.speakerLatencyMsP50].map { $0 ?? .nan }
            let mouthToEar = parts.reduce(0, +)
            return [
                ("capture_to_encoded_ms_p50", audio?.captureToSentMsP50 ?? .nan),
                ("capture_to_encoded_ms_p99", audio?.captureToSentMsP99 ?? .nan),
                ("playback_jitter_buffer_ms", jitterMs.isEmpty ? .nan : jitterMs.reduce(0, +) / Double(jitterMs.count)),
                ("mouth_to_ear_ms_p50", mouthToEar),
                ("expert_to_device_ms_p50", parts[0]),
                ("jitter_wait_ms_p50", parts[1]),
                ("speaker_latency_ms_p50", parts[2]),
                ("mouth_to_monitor_ms_p50", Statistics.percentile(delays, 50)),
                ("cpu_pct", cpu / elapsed * 100),
                ("xruns_per_hour", Double(xruns) / elapsed * 3600),
            ]
        } catch {
            await browser.quit()
            await recorder.stop()
            throw error
        }
    }

    /// 20 ms 1 kHz bursts (−6 dBFS) every half second, mono 48 kHz.
    static func burstSamples(seconds: Int) -> [Int16] {
        let rate = 48000
        return (0..<(rate * seconds)).map { index -> Int16 in
            let inPeriod = Double(index % Int(Double(rate) * burstInterval)) / Double(rate)
            guard inPeriod < 0.02 else { return 0 }
            return Int16(16384 * sin(2 * Double.pi * 1000 * Double(index) / Double(rate)))
        }
    }

    /// Four seconds of the bursts as a WAV file; Chromium loops it.
    static func burstFile() -> Data {
        let rate = 48000
        let samples = burstSamples(seconds: 4)
        var data = Data("RIFF".utf8)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) } }
        append(UInt32(36 + samples.count * 2))
        data.append(contentsOf: Array("WAVEfmt ".utf8))
        append(UInt32(16)); append(UInt16(1)); append(UInt16(1)); append(UInt32(rate)); append(UInt32(rate * 2)); append(UInt16(2)); append(UInt16(16))
        data.append(contentsOf: Array("data".utf8))
        append(UInt32(samples.count * 2))
        for sample in samples { append(sample) }
        return data
    }

    /// Wall-clock milliseconds of a CLOCK_MONOTONIC instant, comparable with the page's times.
    static func wallMilliseconds(ofMonotonic instant: Duration) -> Double {
        let age = MonotonicTime.now() - instant
        return Date().timeIntervalSince1970 * 1000 - Statistics.seconds(age) * 1000
    }
}

/// Keeps one core busy (a spinning thread) while a measurement runs.
final class BusyCore: Sendable {
    private let running = Atomic<Bool>(false)

    func start() {
        running.store(true, ordering: .releasing)
        let thread = Thread { [self] in
            var value = 0.0
            while running.load(ordering: .acquiring) { value = sin(value + 1) }
        }
        thread.name = "busy core"
        thread.start()
    }

    func stop() { running.store(false, ordering: .releasing) }
}
