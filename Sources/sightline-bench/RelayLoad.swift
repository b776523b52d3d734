import Foundation
import NIOCore
import NIOPosix
import SightlineCore
import SightlineTesting
import Synchronization

/// The relay alone under load: N sessions, each one device sending synthetic video frames at
/// 2 Mbit/s (30 frames/s, a keyframe flag once a second) to two experts. The frames are random
/// bytes behind a valid envelope, which is all the relay reads. N grows until the p99 of
/// sender → relay → receiver exceeds 5 ms; the last level within budget is reported.
enum RelayLoad {
    /// `SIGHTLINE_BENCH_LOAD_LEVELS=64,128` measures only those levels (for profiling one load).
    static var levels: [Int] {
        let chosen = ProcessInfo.processInfo.environment["SIGHTLINE_BENCH_LOAD_LEVELS"]?
            .split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 } ?? []
        return chosen.isEmpty ? [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 160, 192, 256] : chosen
    }
    static let framesPerSecond = 30
    static let bitsPerSecond = 2_000_000
    static let frameBytes = bitsPerSecond / 8 / framesPerSecond
    static let frameInterval = TimeAmount.nanoseconds(1_000_000_000 / Int64(framesPerSecond))
    static let receiversPerSession = 2
    /// Event-loop threads of the load clients (`SIGHTLINE_BENCH_LOAD_THREADS`, default 1): the
    /// fewer the load takes, the more of the two cores is left to the relay under test.
    static var loadThreads: Int {
        ProcessInfo.processInfo.environment["SIGHTLINE_BENCH_LOAD_THREADS"].flatMap(Int.init).map { max(1, $0) } ?? 1
    }
    static let budgetMs = 5.0
    static let warmUp = Duration.seconds(2)
    static var measureSeconds: Int {
        ProcessInfo.processInfo.environment["SIGHTLINE_BENCH_LOAD_SECONDS"].flatMap(Int.init).map { max(2, $0) } ?? 8
    }

    struct Level {
        let sessions: Int
        let latencyP50: Double
        let latencyP99: Double
        let forwardedMbitPerSecond: Double
        let deliveredFraction: Double
        let relayCPUPercent: Double
        /// Relay CPU per message in or out: the cost that decides the capacity.
        let relayMicrosecondsPerMessage: Double
        /// The load clients' own CPU (this process), which shares the cores with the relay.
        let loadCPUPercent: Double
        /// What the ``StallProbe`` saw in the window: the machine's own hiccups.
        let stalls: StallProbe.Window
    }

    static func measure() async throws -> [(String, Double)] {
        let levels = levels
        let relay = try RelayProcess(extraDevices: levels.max() ?? 0)
        try await relay.start()
        defer { relay.stop() }
        let meter = LoadMeter()
        let probe = StallProbe()
        defer { probe.finish() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: loadThreads)
        var sessions: [[any Channel]] = []
        defer {
            for channel in sessions.joined() { channel.close(promise: nil) }
            group.shutdownGracefully { _ in }
        }
        var passed: Level?, first: Level?
        report("relay load: sessions  p50 ms  p99 ms  forwarded Mbit/s  delivered  relay CPU %  relay µs/msg  load CPU %  stalls > 5 ms  worst stall ms")
        for level in levels {
            while sessions.count < level {
                sessions.append(try await openSession(relay: relay, token: relay.extraDeviceTokens[sessions.count], group: group, meter: meter))
            }
            try await Task.sleep(for: warmUp)
            meter.start()
            probe.start()
            let cpu0 = CameraSuite.cpuSeconds(pid: relay.process.processIdentifier)
            let loadCPU0 = CameraSuite.cpuSeconds(pid: getpid())
            let started = ContinuousClock.now
            try await Task.sleep(for: .seconds(measureSeconds))
            let elapsed = Statistics.seconds(ContinuousClock.now - started)
            let cpu = CameraSuite.cpuSeconds(pid: relay.process.processIdentifier) - cpu0
            let loadCPU = CameraSuite.cpuSeconds(pid: getpid()) - loadCPU0
            let window = meter.stop()
            let stalls = probe.stop()
            let result = Level(
                sessions: level,
                latencyP50: Statistics.percentile(window.latenciesMs, 50),
                latencyP99: Statistics.percentile(window.latenciesMs, 99),
                forwardedMbitPerSecond: Double(window.bytesReceived * 8) / elapsed / 1e6,
                deliveredFraction: Double(window.framesReceived) / Double(max(1, window.framesSent * receiversPerSession)),
                relayCPUPercent: cpu / elapsed * 100,
                relayMicrosecondsPerMessage: cpu * 1e6 / Double(max(1, window.framesSent + window.framesReceived)),
                loadCPUPercent: loadCPU / elapsed * 100,
                stalls: stalls)
            first = first ?? result
            report(String(format: "relay load: %8d  %6.2f  %6.2f  %16.1f  %9.3f  %11.1f  %12.1f  %10.1f  %13d  %14.1f", level, result.latencyP50,
                         result.latencyP99, result.forwardedMbitPerSecond, result.deliveredFraction, result.relayCPUPercent,
                         result.relayMicrosecondsPerMessage, result.loadCPUPercent, result.stalls.late, result.stalls.worstMs))
            guard result.latencyP99 <= budgetMs, result.deliveredFraction >= 0.99 else { break }
            passed = result
        }
        // When not even one session keeps the budget, its figures are still worth reporting.
        guard let reported = passed ?? first else { return [] }
        return [
            ("relay_sessions", Double(passed?.sessions ?? 0)),
            ("relay_forwarded_mbit_s", reported.forwardedMbitPerSecond),
            ("relay_added_latency_ms_p50", reported.latencyP50),
            ("relay_added_latency_ms_p99", reported.latencyP99),
            ("relay_cpu_pct", reported.relayCPUPercent),
        ]
    }

    /// Progress goes to standard error at once, so a long run shows where it is.
    static func report(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Opens one session (device + two experts) on the load's event loops and returns its sockets.
    static func openSession(relay: RelayProcess, token: String, group: any EventLoopGroup, meter: LoadMeter) async throws -> [any Channel] {
        let joinToken = Base64URL.encode((0..<32).map { _ in UInt8.random(in: 0...255) })
        let progress = SessionProgress()
        let device = try await LoadSocket.connect(group: group, port: relay.port, path: "/v1/device", authorization: "Bearer \(token)",
                                               role: "device", joinToken: joinToken) {
            LoadDeviceHandler(meter: meter, progress: progress)
        }
        guard let session = await poll(for: .seconds(10), { progress.sessionID.withLock { $0 } }) else {
            device.close(promise: nil)
            throw TestFailure("the relay opened no session for a load device:\n\(relay.log.suffix(2_000))")
        }
        var channels = [device]
        for expert in 1...receiversPerSession {
            channels.append(try await LoadSocket.connect(group: group, port: relay.port, path: "/v1/viewer/" + session,
                                                      role: "expert", joinToken: joinToken) {
                LoadExpertHandler(meter: meter, progress: progress)
            })
            guard await poll(for: .seconds(10), { progress.joinedExperts.load(ordering: .relaxed) >= expert ? true : nil }) != nil else {
                for channel in channels { channel.close(promise: nil) }
                throw TestFailure("an expert could not join load session \(session):\n\(relay.log.suffix(2_000))")
            }
        }
        return channels
    }

    /// CLOCK_MONOTONIC in nanoseconds: senders and receivers share this process and its clock.
    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// Checks `condition` every few milliseconds until it yields a value or the time is up.
    static func poll<T>(for timeout: Duration, _ condition: () -> T?) async -> T? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = condition() { return value }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }
}

