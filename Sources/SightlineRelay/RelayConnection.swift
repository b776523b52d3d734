import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

/// The relay's work on one WebSocket, inside the socket's NIO pipeline right after the frame
/// decoder: it assembles messages, enforces the limits, handles the hello, routes control
/// messages and forwards media straight into the receivers' queues, writes this peer's own
/// queue to the socket, and keeps the hello, ping and idle deadlines.
///
/// Everything here runs on the socket's event loop, so a forwarded frame costs no hand-off
/// between tasks or threads on its way in; the only hop is one event-loop wake-up per burst on
/// the way out when the receiver lives on the other loop. Ping, pong and close frames go on to
/// the WebSocket layer above (hummingbird-websocket), which answers them; the close that
/// follows a refusal is sent from the socket's task (``RelayConnection``) through that layer,
/// so the close handshake stays in one place. Nothing the peer sends can make the relay fail:
/// every violation becomes an `error` message and a close code.
final class RelayPeerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// The user event that tells the handler its outbox has something to write.
    struct Drain: Sendable {}

    enum Endpoint: Sendable {
        /// `/v1/device`, already authenticated by its bearer token.
        case device(name: String)
        /// `/v1/viewer/SESSION`; the expert authenticates with its hello.
        case expert(session: String)
    }

    private let endpoint: Endpoint
    private let peer: ConnectedPeer
    private let registry: SessionRegistry
    private let limits: RelayLimits
    private let metrics: RelayMetrics
    private let activity: InboundActivity
    private let logger: Logger

    private var membership: Membership?
    private var assembler: MessageAssembler
    private var textRate: MessageRateLimiter
    private var binaryRate: MessageRateLimiter
    private let connectedAt: ContinuousClock.Instant
    private var pingedAt: ContinuousClock.Instant?
    private var deadlineCheck: Scheduled<Void>?
    private var isDraining = false
    private var drainAgain = false

    init(endpoint: Endpoint, peer: ConnectedPeer, registry: SessionRegistry, limits: RelayLimits, metrics: RelayMetrics,
         activity: InboundActivity, logger: Logger) {
        self.endpoint = endpoint
        self.peer = peer
        self.registry = registry
        self.limits = limits
        self.metrics = metrics
        self.activity = activity
        self.logger = logger
        let now = ContinuousClock.now
        connectedAt = now
        assembler = MessageAssembler(limits: limits)
        textRate = MessageRateLimiter(ratePerSecond: limits.textMessagesPerSecond, now: now)
        binaryRate = MessageRateLimiter(ratePerSecond: limits.binaryMessagesPerSecond, now: now)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        checkDeadlines(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadlineCheck?.cancel()
        deadlineCheck = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadlineCheck?.cancel()
        deadlineCheck = nil
        if let membership {
            registry.leave(membership, peer: peer)
            self.membership = nil
        }
        peer.outbox.finish()
        context.fireChannelInactive()
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            break
        default:
            // Ping, pong and close: the WebSocket layer above answers them.
            context.fireChannelRead(data)
            return
        }
        // After a refusal the socket is only drained until the peer answers the close.
        guard !peer.outbox.isClosing else { return }
        do throws(RelayRefusal) {
            guard let message = try assembler.append(frame) else { return }
            try handle(message)
        } catch {
            refuse(error)
        }
    }

    private func handle(_ message: MessageAssembler.Message) throws(RelayRefusal) {
        let now = ContinuousClock.now
        switch message {
        case .text(let text):
            guard textRate.allow(now: now) else {
                throw RelayRefusal(.rateLimited, "more than \(Int(limits.textMessagesPerSecond)) text messages per second")
            }
            let control = try ControlMessage.parse(text)
            if let membership {
                membership.session.route(control, to: try control.target(senderIsDevice: membership.isDevice), from: membership.peer)
            } else {
                membership = try hello(control)
            }
        case .binary(let frame):
            guard let membership else {
                throw RelayRefusal(.malformed, "binary message before the hello: send {\"type\":\"hello\",…} first")
            }
            guard binaryRate.allow(now: now) else {
                throw RelayRefusal(.rateLimited, "more than \(Int(limits.binaryMessagesPerSecond)) binary messages per second")
            }
            membership.session.forwardMedia(frame, kind: try MediaEnvelope.kind(of: frame), from: membership.peer)
        }
    }

    private func hello(_ message: ControlMessage) throws(RelayRefusal) -> Membership {
        switch endpoint {
        case .device(let name):
            let hello = try Hello(message, expected: .device)
            if let session = hello.session {
                return try registry.resumeSession(session, device: peer, deviceName: name, joinTokenDigest: hello.joinTokenDigest)
            }
            return try registry.openSession(device: peer, deviceName: name, joinTokenDigest: hello.joinTokenDigest)
        case .expert(let session):
            let hello = try Hello(message, expected: .expert)
            return try registry.joinExpert(session, expert: peer, joinTokenDigest: hello.joinTokenDigest)
        }
    }

    private func refuse(_ refusal: RelayRefusal) {
        guard !peer.outbox.isClosing else { return }
        logger.notice("closing socket", metadata: ["code": "\(refusal.code.rawValue)", "reason": "\(refusal.message)"])
        peer.refuse(refusal)
    }

    // MARK: Writing

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is Drain else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        drain(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { drain(context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// Writes this peer's queue to the socket while NIO takes more (its write buffer below the
    /// high-water mark), then flushes once. What does not fit stays in the ``ReceiverQueue``,
    /// where the slow-receiver policy sees it; writability coming back resumes the drain.
    private func drain(context: ChannelHandlerContext) {
        // A flush can report writability synchronously: the loop below picks that up.
        guard !isDraining else {
            drainAgain = true
            return
        }
        isDraining = true
        defer { isDraining = false }
        repeat {
            drainAgain = false
            var wrote = false
            while context.channel.isWritable, let (message, kind) = peer.outbox.nextForWriter() {
                switch message {
                case .text(let text):
                    context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text))), promise: nil)
                    metrics.forwarded(kind: kind, bytes: text.utf8.count)
                case .binary(let frame):
                    context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, data: frame)), promise: nil)
                    metrics.forwarded(kind: kind, bytes: frame.readableBytes)
                case .ping:
                    context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer())), promise: nil)
                }
                wrote = true
            }
            if wrote { context.flush() }
        } while drainAgain
    }

    // MARK: Deadlines

    /// Enforces the hello deadline and the idle timeout and pings a quiet peer. One timer per
    /// socket, set for the next deadline that could pass (a socket that keeps talking is
    /// looked at once per ping interval), instead of a task polling every socket.
    private func checkDeadlines(context: ChannelHandlerContext) {
        deadlineCheck = nil
        guard context.channel.isActive, !peer.outbox.isClosing else { return }
        let now = ContinuousClock.now
        let lastReceived = activity.lastReceived
        let silence = now - lastReceived
        if membership == nil, now - connectedAt >= limits.helloTimeout {
            refuse(RelayRefusal(.timeout, "no hello within \(limits.helloTimeout) of connecting"))
            return
        }
        if silence >= limits.idleTimeout {
            refuse(RelayRefusal(.timeout, "nothing received for \(limits.idleTimeout); the relay closes idle sockets"))
            return
        }
        let pingedSinceActivity = pingedAt.map { $0 >= lastReceived } ?? false
        if silence >= limits.pingAfterSilence, !pingedSinceActivity {
            pingedAt = now
            peer.outbox.enqueue(.ping, kind: .control, size: 0)
        }
        var next = pingedAt.map { $0 >= lastReceived } ?? false ? lastReceived + limits.idleTimeout : lastReceived + limits.pingAfterSilence
        if membership == nil { next = min(next, connectedAt + limits.helloTimeout) }
        let delay = max(next - now, .milliseconds(5))
        deadlineCheck = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(delay.nanoseconds)) { [self] in
            checkDeadlines(context: context)
        }
    }
}

