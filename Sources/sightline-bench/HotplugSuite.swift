import Foundation
import Glibc
import SightlineControlClient
import SightlineCore
import SightlineTesting
import Synchronization

/// The hotplug suite: how long after a camera is plugged back in the first frame flows, for the
/// real daemon and for ustreamer on the same guest. The host part starts one kernel-lab guest
/// that runs `hotplug-guest` (both measurements, one after the other on the same /dev/video0) and
/// writes a partial JSON file, merged here with the ratios.
///
/// A re-plug is vivid's platform device unbound and bound again, which sends real remove and add
/// uevents through the guest's systemd-udevd.
enum HotplugSuite {
    static let unbindPath = "/sys/bus/platform/drivers/vivid/unbind"
    static let bindPath = "/sys/bus/platform/drivers/vivid/bind"
    static let platformDevice = "vivid.0"
    static let node = "/dev/video0"
    static let ustreamerPort: UInt16 = 8080
    /// How long the camera stays away after the unplug has been noticed: uniformly random up to
    /// one second, so a peer that polls for the device once per second (ustreamer) gets it back
    /// at a random point of its poll period, as with a real re-plug.
    static let maximumHold = 1_000

    static var cycles: Int {
        ProcessInfo.processInfo.environment["SIGHTLINE_BENCH_CYCLES"].flatMap(Int.init).map { max(1, $0) } ?? 50
    }

    static var ustreamerCycles: Int {
        ProcessInfo.processInfo.environment["SIGHTLINE_BENCH_USTREAMER_CYCLES"].flatMap(Int.init).map { max(1, $0) } ?? cycles
    }

    static func run(_ name: String, output: String) async throws -> [(String, Double)] {
        switch name {
        case "hotplug-guest": try await measureGuest()
        default: try await hostAndLab(output: output)
        }
    }

    // MARK: Host

    static func hostAndLab(output: String) async throws -> [(String, Double)] {
        // The guest sees only the work tree read-write, so the partial results go next to the output.
        let directory = URL(fileURLWithPath: output).deletingLastPathComponent().appendingPathComponent(".hotplug-guest").path
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Called by absolute path, so the daemon is found beside it (the same build directory).
        let bench = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let partial = directory + "/guest.json"
        let lab = Process()
        lab.executableURL = URL(fileURLWithPath: KernelLab.projectRoot + "/scripts/kernel-lab")
        lab.arguments = ["--timeout", "1500", "--module", "vivid n_devs=1", "--module", "snd-aloop", "--",
                         "env", "SIGHTLINE_BENCH_CYCLES=\(cycles)", "SIGHTLINE_BENCH_USTREAMER_CYCLES=\(ustreamerCycles)",
                         bench, "hotplug-guest", partial]
        try CameraSuite.launch(lab)
        lab.waitUntilExit()
        guard lab.terminationStatus == 0 else { throw TestFailure("kernel lab exited \(lab.terminationStatus)") }

        var merged = try CameraSuite.readResults(partial)
        let values = Dictionary(merged, uniquingKeysWith: { $1 })
        if let ours = values["replug_to_first_frame_ms_p50"], let theirs = values["ustreamer_replug_to_first_frame_ms_p50_min_delay"] {
            merged.append(("replug_ratio_vs_ustreamer_min_delay", ours / theirs))
        }
        if let ours = values["replug_wall_to_first_frame_ms_p50"], let theirs = values["ustreamer_replug_to_first_frame_ms_p50_min_delay"] {
            merged.append(("replug_wall_ratio_vs_ustreamer_min_delay", ours / theirs))
        }
        try? FileManager.default.removeItem(atPath: directory)
        return merged
    }

    // MARK: Guest

    static func measureGuest() async throws -> [(String, Double)] {
        guard FileManager.default.fileExists(atPath: node) else { throw TestFailure("no \(node) (is vivid loaded?)") }
        var results = try await measureDaemon()
        _ = try? CommandLineTool.run("/bin/ip", ["link", "set", "lo", "up"])
        let byDefault = try await measureUstreamer(errorDelay: nil)
        let minimum = try await measureUstreamer(errorDelay: 1)
        results.append(("ustreamer_cycles", Double(ustreamerCycles)))
        results += percentiles("ustreamer_replug_to_first_frame_ms", byDefault.samples, suffix: "_default_delay")
        results += percentiles("ustreamer_replug_to_first_frame_ms", minimum.samples, suffix: "_min_delay")
        results.append(("ustreamer_timeouts", Double(byDefault.timeouts + minimum.timeouts)))
        return results
    }

