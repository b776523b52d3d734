import Foundation
import SightlineCamera
import SightlineCore
import SightlineTesting

/// The camera suite: our capture pipeline (V4L2 capture + a JPEG per frame) against the real
/// vivid driver in the kernel lab, side by side with ustreamer on the same device, plus the host's
/// per-frame JPEG cost. The host part runs here; one lab guest runs `camera-guest` (ours) and
/// `camera-ustreamer` (the peer), each writing a partial JSON file that is merged here.
enum CameraSuite {
    struct Mode {
        let label: String
        let size: FrameSize
        /// vivid's fastest rate is 25 fps at 640x480 and 12.5 at 1280x720; negotiation takes the
        /// nearest rate at or above the request, so 12 picks 12.5.
        let fps: Int
    }

    static let modes = [
        Mode(label: "640x480", size: FrameSize(width: 640, height: 480), fps: 25),
        Mode(label: "1280x720", size: FrameSize(width: 1280, height: 720), fps: 12),
    ]
    /// Passed to ustreamer's --quality as well, so both encode the same quality.
    static let quality: Int32 = 90
    static let warmUp = Duration.seconds(2)
    static let ustreamerPort = 8080

    static var seconds: Int {
        ProcessInfo.processInfo.environment["SIGHTLINE_BENCH_SECONDS"].flatMap(Int.init).map { max(1, $0) } ?? 60
    }

    static func run(_ name: String, output: String) async throws -> [(String, Double)] {
        switch name {
        case "camera-guest": try await measurePipeline()
        case "camera-ustreamer": try await measureUstreamer()
        default: try await hostAndLab(output: output)
        }
    }

    // MARK: Host

    static func hostAndLab(output: String) async throws -> [(String, Double)] {
        let encodeMS = try hostEncodeMilliseconds()
        // The guest sees only the work tree read-write, so the partial results go next to the output.
        let directory = URL(fileURLWithPath: output).deletingLastPathComponent().appendingPathComponent(".camera-guest").path
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let bench = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let ours = directory + "/ours.json", peer = directory + "/ustreamer.json"
        let lab = Process()
        lab.executableURL = URL(fileURLWithPath: KernelLab.projectRoot + "/scripts/kernel-lab")
        lab.arguments = ["--timeout", "1200", "--module", "vivid n_devs=1", "--",
                         "env", "SIGHTLINE_BENCH_SECONDS=\(seconds)", "sh", "-c", #""$0" camera-guest "$1" && "$0" camera-ustreamer "$2""#,
                         bench, ours, peer]
        try launch(lab)
        lab.waitUntilExit()
        guard lab.terminationStatus == 0 else { throw TestFailure("kernel lab exited \(lab.terminationStatus)") }

        var merged = [("host_jpeg_encode_ms_p50", encodeMS)]
        merged += try readResults(ours) + readResults(peer)
        let values = Dictionary(merged, uniquingKeysWith: { $1 })
        if let ourCPU = values["daemon_cpu_pct_640x480"], let theirCPU = values["ustreamer_cpu_pct"],
           let ourPerFrame = values["daemon_cpu_ms_per_frame_640x480"], let theirPerFrame = values["ustreamer_cpu_ms_per_frame"] {
            merged.append(("cpu_ratio_vs_ustreamer", ourCPU / theirCPU))
            merged.append(("cpu_per_frame_ratio_vs_ustreamer", ourPerFrame / theirPerFrame))
        }
        try? FileManager.default.removeItem(atPath: directory)
        return merged
    }

    /// Starts `process` with no signal blocked: libdispatch's worker threads block signals and a
    /// child inherits that mask, so SIGTERM (and Ctrl-C for the lab) would never reach it.
    static func launch(_ process: Process) throws {
        var none = sigset_t(), saved = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        try process.run()
    }

    /// Median cost of turning one 1280x720 YUYV colour-bar frame into a JPEG, as the pipeline does.
    static func hostEncodeMilliseconds() throws -> Double {
        let size = FrameSize(width: 1280, height: 720)
        let frame = CapturedFrame(mode: CameraMode(fourCC: .yuyv, size: size, interval: FrameInterval(numerator: 1, denominator: 30)),
                                  sequence: 0, timestamp: .zero, bytes: colourBars(width: size.width, height: size.height), missedBefore: 0)
        let encoder = try JPEGEncoder()
        var times: [Double] = []
        for index in 0..<320 {
            let started = ContinuousClock.now
            _ = try encode(frame, with: encoder)
            if index >= 20 { times.append(StartupSuite.milliseconds(ContinuousClock.now - started)) }
        }
        return Statistics.percentile(times, 50)
    }