/// The socket's task, which hummingbird-websocket runs for as long as the WebSocket lives. The
/// ``RelayPeerHandler`` below it in the pipeline does the relay's work; the task keeps the
/// WebSocket layer answering pings and the peer's close, and sends the relay's own close.
enum RelayConnection {
    static func run(peer: ConnectedPeer, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, logger: Logger) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                guard let refusal = await peer.outbox.closeRequest() else { return }
                try? await outbound.write(.text(RelayMessages.error(refusal)))
                try? await outbound.close(WebSocketErrorCode(codeNumber: Int(refusal.code.rawValue)), reason: refusal.code.reasonPhrase)
            }
            do {
                // Data frames never get here (the handler takes them); iterating lets the
                // WebSocket layer process pings, pongs and the close handshake.
                for try await _ in inbound {}
            } catch {
                logger.debug("socket ended", metadata: ["error": "\(error)"])
            }
            peer.outbox.finish()
            await group.waitForAll()
        }
    }
}

extension RelayCloseCode {
    /// The close frame's reason (at most 123 bytes); the sentence goes in the `error` message.
    var reasonPhrase: String {
        switch self {
        case .malformed: "malformed message"
        case .unauthorized: "bad token"
        case .unknownSession: "no such session"
        case .timeout: "timeout"
        case .deviceConflict: "session already has a device"
        case .tooLarge: "message too large"
        case .rateLimited: "rate limit exceeded"
        }
    }
}