    /// p50 and p99 keys, or none when nothing was measured (the JSON has no NaN).
    static func percentiles(_ stem: String, _ samples: [Double], suffix: String = "") -> [(String, Double)] {
        guard !samples.isEmpty else { return [] }
        return [("\(stem)_p50\(suffix)", Statistics.percentile(samples, 50)),
                ("\(stem)_p99\(suffix)", Statistics.percentile(samples, 99))]
    }

    static func unplug() throws { try KernelLab.writeSysfs(unbindPath, platformDevice) }

    static func replug() throws { try KernelLab.writeSysfs(bindPath, platformDevice) }

    /// Makes sure vivid is bound again after a failed cycle (binding a bound device fails: ignored).
    static func ensureBound() {
        if !FileManager.default.fileExists(atPath: "/sys/bus/platform/drivers/vivid/\(platformDevice)") { try? replug() }
    }

    static func hold() async {
        try? await Task.sleep(for: .milliseconds(Int.random(in: 0..<maximumHold)))
    }

    /// How often the daemon's status is polled. Not faster: every 10 ms, the status requests
    /// took the guest's one vCPU from the re-add being measured (docs/PERFORMANCE.md, "The
    /// benchmark's own polls"). The first frame's time comes from the daemon, so the poll's
    /// interval does not round the figures.
    static let daemonPoll = Duration.milliseconds(100)

    /// Polls `condition` every `interval`; false when it is still false at the deadline.
    static func waitFor(_ timeout: Duration, every interval: Duration = .milliseconds(10), _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        repeat {
            if await condition() { return true }
            try? await Task.sleep(for: interval)
        } while ContinuousClock.now < deadline
        return await condition()
    }

    // MARK: Guest: the daemon

