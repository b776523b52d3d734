import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import SightlineCore
import SightlineTesting
import Synchronization
import Testing

/// Where the viewer under test lives: served straight from the source tree, so the tests see
/// exactly the files the relay will serve.
enum ViewerFiles {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let viewerDirectory = packageRoot.appendingPathComponent("Sources/SightlineRelay/Viewer")

    static var pagesDirectory: URL {
        get throws {
            guard let url = Bundle.module.url(forResource: "Pages", withExtension: nil) else {
                throw HeadlessChromium.Failure("the test bundle has no Pages resource")
            }
            return url
        }
    }

    static func resource(_ name: String, _ ext: String) throws -> Data {
        guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures") else {
            throw HeadlessChromium.Failure("the test bundle has no Fixtures/\(name).\(ext)")
        }
        return try Data(contentsOf: url)
    }

    /// Where screenshots go, beside the other suites' (`.build/test-artifacts/`), for people to look at.
    static let artifactsDirectory = packageRoot.appendingPathComponent(".build/test-artifacts")
}

/// The same-origin layout the relay serves, on 127.0.0.1 port 0: `/v/SESSION` → index.html,
/// `/viewer/FILE`, `/pages/FILE` (test pages), and WebSocket upgrades on `/v1/viewer/SESSION`
/// handed to the test as `LabSocket`s. Responses carry the relay's CSP `default-src 'self'`,
/// so a viewer that needs inline script or style fails here first. Files are read once at
/// start; the event loop never touches the disk.
final class LabServer: Sendable {
    let port: Int
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    private let shared: SharedState

    struct State {
        var sockets: [LabSocket] = []
        var taken = 0
        /// Every request line and its headers, to prove what never reached the server.
        var requests: [String] = []
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    static let contentSecurityPolicy = "default-src 'self'"

    static func start() async throws -> LabServer {
        var files: [String: (type: String, body: Data)] = [:]
        for (prefix, directory) in [("/viewer/", ViewerFiles.viewerDirectory), ("/pages/", try ViewerFiles.pagesDirectory)] {
            for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
                let body = try Data(contentsOf: directory.appendingPathComponent(name))
                files[prefix + name] = (contentType(of: name), body)
            }
        }
        let staticFiles = files
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let box = SharedState()
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: 1 << 20,
            shouldUpgrade: { channel, head in
                channel.eventLoop.makeSucceededFuture(head.uri.hasPrefix("/v1/viewer/") ? HTTPHeaders() : nil)
            },
            upgradePipelineHandler: { channel, head in
                let socket = LabSocket(channel: channel, path: head.uri)
                box.state.withLock { $0.sockets.append(socket) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 64, maxAccumulatedFrameSize: 1 << 20))
                    try channel.pipeline.syncOperations.addHandler(LabWebSocketHandler(socket: socket))
                }
            })
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let upgrade: NIOHTTPServerUpgradeSendableConfiguration = (
                    upgraders: [upgrader],
                    completionHandler: { context in
                        context.pipeline.removeHandler(name: "lab-static", promise: nil)
                    }
                )
                return channel.pipeline.configureHTTPServerPipeline(withServerUpgrade: upgrade).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(LabStaticHandler(files: staticFiles, log: box), name: "lab-static")
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else { throw HeadlessChromium.Failure("the lab server has no port") }
        return LabServer(port: port, group: group, channel: channel, shared: box)
    }

    private init(port: Int, group: MultiThreadedEventLoopGroup, channel: Channel, shared: SharedState) {
        self.port = port
        self.group = group
        self.channel = channel
        self.shared = shared
    }

    var requests: [String] { shared.state.withLock { $0.requests } }

    /// The next viewer WebSocket that connected, in order of connection.
    func nextSocket(timeout: Duration = .seconds(15)) async throws -> LabSocket {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let socket: LabSocket? = shared.state.withLock { state in
                guard state.taken < state.sockets.count else { return nil }
                state.taken += 1
                return state.sockets[state.taken - 1]
            }
            if let socket { return socket }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw HeadlessChromium.Failure("no viewer WebSocket connected within \(timeout)")
    }

    func stop() async {
        for socket in shared.state.withLock({ $0.sockets }) { socket.close(code: 1001) }
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    private static func contentType(of name: String) -> String {
        switch (name as NSString).pathExtension {
        case "html": "text/html; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }
}

/// The lab's state, shared by the server and the handlers NIO creates per connection.
final class SharedState: Sendable {
    let state = Mutex(LabServer.State())
}

private final class LabStaticHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let files: [String: (type: String, body: Data)]
    let log: SharedState
    var head: HTTPRequestHead?

    init(files: [String: (type: String, body: Data)], log: SharedState) {
        self.files = files
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            let headers = head.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
            log.state.withLock { $0.requests.append("\(head.method) \(head.uri)\n\(headers)") }
        case .body:
            break
        case .end:
            guard let head else { return }
            respond(context: context, head: head)
            self.head = nil
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
        let file: (type: String, body: Data)?
        if head.method != .GET {
            file = nil
        } else if path.hasPrefix("/v/"), !path.dropFirst(3).isEmpty, !path.dropFirst(3).contains("/") {
            file = files["/viewer/index.html"]
        } else {
            file = files[path]
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Security-Policy", value: LabServer.contentSecurityPolicy)
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        headers.add(name: "Cache-Control", value: "no-store")
        let status: HTTPResponseStatus = file == nil ? .notFound : .ok
        let body = file?.body ?? Data("not found\n".utf8)
        headers.add(name: "Content-Type", value: file?.type ?? "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.count)")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// One message a viewer sent to the lab's fake relay.
enum LabMessage: Sendable {
    case text(WebDriverValue)
    case binary([UInt8])
    case closed(code: UInt16?)

    var type: String? { if case .text(let value) = self { value["type"]?.string } else { nil } }
    var json: WebDriverValue? { if case .text(let value) = self { value } else { nil } }
}

/// A viewer's WebSocket as the fake relay (and the device behind it) sees it.
final class LabSocket: Sendable {
    let path: String
    private let channel: Channel
    private let inbox = Mutex<[LabMessage]>([])
    private let read = Mutex(0)

    init(channel: Channel, path: String) {
        self.channel = channel
        self.path = path
    }

    fileprivate func deliver(_ message: LabMessage) {
        inbox.withLock { $0.append(message) }
    }

    /// Everything received so far, read or not.
    var received: [LabMessage] { inbox.withLock { $0 } }

    /// The next unread message; text messages whose type is in `skipping` are passed over.
    func next(skipping: Set<String> = ["receiver-report"], timeout: Duration = .seconds(15)) async throws -> LabMessage {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let message: LabMessage? = inbox.withLock { inbox in
                read.withLock { index in
                    while index < inbox.count {
                        let message = inbox[index]
                        index += 1
                        if let type = message.type, skipping.contains(type) { continue }
                        return message
                    }
                    return nil
                }
            }
            if let message { return message }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw HeadlessChromium.Failure("the viewer sent nothing (besides \(skipping.sorted())) within \(timeout)")
    }

    /// The next text message, which must have `type`.
    func expect(_ type: String, timeout: Duration = .seconds(15)) async throws -> WebDriverValue {
        let message = try await next(timeout: timeout)
        guard let json = message.json, message.type == type else {
            throw HeadlessChromium.Failure("expected \"\(type)\" from the viewer, got \(message)")
        }
        return json
    }

    /// Waits for a text message of `type`, passing over anything else.
    func waitFor(_ type: String, timeout: Duration = .seconds(15)) async throws -> WebDriverValue {
        let deadline = ContinuousClock.now + timeout
        while true {
            let message = try await next(skipping: [], timeout: deadline - ContinuousClock.now)
            if message.type == type, let json = message.json { return json }
        }
    }

    func send(_ message: WebDriverValue) {
        let text = message.description
        var buffer = channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: buffer), promise: nil)
    }

    func send(binary bytes: some Collection<UInt8>) {
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: bytes)), promise: nil)
    }

    /// Sends a close frame with `code` and closes the connection, as the relay does.
    func close(code: UInt16) {
        var buffer = channel.allocator.buffer(capacity: 2)
        buffer.writeInteger(code)
        let channel = self.channel
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

private final class LabWebSocketHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let socket: LabSocket

    init(socket: LabSocket) { self.socket = socket }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        var payload = frame.unmaskedData
        switch frame.opcode {
        case .text:
            let text = payload.readString(length: payload.readableBytes) ?? ""
            let json = (try? JSONDecoder().decode(WebDriverValue.self, from: Data(text.utf8))) ?? .string(text)
            socket.deliver(.text(json))
        case .binary:
            socket.deliver(.binary(payload.readBytes(length: payload.readableBytes) ?? []))
        case .connectionClose:
            socket.deliver(.closed(code: payload.readInteger(as: UInt16.self)))
            context.close(promise: nil)
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: payload)), promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        socket.deliver(.closed(code: nil))
    }
}