/// Collects WebSocket frames into messages under the relay's own size limits, so that an
/// oversize message is refused with 4413 as soon as its size is known, before it is buffered.
struct MessageAssembler {
    enum Message {
        case text(String)
        case binary(ByteBuffer)
    }

    private let limits: RelayLimits
    private var opcode: WebSocketOpcode?
    private var buffer = ByteBuffer()

    init(limits: RelayLimits) {
        self.limits = limits
    }

    /// A text, binary or continuation frame, still masked: the size is checked first, so an
    /// oversize frame is not even unmasked.
    mutating func append(_ frame: WebSocketFrame) throws(RelayRefusal) -> Message? {
        let frameOpcode = frame.opcode
        if frameOpcode == .continuation {
            guard opcode != nil else { throw RelayRefusal(.malformed, "a continuation frame without a message to continue") }
        } else {
            guard opcode == nil else {
                throw RelayRefusal(.malformed, "a new message started before the fragmented one before it ended")
            }
            opcode = frameOpcode
            buffer.clear()
        }
        let kind = opcode ?? frameOpcode
        let limit = kind == .text ? limits.maxTextBytes : limits.maxBinaryBytes
        guard buffer.readableBytes + frame.length <= limit else {
            let what = kind == .text ? "text" : "binary"
            throw RelayRefusal(.tooLarge, "\(what) message larger than \(limit) bytes (docs/PROTOCOL.md, \"WebSocket framing\")")
        }
        var data = frame.unmaskedData
        if frame.fin, buffer.readableBytes == 0 {
            // The common case, one frame per message: no copy beyond the unmasking.
            opcode = nil
            return try Self.message(kind, data)
        }
        buffer.writeBuffer(&data)
        guard frame.fin else { return nil }
        opcode = nil
        let message = buffer
        buffer = ByteBuffer()
        return try Self.message(kind, message)
    }

    private static func message(_ kind: WebSocketOpcode, _ data: ByteBuffer) throws(RelayRefusal) -> Message {
        guard kind == .text else { return .binary(data) }
        guard let text = String(validating: data.readableBytesView, as: UTF8.self) else {
            throw RelayRefusal(.malformed, "a text message that is not UTF-8")
        }
        return .text(text)
    }
}