    static func measureDaemon() async throws -> [(String, Double)] {
        let daemon = try DaemonProcess(configuration: "camera:\n  device: auto\n  width: 640\n  height: 480\n  fps: 25\n")
        // Not daemon.start(): from a worker thread the child would start with SIGTERM blocked.
        try CameraSuite.launch(daemon.process)
        defer {
            if daemon.process.isRunning { daemon.signal(SIGKILL) }
        }
        try await daemon.waitUntilServing()
        let client = ControlClient(socketPath: daemon.socketPath)
        @Sendable func status() async -> DaemonStatus? { try? await client.get(ControlAPI.statusPath, as: DaemonStatus.self) }
        @Sendable func inUse() async -> DeviceStatus?? {
            guard let devices = try? await client.get(ControlAPI.devicesPath, as: [DeviceStatus].self) else { return nil }
            return .some(devices.first { $0.state == .inUse })
        }
        guard await waitFor(.seconds(60), every: daemonPoll, { await inUse().map { $0 != nil } == true }) else {
            throw TestFailure("the daemon never used the camera:\n\(daemon.log)")
        }
        try await Task.sleep(for: .milliseconds(500))
        let descriptorsBefore = daemon.openDescriptorCount()

        var addToFrame: [Double] = [], wallToFrame: [Double] = []
        // The daemon's breakdown of each measured interval, by phase name in the order reported.
        var phaseNames: [String] = [], phaseSamples: [String: [Double]] = [:]
        var timeouts = 0
        // This process's own CPU while it polls the status after a re-plug: it competes with the
        // daemon and udev for the guest's one vCPU.
        var pollCPU = 0.0, pollWall = 0.0
        for cycle in 0..<cycles {
            try unplug()
            // Gone: nothing in use, and the placeholder has replaced the camera's figures in the
            // status (with its first frame), so the previous cycle's time to first frame cannot
            // be read again.
            let gone = await waitFor(.seconds(15), every: daemonPoll) {
                guard await inUse().map({ $0 == nil }) == true else { return false }
                return await status()?.camera?.source == "test-pattern"
            }
            guard gone else {
                timeouts += 1
                print("cycle \(cycle): the daemon did not report the camera gone within 15 s")
                ensureBound()
                _ = await waitFor(.seconds(15), every: daemonPoll) { await inUse().map { $0 != nil } == true }
                continue
            }
            await hold()
            let bound = Date()
            try replug()
            // The bind itself (vivid's probe) runs in this process and is not polling.
            let polling = ContinuousClock.now, cpuAtPoll = CameraSuite.cpuSeconds(pid: nil)
            var measured: Double?, firstFrameAt: Double?
            var phases: [TimedPhase] = []
            let streaming = await waitFor(.seconds(20), every: daemonPoll) {
                guard let camera = await status()?.camera, camera.source != "test-pattern",
                      let milliseconds = camera.firstFrameAfterAddMs else { return false }
                measured = milliseconds
                firstFrameAt = camera.firstFrameAfterAddAt
                phases = camera.firstFrameAfterAddPhases ?? []
                return true
            }
            guard streaming, let measured, let firstFrameAt else {
                timeouts += 1
                print("cycle \(cycle): no first frame within 20 s of the re-plug")
                continue
            }
            let wall = (firstFrameAt - bound.timeIntervalSince1970) * 1_000
            pollCPU += CameraSuite.cpuSeconds(pid: nil) - cpuAtPoll
            pollWall += StartupSuite.milliseconds(ContinuousClock.now - polling) / 1_000
            wallToFrame.append(wall)
            addToFrame.append(measured)
            for phase in phases {
                if phaseSamples[phase.name] == nil { phaseNames.append(phase.name) }
                phaseSamples[phase.name, default: []].append(phase.ms)
            }
            if cycle % 10 == 9 {
                print("daemon: \(cycle + 1) cycles, last add → first frame \(String(format: "%.1f", measured)) ms")
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        let descriptorsAfter = daemon.openDescriptorCount()
        let crashed = !daemon.process.isRunning
        if crashed { print("the daemon ended during the cycles:\n\(daemon.log)") }
        daemon.signal(SIGTERM)
        _ = await daemon.waitForExit(timeout: .seconds(15))

        var results: [(String, Double)] = [("cycles", Double(addToFrame.count))]
        results += percentiles("replug_to_first_frame_ms", addToFrame)
        results += percentiles("replug_wall_to_first_frame_ms", wallToFrame)
        for name in phaseNames {
            let key = name.replacingOccurrences(of: " ", with: "_")
            results.append(("replug_phase_\(key)_ms_p50", Statistics.percentile(phaseSamples[name] ?? [], 50)))
        }
        results += [
            ("fd_leaks", crashed ? .nan : Double(descriptorsAfter - descriptorsBefore)),
            ("crashes", crashed ? 1 : 0),
            ("timeouts", Double(timeouts)),
            ("status_poll_cpu_pct", pollWall > 0 ? pollCPU / pollWall * 100 : .nan),
        ].filter { !$0.1.isNaN }
        return results
    }

    // MARK: Guest: ustreamer

    /// - Parameter errorDelay: `--device-error-delay` in seconds; nil leaves ustreamer's default.
    static func measureUstreamer(errorDelay: Int?) async throws -> (samples: [Double], timeouts: Int) {
        let label = errorDelay.map { "ustreamer --device-error-delay \($0)" } ?? "ustreamer (default delay)"
        let logPath = "/tmp/ustreamer-\(errorDelay.map(String.init) ?? "default").log"
        let streamer = Process()
        streamer.executableURL = URL(fileURLWithPath: "/usr/bin/ustreamer")
        streamer.arguments = ["--device", node, "--input", "0", "--format", "YUYV", "--encoder", "CPU",
                              "--resolution", "640x480", "--desired-fps", "25", "--quality", String(CameraSuite.quality),
                              "--host", "127.0.0.1", "--port", String(ustreamerPort)]
            + (errorDelay.map { ["--device-error-delay", String($0)] } ?? [])
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        streamer.standardOutput = log
        streamer.standardError = log
        try CameraSuite.launch(streamer)
        let reader = OnlineStateReader(port: ustreamerPort)
        reader.start()
        defer {
            reader.stop()
            streamer.terminate()
            let deadline = Date().addingTimeInterval(10)
            while streamer.isRunning, Date() < deadline { usleep(20_000) }
            if streamer.isRunning { kill(streamer.processIdentifier, SIGKILL) }
            streamer.waitUntilExit()
        }
        func ustreamerLog() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8))?.suffix(3_000).description ?? "" }
        guard await waitFor(.seconds(60), { reader.firstFrame(online: true, after: nil) != nil }) else {
            throw TestFailure("\(label): no online frame on /stream within 60 s:\n\(ustreamerLog())")
        }
        try await Task.sleep(for: .seconds(2))