/// A lab for one test: the server, and a browser that is always quit, whatever the test does.
struct ViewerLab {
    let server: LabServer
    let browser: any HeadlessBrowser

    static let unavailable = HeadlessChromium.unavailableReason

    static func run(in kind: BrowserKind = .chromium, _ body: (ViewerLab) async throws -> Void) async throws {
        let server = try await LabServer.start()
        let browser: any HeadlessBrowser
        do {
            browser = try await kind.start()
        } catch {
            await server.stop()
            throw error
        }
        let lab = ViewerLab(server: server, browser: browser)
        do {
            try await body(lab)
        } catch {
            let log = (try? await browser.browserLog()) ?? []
            if !log.isEmpty { Issue.record("browser console:\n\(log.joined(separator: "\n"))") }
            await browser.quit()
            await server.stop()
            throw error
        }
        await browser.quit()
        await server.stop()
    }

    /// Opens the test harness page and waits until its modules have loaded.
    func openHarness() async throws {
        try await browser.open("\(server.baseURL)/pages/harness.html")
        let ready = try await browser.evaluate("""
            for (let i = 0; i < 200 && !window.lab; i += 1) await new Promise((r) => setTimeout(r, 25));
            return !!window.lab;
            """)
        guard ready.bool == true else { throw HeadlessChromium.Failure("the harness page did not load its modules") }
    }

    /// Runs `body` (an async function body with `lab` = the viewer's modules in scope).
    func run(_ body: String, _ arguments: WebDriverValue...) async throws -> WebDriverValue {
        try await browser.evaluate("const lab = window.lab;\n" + body, arguments: arguments)
    }
}

/// The bytes of a b64u string a script returned; a test failure, not a crash, when it is not one.
func b64u(_ value: WebDriverValue?) throws -> Data {
    guard let text = value?.string, let data = Base64URL.decode(text) else {
        throw HeadlessChromium.Failure("expected a b64u string, got \(value.map(\.description) ?? "nothing")")
    }
    return data
}

func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

func bytes(hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        out.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return out
}

/// Every suite that starts Chromium, one test at a time: a build machine has two cores, and
/// several browsers at once would turn the latency checks into measurements of the scheduler.
@Suite(
    "viewer in headless Chromium", .serialized,
    .enabled(if: ViewerLab.unavailable == nil, "needs /usr/bin/chromedriver and /usr/bin/chromium (scripts/install-deps test)"))
struct ViewerBrowserTests {}
