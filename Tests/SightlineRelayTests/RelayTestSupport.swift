import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import NIOSSL
import NIOWebSocket
@testable import SightlineRelay
import SightlineTesting
import Synchronization
import Testing

/// A relay running in this process on 127.0.0.1 and a port the kernel chose.
final class RelayHarness: Sendable {
    static let deviceToken = "device-one-token-0123456789abcdef"
    static let otherDeviceToken = "device-two-token-0123456789abcdef"

    let port: Int
    let scheme: String
    let metrics: RelayMetrics
    let directory: TemporaryDirectory
    private let task: Task<Void, any Error>

    private init(port: Int, scheme: String, metrics: RelayMetrics, directory: TemporaryDirectory, task: Task<Void, any Error>) {
        self.port = port
        self.scheme = scheme
        self.metrics = metrics
        self.directory = directory
        self.task = task
    }

    static func start(limits: RelayLimits = RelayLimits(), tls: RelayServer.TLSFiles? = nil) async throws -> RelayHarness {
        let directory = try TemporaryDirectory(prefix: "sightline-relay")
        let viewer = directory.file("viewer")
        try FileManager.default.createDirectory(atPath: viewer, withIntermediateDirectories: true)
        try Data("<!doctype html><title>test viewer</title><script src=\"/viewer/app.js\"></script>\n".utf8)
            .write(to: URL(fileURLWithPath: viewer + "/index.html"))
        try Data("console.log('viewer')\n".utf8).write(to: URL(fileURLWithPath: viewer + "/app.js"))
        try Data("secret".utf8).write(to: URL(fileURLWithPath: viewer + "/.hidden"))
        let tokens = try DeviceTokens(text: "# test devices\none \(deviceToken)\n\ntwo \(otherDeviceToken)\n")
        let configuration = RelayServer.Configuration(
            host: "127.0.0.1", port: 0, tls: tls, deviceTokens: tokens, viewerDirectory: viewer, limits: limits)
        var logger = Logger(label: "relay-under-test")
        logger.logLevel = .warning
        let (running, continuation) = AsyncStream<RelayServer.Running>.makeStream()
        let app = try RelayServer.makeApplication(configuration, logger: logger) { continuation.yield($0) }
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = running.makeAsyncIterator()
        guard let started = await iterator.next() else { throw HarnessError("the relay did not start") }
        return RelayHarness(port: started.port, scheme: started.scheme, metrics: started.metrics, directory: directory, task: task)
    }

    var httpBase: String { "\(scheme)://127.0.0.1:\(port)" }
    var webSocketBase: String { "\(scheme == "https" ? "wss" : "ws")://127.0.0.1:\(port)" }

    /// Metrics are counted after a write returns, a moment after the client may have read it.
    func eventuallyMetrics(_ holds: (String) -> Bool) async -> Bool {
        for _ in 0..<50 {
            if holds(String(decoding: metrics.exposition(), as: UTF8.self)) { return true }
            try? await Task.sleep(for: .milliseconds(40))
        }
        return false
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }

    /// A device connected and through its hello: the peer and its session id.
    func openSession(joinToken: [UInt8] = RelayHarness.randomJoinToken(), tls: TLSConfiguration? = nil) async throws -> (TestPeer, String) {
        let device = try await TestPeer.connect(webSocketBase + "/v1/device", token: Self.deviceToken, tls: tls)
        device.send(hello: "device", joinToken: joinToken)
        let answer = try await device.nextJSON()
        #expect(answer["type"] == .string("session"))
        #expect(answer["peer"] == .integer(0))
        guard case .string(let session)? = answer["session"] else { throw HarnessError("no session id in \(answer)") }
        return (device, session)
    }

    /// An expert joined to `session`: the peer and its number.
    func joinExpert(_ session: String, joinToken: [UInt8], tls: TLSConfiguration? = nil) async throws -> (TestPeer, Int) {
        let expert = try await TestPeer.connect(webSocketBase + "/v1/viewer/" + session, tls: tls)
        expert.send(hello: "expert", joinToken: joinToken)
        let answer = try await expert.nextJSON()
        #expect(answer["type"] == .string("joined"))
        #expect(answer["session"] == .string(session))
        guard case .integer(let peer)? = answer["peer"] else { throw HarnessError("no peer number in \(answer)") }
        return (expert, Int(peer))
    }

    static func randomJoinToken() -> [UInt8] { (0..<32).map { _ in UInt8.random(in: .min ... .max) } }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A real WebSocket client: what it receives lands in an inbox the test reads with a
/// timeout; what the test sends goes through a queue to the socket. Reading can start
/// paused, to play a receiver that stops reading.
final class TestPeer: Sendable {
    private enum Outgoing: Sendable {
        case text(String)
        case binary(ByteBuffer)
        case close
    }

    private let outgoing: AsyncStream<Outgoing>.Continuation
    let inbox: Inbox
    private let connection: Task<WebSocketCloseFrame?, any Error>
    private let gate: Gate

    private init(outgoing: AsyncStream<Outgoing>.Continuation, inbox: Inbox, connection: Task<WebSocketCloseFrame?, any Error>, gate: Gate) {
        self.outgoing = outgoing
        self.inbox = inbox
        self.connection = connection
        self.gate = gate
    }

