import Foundation
import SightlineControlClient
import SightlineCore
import SightlineTesting

/// The stream suite (issue "live, end-to-end-encrypted stream"): one live call at 1280x720@30
/// with OpenH264 from the daemon's test-pattern camera through the real relay into headless
/// Chromium on loopback; then the encoder against GStreamer's x264 on identical frames; then
/// the relay alone under a growing number of synthetic sessions.
enum StreamSuite {
    /// Waits for a started daemon's control socket and opens a call: its client and invite link.
    static func openCall(on daemon: DaemonProcess) async throws -> (ControlClient, String) {
        try await daemon.waitUntilServing()
        let client = ControlClient(socketPath: daemon.socketPath)
        let call = try await client.post(ControlAPI.callPath, json: [String: String](), as: CallStatus.self)
        guard let invite = call.invite else { throw TestFailure("the daemon made no invite: \(call)") }
        return (client, invite)
    }

    static let width = 1280
    static let height = 720
    static let fps = 30
    static let bitrateKbps = 2_000
    static let warmUp = Duration.seconds(5)

    /// `SIGHTLINE_BENCH_SECONDS=600` is the 10-minute mode.
    static var seconds: Int {
        ProcessInfo.processInfo.environment["SIGHTLINE_BENCH_SECONDS"].flatMap(Int.init).map { max(5, $0) } ?? 60
    }

    static func run() async throws -> [(String, Double)] {
        var results = try await measureLiveCall()
        results += try EncoderReference.measure(width: width, height: height, fps: fps, bitrateKbps: bitrateKbps)
        results += try await RelayLoad.measure()
        return results
    }

    /// What the viewer page reports, polled; `latencyMs` holds the last second's samples.
    struct ViewerStats: Decodable {
        var verified: Bool
        var framesDecoded: Int
        var decryptFailures: Int
        var decodeErrors: Int
        var latencyMs: [Double]
    }

    struct LatencySample {
        let secondsIntoRun: Double
        let milliseconds: Double
    }

    static func measureLiveCall() async throws -> [(String, Double)] {
        let relay = try RelayProcess()
        try await relay.start()
        defer { relay.stop() }
        let daemon = try DaemonProcess(configuration: """
            camera:
              device: test-pattern
              width: \(width)
              height: \(height)
              fps: \(fps)
            relay:
              url: \(relay.webSocketURL)
              token_file: \(relay.deviceTokenFile)
            stream:
              codec: h264
              bitrate_kbps: \(bitrateKbps)

            """)
        try daemon.start()
        defer {
            daemon.signal(SIGTERM)
            daemon.process.waitUntilExit()
        }
        let (client, invite) = try await StreamSuite.openCall(on: daemon)

        let browser = try await HeadlessChromium.start()
        do {
            try await browser.open(invite)
            @Sendable func stats() async throws -> ViewerStats {
                try await browser.evaluate("return window.sightlineViewer ? window.sightlineViewer.stats : null;").decode(ViewerStats.self)
            }
            // Warm-up: the first keyframe is decoded and the encoder's rate control settles.
            let ready = ContinuousClock.now + .seconds(30)
            while (try? await stats())?.framesDecoded ?? 0 < 30 {
                guard ContinuousClock.now < ready else { throw TestFailure("the viewer decoded nothing within 30 s:\n\(daemon.log)") }
                try await Task.sleep(for: .milliseconds(200))
            }
            try await Task.sleep(for: warmUp)

            // The encoder's last duration, sampled three times a frame period apart on average.
            let encodeSamples = Task { () -> [Double] in
                var samples: [Double] = []
                while !Task.isCancelled {
                    if let last = try? await client.get(ControlAPI.callPath, as: CallStatus.self).lastEncodeMs { samples.append(last) }
                    try? await Task.sleep(for: .milliseconds(100))
                }
                return samples
            }

            let first = try await stats()
            let (daemonCPU0, relayCPU0) = (CameraSuite.cpuSeconds(pid: daemon.pid), CameraSuite.cpuSeconds(pid: relay.process.processIdentifier))
            let started = ContinuousClock.now
            var previous = first
            var latencies: [LatencySample] = []
            while ContinuousClock.now - started < .seconds(seconds) {
                try await Task.sleep(for: .milliseconds(400))
                let current = try await stats()
                // Samples are in decode order, so the newest ones are the frames decoded since the last poll.
                let fresh = current.latencyMs.suffix(max(0, current.framesDecoded - previous.framesDecoded))
                let at = Statistics.seconds(ContinuousClock.now - started)
                latencies += fresh.map { LatencySample(secondsIntoRun: at, milliseconds: $0) }
                previous = current
            }
            let elapsed = Statistics.seconds(ContinuousClock.now - started)
            let daemonCPU = CameraSuite.cpuSeconds(pid: daemon.pid) - daemonCPU0
            let relayCPU = CameraSuite.cpuSeconds(pid: relay.process.processIdentifier) - relayCPU0
            let rss = StartupSuite.residentMegabytes(pid: daemon.pid)
            encodeSamples.cancel()
            let encodeMs = await encodeSamples.value
            await browser.quit()

            guard !latencies.isEmpty else { throw TestFailure("no latency samples from the viewer") }
            let all = latencies.map(\.milliseconds)
            let lastMinute = latencies.filter { $0.secondsIntoRun >= elapsed - 60 }.map(\.milliseconds)
            let firstMinute = latencies.filter { $0.secondsIntoRun <= 60 }.map(\.milliseconds)
            return [
                ("seconds", elapsed),
                ("latency_ms_p50", Statistics.percentile(all, 50)),
                ("latency_ms_p99", Statistics.percentile(all, 99)),
                ("latency_ms_p99_first_minute", Statistics.percentile(firstMinute, 99)),
                ("latency_ms_p99_last_minute", Statistics.percentile(lastMinute, 99)),
                ("latency_samples", Double(all.count)),
                ("fps_viewer", Double(previous.framesDecoded - first.framesDecoded) / elapsed),
                ("decrypt_failures", Double(previous.decryptFailures)),
                ("decode_errors", Double(previous.decodeErrors)),
                ("encode_ms_p50", Statistics.percentile(encodeMs, 50)),
                ("daemon_cpu_pct", daemonCPU / elapsed * 100),
                ("daemon_rss_mb", rss),
                ("relay_cpu_pct_live", relayCPU / elapsed * 100),
            ]
        } catch {
            await browser.quit()
            throw error
        }
    }
}
