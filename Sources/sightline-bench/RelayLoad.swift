import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
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
    static let receiversPerSession = 2
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
    }

    static func measure() async throws -> [(String, Double)] {
        let levels = levels
        let relay = try RelayProcess(extraDevices: levels.max() ?? 0)
        try await relay.start()
        defer { relay.stop() }
        let meter = LoadMeter()
        var sessions: [[Task<Void, Error>]] = []
        defer { for task in sessions.joined() { task.cancel() } }
        var passed: Level?, first: Level?
        report("relay load: sessions  p50 ms  p99 ms  forwarded Mbit/s  delivered  relay CPU %")
        for level in levels {
            while sessions.count < level {
                sessions.append(try await openSession(relay: relay, token: relay.extraDeviceTokens[sessions.count], meter: meter))
            }
            try await Task.sleep(for: warmUp)
            meter.start()
            let cpu0 = CameraSuite.cpuSeconds(pid: relay.process.processIdentifier)
            let started = ContinuousClock.now
            try await Task.sleep(for: .seconds(measureSeconds))
            let elapsed = Statistics.seconds(ContinuousClock.now - started)
            let cpu = CameraSuite.cpuSeconds(pid: relay.process.processIdentifier) - cpu0
            let window = meter.stop()
            let result = Level(
                sessions: level,
                latencyP50: Statistics.percentile(window.latenciesMs, 50),
                latencyP99: Statistics.percentile(window.latenciesMs, 99),
                forwardedMbitPerSecond: Double(window.bytesReceived * 8) / elapsed / 1e6,
                deliveredFraction: Double(window.framesReceived) / Double(max(1, window.framesSent * receiversPerSession)),
                relayCPUPercent: cpu / elapsed * 100)
            first = first ?? result
            report(String(format: "relay load: %8d  %6.2f  %6.2f  %16.1f  %9.3f  %11.1f", level, result.latencyP50, result.latencyP99,
                         result.forwardedMbitPerSecond, result.deliveredFraction, result.relayCPUPercent))
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

    /// Opens one session (device + two experts) and returns the tasks that keep it running.
    static func openSession(relay: RelayProcess, token: String, meter: LoadMeter) async throws -> [Task<Void, Error>] {
        let joinToken = Base64URL.encode((0..<32).map { _ in UInt8.random(in: 0...255) })
        let progress = SessionProgress()
        let device = Task {
            var configuration = WebSocketClientConfiguration()
            configuration.additionalHeaders[.authorization] = "Bearer \(token)"
            configuration.autoPing = .enabled(timePeriod: .seconds(15))
            _ = try await WebSocketClient.connect(url: relay.webSocketURL + "/v1/device", configuration: configuration, logger: logger) { inbound, outbound, _ in
                try await outbound.writeTextMessage(#"{"type":"hello","role":"device","joinToken":"\#(joinToken)"}"#)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for try await message in inbound.messages(maxSize: 1 << 16) {
                        guard case .text(let text) = message, let fields = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                              fields["type"] as? String == "session", let id = fields["session"] as? String else { continue }
                        progress.sessionID.withLock { $0 = id }
                        group.addTask { try await sendFrames(outbound, meter: meter) }
                    }
                    group.cancelAll()
                }
            }
        }
        guard let session = await poll(for: .seconds(10), { progress.sessionID.withLock { $0 } }) else {
            device.cancel()
            throw TestFailure("the relay opened no session for a load device:\n\(relay.log.suffix(2_000))")
        }
        var tasks = [device]
        for expert in 1...receiversPerSession {
            tasks.append(Task {
                var configuration = WebSocketClientConfiguration()
                configuration.autoPing = .enabled(timePeriod: .seconds(15))
                _ = try await WebSocketClient.connect(url: relay.webSocketURL + "/v1/viewer/" + session, configuration: configuration, logger: logger) { inbound, outbound, _ in
                    try await outbound.writeTextMessage(#"{"type":"hello","role":"expert","joinToken":"\#(joinToken)"}"#)
                    for try await message in inbound.messages(maxSize: 1 << 16) {
                        switch message {
                        case .text: progress.joinedExperts.add(1, ordering: .relaxed)
                        case .binary(let frame):
                            guard let sent = frame.getInteger(at: frame.readerIndex + MediaEnvelope.size, as: UInt64.self) else { continue }
                            meter.received(bytes: frame.readableBytes, sentAt: sent, latencyNanoseconds: monotonicNanoseconds() &- sent)
                        }
                    }
                }
            })
            guard await poll(for: .seconds(10), { progress.joinedExperts.load(ordering: .relaxed) >= expert ? true : nil }) != nil else {
                for task in tasks { task.cancel() }
                throw TestFailure("an expert could not join load session \(session):\n\(relay.log.suffix(2_000))")
            }
        }
        return tasks
    }

    /// 30 frames/s with a random phase, so that the senders do not all fire at once.
    static func sendFrames(_ outbound: WebSocketOutboundWriter, meter: LoadMeter) async throws {
        var template = ByteBuffer(repeating: 0, count: frameBytes)
        template.setBytes([1, 1, 0, 0], at: 0)
        for index in stride(from: 12, to: frameBytes, by: 8) { template.setInteger(UInt64.random(in: 0...UInt64.max), at: index) }
        let interval = Duration.nanoseconds(1_000_000_000 / framesPerSecond)
        var next = ContinuousClock.now + interval * Double.random(in: 0..<1)
        var count = 0
        while !Task.isCancelled {
            try await Task.sleep(until: next, clock: .continuous)
            next += interval
            var frame = template
            frame.setInteger(UInt8(count % framesPerSecond == 0 ? 1 : 0), at: 2)
            frame.setInteger(monotonicNanoseconds(), at: MediaEnvelope.size)
            try await outbound.writeBinaryMessage(frame)
            meter.sent()
            count += 1
        }
    }

    /// CLOCK_MONOTONIC in nanoseconds: senders and receivers share this process and its clock.
    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    static let logger = Logger(label: "relay-load")

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