    /// Connects and returns once the upgrade is done (or failed).
    static func connect(_ url: String, token: String? = nil, tls: TLSConfiguration? = nil, paused: Bool = false) async throws -> TestPeer {
        var headers = HTTPFields()
        if let token { headers[.authorization] = "Bearer \(token)" }
        // The test certificate is for localhost; SNI cannot carry an IP address.
        let configuration = WebSocketClientConfiguration(maxFrameSize: 4 << 20, additionalHeaders: headers,
                                                         sniHostname: url.hasPrefix("wss:") ? "localhost" : nil)
        let (stream, continuation) = AsyncStream<Outgoing>.makeStream()
        let inbox = Inbox()
        let gate = Gate(open: !paused)
        let (upgraded, upgradedContinuation) = AsyncStream<Void>.makeStream()
        var logger = Logger(label: "test-peer")
        logger.logLevel = .critical
        let connection = Task { () throws -> WebSocketCloseFrame? in
            let result: Result<WebSocketCloseFrame?, any Error>
            do {
                result = .success(try await WebSocketClient.connect(url: url, configuration: configuration, tlsConfiguration: tls, logger: logger) { inbound, outbound, _ in
                    upgradedContinuation.finish()
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask {
                            // Writes after the relay closed fail; the test looks at the close code.
                            for await item in stream {
                                do {
                                    switch item {
                                    case .text(let text): try await outbound.write(.text(text))
                                    case .binary(let buffer): try await outbound.write(.binary(buffer))
                                    case .close:
                                        try await outbound.close(.normalClosure, reason: nil)
                                        return
                                    }
                                } catch {
                                    return
                                }
                            }
                        }
                        await gate.wait()
                        do {
                            for try await message in inbound.messages(maxSize: 4 << 20) {
                                await inbox.push(message)
                            }
                        } catch {}
                        group.cancelAll()
                    }
                })
            } catch {
                result = .failure(error)
            }
            upgradedContinuation.finish()
            await inbox.finish()
            return try result.get()
        }
        for await _ in upgraded {}
        return TestPeer(outgoing: continuation, inbox: inbox, connection: connection, gate: gate)
    }

    func send(_ text: String) { outgoing.yield(.text(text)) }
    func send(_ bytes: [UInt8]) { outgoing.yield(.binary(ByteBuffer(bytes: bytes))) }
    func send(json fields: [String: JSONValue]) { send(RelayMessages.encode(fields)) }
    func send(hello role: String, joinToken: [UInt8], session: String? = nil) {
        var fields: [String: JSONValue] = ["type": .string("hello"), "role": .string(role), "joinToken": .string(Base64URL.encode(joinToken))]
        if let session { fields["session"] = .string(session) }
        send(json: fields)
    }

    func resumeReading() { gate.open() }
    func close() { outgoing.yield(.close) }

    func next(timeout: Duration = .seconds(10)) async -> WebSocketMessage? {
        await inbox.next(timeout: timeout)
    }

    /// The next message, which must be a JSON text message.
    func nextJSON(timeout: Duration = .seconds(10)) async throws -> [String: JSONValue] {
        guard let message = await next(timeout: timeout) else {
            let ending = await failure().map { "; the connection failed: \($0)" } ?? ""
            throw HarnessError("no message within \(timeout)\(ending)")
        }
        guard case .text(let text) = message else { throw HarnessError("expected text, got \(message)") }
        return try ControlMessage.parse(text).fields
    }

    /// The close code the relay ended the socket with; nil when the socket did not end.
    func closeCode(timeout: Duration = .seconds(10)) async -> WebSocketErrorCode? {
        await withTaskGroup(of: WebSocketErrorCode?.self) { group in
            group.addTask { (try? await self.connection.value)?.closeCode }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Why the connection failed, if it has ended with an error.
    func failure() async -> String? {
        guard await inbox.isFinished else { return nil }
        do {
            _ = try await connection.value
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Whether the upgrade failed (e.g. a refused device token).
    func upgradeFailed(timeout: Duration = .seconds(10)) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    _ = try await self.connection.value
                    return false
                } catch {
                    return true
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}

/// Received messages, waited for with a timeout.
actor Inbox {
    private var buffer: [WebSocketMessage] = []
    private var finished = false
    private var waiter: (id: Int, continuation: CheckedContinuation<WebSocketMessage?, Never>)?
    private var nextID = 0

    func push(_ message: WebSocketMessage) {
        if let waiter {
            self.waiter = nil
            waiter.continuation.resume(returning: message)
        } else {
            buffer.append(message)
        }
    }

    var isFinished: Bool { finished }

    func finish() {
        finished = true
        waiter?.continuation.resume(returning: nil)
        waiter = nil
    }

    func next(timeout: Duration) async -> WebSocketMessage? {
        if !buffer.isEmpty { return buffer.removeFirst() }
        if finished { return nil }
        nextID += 1
        let id = nextID
        return await withCheckedContinuation { continuation in
            waiter = (id, continuation)
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id)
            }
        }
    }

    private func expire(_ id: Int) {
        guard let waiter, waiter.id == id else { return }
        self.waiter = nil
        waiter.continuation.resume(returning: nil)
    }
}

/// Holds a reader back until the test opens it.
final class Gate: Sendable {
    private let state: Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>

    init(open: Bool) {
        state = Mutex((open, []))
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let proceed = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if proceed { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