        var samples: [Double] = []
        var timeouts = 0
        for cycle in 0..<ustreamerCycles {
            let unplugged = ContinuousClock.now
            try unplug()
            // Gone: ustreamer serves its offline placeholder frame.
            guard await waitFor(.seconds(15), { reader.firstFrame(online: false, after: unplugged) != nil }) else {
                timeouts += 1
                print("\(label) cycle \(cycle): no offline frame within 15 s of the unplug")
                ensureBound()
                _ = await waitFor(.seconds(30)) { reader.firstFrame(online: true, after: ContinuousClock.now - .seconds(1)) != nil }
                continue
            }
            await hold()
            let bound = ContinuousClock.now
            try replug()
            var online: ContinuousClock.Instant?
            guard await waitFor(.seconds(30), {
                online = reader.firstFrame(online: true, after: bound)
                return online != nil
            }), let online else {
                timeouts += 1
                print("\(label) cycle \(cycle): no online frame within 30 s of the re-plug")
                continue
            }
            samples.append(StartupSuite.milliseconds(online - bound))
            if cycle % 10 == 9 {
                print("\(label): \(cycle + 1) cycles, last re-plug → first online frame \(String(format: "%.1f", samples.last ?? .nan)) ms")
            }
        }
        if !streamer.isRunning { print("\(label) ended during the cycles:\n\(ustreamerLog())") }
        return (samples, timeouts)
    }
}

/// Reads ustreamer's `/stream?extra_headers=1` on its own thread (blocking socket reads must not
/// occupy the one cooperative thread a one-vCPU guest has) and notes when each part header with
/// `X-UStreamer-Online: true|false` arrived. Reconnects when the connection drops.
final class OnlineStateReader: Sendable {
    struct Frame: Sendable {
        let at: ContinuousClock.Instant
        let online: Bool
    }

    let port: UInt16
    private let frames = Mutex<[Frame]>([])
    private let stopped = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)

    init(port: UInt16) {
        self.port = port
    }

    func start() {
        let thread = Thread { [self] in
            while !stopped.load(ordering: .acquiring) {
                readOnce()
                if !stopped.load(ordering: .acquiring) { usleep(50_000) }
            }
            finished.store(true, ordering: .releasing)
        }
        thread.start()
    }

    func stop() {
        stopped.store(true, ordering: .releasing)
        // Reads time out after 200 ms, so the thread notices soon.
        let deadline = Date().addingTimeInterval(5)
        while !finished.load(ordering: .acquiring), Date() < deadline { usleep(10_000) }
    }

    /// When the first frame with this online state arrived after `instant` (any time when nil).
    func firstFrame(online: Bool, after instant: ContinuousClock.Instant?) -> ContinuousClock.Instant? {
        frames.withLock { frames in
            // Newest last: search backwards to the first one not after the instant.
            var found: ContinuousClock.Instant?
            for frame in frames.reversed() {
                if let instant, frame.at <= instant { break }
                if frame.online == online { found = frame.at }
            }
            return found
        }
    }

    private func readOnce() {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return }
        defer { close(socket) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return }
        let request = Array("GET /stream?extra_headers=1 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return }

        // Part headers are parsed; the JPEG after each is skipped by its Content-Length.
        var header: [UInt8] = []
        var skip = 0
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while !stopped.load(ordering: .acquiring) {
            let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
            guard count > 0 else { return }
            let now = ContinuousClock.now
            var index = 0
            while index < count {
                if skip > 0 {
                    let skipped = min(skip, count - index)
                    skip -= skipped
                    index += skipped
                    continue
                }
                header.append(chunk[index])
                index += 1
                guard header.count >= 4, header[header.count - 4..<header.count].elementsEqual([13, 10, 13, 10]) else {
                    if header.count > 64 * 1024 { header.removeAll() }
                    continue
                }
                let part = Self.parse(header)
                header.removeAll(keepingCapacity: true)
                if let online = part.online { frames.withLock { $0.append(Frame(at: now, online: online)) } }
                skip = part.length
            }
        }
    }

    /// The online flag and body length of one part header (the HTTP response header has neither).
    private static func parse(_ block: [UInt8]) -> (online: Bool?, length: Int) {
        var online: Bool?
        var length = 0
        for line in String(decoding: block, as: UTF8.self).split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let value = parts[1].trimmingCharacters(in: .whitespaces)
            switch parts[0].lowercased() {
            case "x-ustreamer-online": online = value == "true"
            case "content-length": length = Int(value) ?? 0
            default: break
            }
        }
        return (online, online == nil ? 0 : length)
    }
}