/// A thread that sleeps 1 ms at a time and notes how late it wakes up. Stalls of the machine
/// itself (other work on a shared machine, the hypervisor) delay every socket at once and show
/// up in the latency tail; seeing them here too tells them apart from the relay's own delays.
final class StallProbe: Sendable {
    struct Window {
        /// Wake-ups more than 5 ms late.
        var late = 0
        var worstMs = 0.0
    }

    private struct State {
        var running = true
        var recording = false
        var window = Window()
    }

    private let state = Mutex(State())

    init() {
        let thread = Thread { [self] in
            var last = RelayLoad.monotonicNanoseconds()
            while state.withLock({ $0.running }) {
                usleep(1_000)
                let now = RelayLoad.monotonicNanoseconds()
                let lateMs = Double(now &- last) / 1e6 - 1
                last = now
                state.withLock { state in
                    guard state.recording else { return }
                    if lateMs > 5 { state.window.late += 1 }
                    state.window.worstMs = max(state.window.worstMs, lateMs)
                }
            }
        }
        thread.start()
    }

    func start() { state.withLock { $0.recording = true; $0.window = Window() } }

    func stop() -> Window {
        state.withLock { state in
            state.recording = false
            return state.window
        }
    }

    func finish() { state.withLock { $0.running = false } }
}

/// How far one load session got: its id from the relay, and how many experts joined.
final class SessionProgress: Sendable {
    let sessionID = Mutex<String?>(nil)
    let joinedExperts = Atomic<Int>(0)
}

/// Counters the load clients share; only the measuring window is recorded.
final class LoadMeter: Sendable {
    struct Window {
        var latenciesMs: [Double] = []
        var bytesReceived = 0
        var framesReceived = 0
        var framesSent = 0
    }

    /// When the window opened (monotonic ns); nil while not recording. Frames sent before it
    /// are not counted on arrival either, so `delivered` compares like with like.
    private let state = Mutex<(openedAt: UInt64?, window: Window)>((nil, Window()))

    func start() { state.withLock { $0 = (RelayLoad.monotonicNanoseconds(), Window()) } }

    func stop() -> Window {
        state.withLock { state in
            state.openedAt = nil
            return state.window
        }
    }

    func sent() {
        state.withLock { if $0.openedAt != nil { $0.window.framesSent += 1 } }
    }

    func received(bytes: Int, sentAt: UInt64, latencyNanoseconds: UInt64) {
        state.withLock { state in
            guard let openedAt = state.openedAt, sentAt >= openedAt else { return }
            state.window.framesReceived += 1
            state.window.bytesReceived += bytes
            state.window.latenciesMs.append(Double(latencyNanoseconds) / 1e6)
        }
    }
}