    /// The daemon's test pattern (internal to the daemon): its eight BT.601 colour bars, without
    /// the moving marker and burnt-in text.
    static func colourBars(width: Int, height: Int) -> [UInt8] {
        let bars: [(y: UInt8, u: UInt8, v: UInt8)] = [
            (235, 128, 128), (210, 16, 146), (170, 166, 16), (145, 54, 34),
            (106, 202, 222), (81, 90, 240), (41, 240, 110), (16, 128, 128),
        ]
        var row: [UInt8] = []
        for x in stride(from: 0, to: width, by: 2) {
            let bar = bars[min(x * bars.count / width, bars.count - 1)]
            row += [bar.y, bar.u, bar.y, bar.v]
        }
        return Array([[UInt8]](repeating: row, count: height).joined())
    }

    /// What the pipeline does per frame: packed YUYV to planes, then libturbojpeg.
    static func encode(_ frame: CapturedFrame, with encoder: JPEGEncoder) throws -> [UInt8] {
        let size = frame.mode.size
        guard frame.mode.fourCC == .yuyv, let planes = PlanarYUV.fromYUYV(frame.bytes, width: size.width, height: size.height) else {
            throw TestFailure("expected a YUYV frame of \(size), got \(frame.mode.fourCC) with \(frame.bytes.count) bytes")
        }
        return try encoder.encode(planes, quality: quality)
    }

    static func readResults(_ path: String) throws -> [(String, Double)] {
        guard let data = FileManager.default.contents(atPath: path),
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Double] else {
            throw TestFailure("no results in \(path)")
        }
        // Our own files keep one key per line; that order is the table's order.
        let text = String(decoding: data, as: UTF8.self)
        let order = text.split(separator: "\n").compactMap { line in line.split(separator: "\"").dropFirst().first.map(String.init) }
        return order.compactMap { key in object[key].map { (key, $0) } }
    }

    // MARK: Guest: our pipeline

    static func measurePipeline() async throws -> [(String, Double)] {
        guard let node = CameraDiscovery.captureNodes().first else { throw TestFailure("no V4L2 capture node (is vivid loaded?)") }
        var results: [(String, Double)] = []
        for mode in modes {
            results += try await measurePipeline(node: node, mode: mode)
        }
        return results
    }

    static func measurePipeline(node: String, mode: Mode) async throws -> [(String, Double)] {
        let camera = try V4L2Camera(path: node)
        defer { camera.close() }
        // vivid's default "End of Frame" stamps are 0.9 frame period ahead of the moment it hands the
        // buffer over; "Start of Exposure" stamps the frame's nominal start, which has passed by then.
        _ = try? camera.setControl("timestamp_source", to: 1)
        let session = try CaptureSession(camera: camera, request: ModeNegotiation.Request(preference: [.yuyv], size: mode.size, fps: mode.fps),
                                         bufferCount: 4)
        guard session.mode.fourCC == .yuyv, session.mode.size == mode.size else {
            await session.stop()
            throw TestFailure("vivid gave \(session.mode) for \(mode.label)")
        }
        let encoder = try JPEGEncoder()
        let warmUpEnd = ContinuousClock.now + warmUp
        var started: (at: ContinuousClock.Instant, cpu: Double, missed: UInt64, dropped: UInt64)?
        var latencies: [Double] = []
        var frames = 0
        for await frame in session.frames {
            let latency = StartupSuite.milliseconds(monotonicNow() - frame.timestamp)
            _ = try encode(frame, with: encoder)
            guard let start = started else {
                if ContinuousClock.now >= warmUpEnd {
                    started = (ContinuousClock.now, cpuSeconds(pid: nil), session.counters.missed, session.dropped)
                }
                continue
            }
            latencies.append(latency)
            frames += 1
            if ContinuousClock.now - start.at >= .seconds(seconds) { break }
        }
        let rss = StartupSuite.residentMegabytes(pid: getpid())
        let counters = session.counters, dropped = session.dropped
        await session.stop()
        guard let start = started, frames > 0 else { throw TestFailure("no frames at \(mode.label): \(String(describing: counters.failure))") }
        let wall = StartupSuite.milliseconds(ContinuousClock.now - start.at) / 1_000
        let cpu = cpuSeconds(pid: nil) - start.cpu
        let fps = session.mode.interval.map { String(format: "%.1f", $0.framesPerSecond) } ?? "?"
        print("ours \(mode.label) @ \(fps) fps: \(frames) frames in \(String(format: "%.1f", wall)) s")
        return [
            ("fps_delivered_\(mode.label)", Double(frames) / wall),
            ("drops_\(mode.label)", Double(counters.missed - start.missed + dropped - start.dropped)),
            ("driver_to_userspace_ms_p50_\(mode.label)", Statistics.percentile(latencies, 50)),
            ("driver_to_userspace_ms_p99_\(mode.label)", Statistics.percentile(latencies, 99)),
            ("daemon_cpu_pct_\(mode.label)", cpu / wall * 100),
            ("daemon_cpu_ms_per_frame_\(mode.label)", cpu * 1_000 / Double(frames)),
            ("daemon_rss_mb_\(mode.label)", rss),
        ]
    }

    /// CLOCK_MONOTONIC, the clock V4L2 stamps buffers with (ContinuousClock is CLOCK_BOOTTIME).
    static func monotonicNow() -> Duration {
        .nanoseconds(Int64(RelayLoad.monotonicNanoseconds()))
    }

    /// utime + stime of a process (nil: this one) from /proc/PID/stat, in seconds.
    static func cpuSeconds(pid: Int32?) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid.map(String.init) ?? "self")/stat", encoding: .utf8),
              let afterName = stat.range(of: ")", options: .backwards) else { return .nan }
        // Fields after "(comm)" start at field 3; utime and stime are fields 14 and 15.
        let fields = stat[afterName.upperBound...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    // MARK: Guest: ustreamer on the same device, size, rate and quality

    static func measureUstreamer() async throws -> [(String, Double)] {
        guard let node = CameraDiscovery.captureNodes().first, let mode = modes.first else { throw TestFailure("no V4L2 capture node") }
        _ = try? CommandLineTool.run("/bin/ip", ["link", "set", "lo", "up"])
        let base = "http://127.0.0.1:\(ustreamerPort)"
        let streamer = Process()
        streamer.executableURL = URL(fileURLWithPath: "/usr/bin/ustreamer")
        streamer.arguments = ["--device", node, "--input", "0", "--format", "YUYV", "--encoder", "CPU",
                              "--resolution", mode.label, "--desired-fps", String(mode.fps), "--quality", String(quality),
                              "--host", "127.0.0.1", "--port", String(ustreamerPort)]
        streamer.standardOutput = FileHandle.nullDevice
        streamer.standardError = FileHandle.nullDevice
        try launch(streamer)
        defer {
            streamer.terminate()
            streamer.waitUntilExit()
        }
        var online = false
        for _ in 0..<60 where !online {
            online = (try? CommandLineTool.run("/usr/bin/curl", ["-sf", "--max-time", "5", base + "/state"]))?.stdout.contains("\"online\": true") == true
            if !online { try await Task.sleep(for: .milliseconds(500)) }
        }
        guard online else { throw TestFailure("ustreamer did not come online on \(node)") }
        try await Task.sleep(for: warmUp)

        // A client must pull the stream for ustreamer to encode; curl ends itself after the
        // window and reports how long it received (spawning it costs time here), grep counts the
        // frame headers. ustreamer encodes steadily, so its CPU is taken over the whole wall time.
        let cpuStart = cpuSeconds(pid: streamer.processIdentifier), started = ContinuousClock.now
        let client = try CommandLineTool.run("/bin/sh", ["-c", "curl -s -w '%{stderr}%{time_total}' --max-time \(seconds) \(base)/stream | grep -a -c 'Content-Type: image/jpeg'"])
        let cpu = cpuSeconds(pid: streamer.processIdentifier) - cpuStart
        let wall = StartupSuite.milliseconds(ContinuousClock.now - started) / 1_000
        let frames = Double(client.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        guard frames > 0, let received = Double(client.stderr.trimmingCharacters(in: .whitespacesAndNewlines)), received > 0 else {
            throw TestFailure("the stream client received no frames from ustreamer: \(client.stderr)")
        }
        let fps = frames / received, cpuShare = cpu / wall
        print("ustreamer \(mode.label): \(Int(frames)) frames in \(String(format: "%.1f", received)) s")
        return [
            ("ustreamer_fps_delivered", fps),
            ("ustreamer_cpu_pct", cpuShare * 100),
            ("ustreamer_cpu_ms_per_frame", cpuShare * 1_000 / fps),
        ]
    }
}
