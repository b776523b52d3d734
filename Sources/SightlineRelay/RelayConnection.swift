import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// One WebSocket after the upgrade: its hello, its messages, its writer and its timers.
///
/// Three parts run per socket: the reader (this task) parses and routes what the peer sends,
/// the writer drains the peer's ``PeerOutbox`` to the socket, and the watchdog enforces the
/// hello deadline, the idle timeout and the close grace. Nothing the peer sends can make
/// the relay fail: every violation becomes an `error` message and a close code.
struct RelayConnection: Sendable {
    enum Endpoint: Sendable {
        /// `/v1/device`, already authenticated by its bearer token.
        case device(name: String)
        /// `/v1/viewer/SESSION`; the expert authenticates with its hello.
        case expert(session: String)
    }

    let endpoint: Endpoint
    let registry: SessionRegistry
    let limits: RelayLimits
    let metrics: RelayMetrics
    let activity: InboundActivity
    let channel: any Channel
    let logger: Logger

    private enum Part: Sendable { case writer, watchdog }

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let peer = ConnectedPeer(outbox: PeerOutbox(limits: limits.queue), metrics: metrics)
        let progress = Progress()
        await withTaskGroup(of: Part.self) { group in
            group.addTask { await writeLoop(peer.outbox, outbound); return .writer }
            group.addTask { await watchdog(peer, progress); return .watchdog }
            let membership = await readLoop(inbound, peer: peer, progress: progress)
            progress.readerFinished()
            if let membership { await registry.leave(membership, peer: peer) }
            peer.outbox.finish()
            // The writer may still be sending a close; once it is done the watchdog can go.
            while let part = await group.next() {
                if part == .writer { group.cancelAll() }
            }
        }
    }

    // MARK: Reader

    private func readLoop(_ inbound: WebSocketInboundStream, peer: ConnectedPeer, progress: Progress) async -> Membership? {
        var membership: Membership?
        var assembler = MessageAssembler(limits: limits)
        let start = ContinuousClock.now
        var textRate = MessageRateLimiter(ratePerSecond: limits.textMessagesPerSecond, now: start)
        var binaryRate = MessageRateLimiter(ratePerSecond: limits.binaryMessagesPerSecond, now: start)
        do {
            for try await frame in inbound {
                // After a refusal the socket is only drained until the peer answers the close.
                guard !peer.outbox.isClosing else { continue }
                do throws(RelayRefusal) {
                    guard let message = try assembler.append(frame) else { continue }
                    let now = ContinuousClock.now
                    switch message {
                    case .text(let text):
                        guard textRate.allow(now: now) else {
                            throw RelayRefusal(.rateLimited, "more than \(Int(limits.textMessagesPerSecond)) text messages per second")
                        }
                        let control = try ControlMessage.parse(text)
                        if let membership {
                            await registry.route(control, to: try control.target(senderIsDevice: membership.isDevice), from: membership)
                        } else {
                            membership = try await hello(control, peer: peer)
                            progress.helloReceived()
                        }
                    case .binary(let frame):
                        guard let membership else {
                            throw RelayRefusal(.malformed, "binary message before the hello: send {\"type\":\"hello\",…} first")
                        }
                        guard binaryRate.allow(now: now) else {
                            throw RelayRefusal(.rateLimited, "more than \(Int(limits.binaryMessagesPerSecond)) binary messages per second")
                        }
                        await registry.forwardMedia(frame, kind: try MediaEnvelope.kind(of: frame), from: membership)
                    }
                } catch {
                    refuse(error, peer: peer)
                }
            }
        } catch {
            logger.debug("socket ended", metadata: ["error": "\(error)"])
        }
        return membership
    }

    private func hello(_ message: ControlMessage, peer: ConnectedPeer) async throws(RelayRefusal) -> Membership {
        switch endpoint {
        case .device(let name):
            let hello = try Hello(message, expected: .device)
            if let session = hello.session {
                return try await registry.resumeSession(session, device: peer, deviceName: name, joinTokenDigest: hello.joinTokenDigest)
            }
            return try await registry.openSession(device: peer, deviceName: name, joinTokenDigest: hello.joinTokenDigest)
        case .expert(let session):
            let hello = try Hello(message, expected: .expert)
            return try await registry.joinExpert(session, expert: peer, joinTokenDigest: hello.joinTokenDigest)
        }
    }

    private func refuse(_ refusal: RelayRefusal, peer: ConnectedPeer) {
        guard !peer.outbox.isClosing else { return }
        logger.notice("closing socket", metadata: ["code": "\(refusal.code.rawValue)", "reason": "\(refusal.message)"])
        peer.refuse(refusal)
    }

    // MARK: Writer

    private func writeLoop(_ outbox: PeerOutbox, _ outbound: WebSocketOutboundWriter) async {
        while true {
            switch await outbox.next() {
            case .message(let message, let kind):
                do {
                    switch message {
                    case .text(let text):
                        try await outbound.write(.text(text))
                        metrics.forwarded(kind: kind, bytes: text.utf8.count)
                    case .binary(let frame):
                        try await outbound.write(.binary(frame))
                        metrics.forwarded(kind: kind, bytes: frame.readableBytes)
                    case .ping:
                        try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer())))
                    }
                } catch {
                    // The socket is gone; the reader sees that too and cleans up.
                    outbox.finish()
                    return
                }
            case .close(let refusal):
                try? await outbound.write(.text(RelayMessages.error(refusal)))
                try? await outbound.close(WebSocketErrorCode(codeNumber: Int(refusal.code.rawValue)), reason: refusal.code.reasonPhrase)
                return
            case .finished:
                return
            }
        }
    }

    // MARK: Watchdog

    private func watchdog(_ peer: ConnectedPeer, _ progress: Progress) async {
        let outbox = peer.outbox
        let start = ContinuousClock.now
        var closingSince: ContinuousClock.Instant?
        var pingedAt: ContinuousClock.Instant?
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let silence = now - activity.lastReceived
            if outbox.isClosing || progress.isReaderFinished {
                // The peer had its close frame (or is gone): if it does not finish the close
                // handshake, or its socket does not drain, end the socket hard.
                let since = closingSince ?? now
                closingSince = since
                if now - since >= limits.closeGrace {
                    try? await channel.close()
                    return
                }
            } else if !progress.isHelloReceived, now - start >= limits.helloTimeout {
                refuse(RelayRefusal(.timeout, "no hello within \(limits.helloTimeout) of connecting"), peer: peer)
            } else if silence >= limits.idleTimeout {
                refuse(RelayRefusal(.timeout, "nothing received for \(limits.idleTimeout); the relay closes idle sockets"), peer: peer)
            } else if silence >= limits.pingAfterSilence, pingedAt.map({ $0 < activity.lastReceived }) ?? true {
                pingedAt = now
                outbox.enqueue(.ping, kind: .control, size: 0)
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// What the watchdog needs to know about the reader.
    private final class Progress: Sendable {
        private struct State { var hello = false, readerFinished = false }
        private let state = Mutex(State())
        func helloReceived() { state.withLock { $0.hello = true } }
        func readerFinished() { state.withLock { $0.readerFinished = true } }
        var isHelloReceived: Bool { state.withLock { $0.hello } }
        var isReaderFinished: Bool { state.withLock { $0.readerFinished } }
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
    private var opcode: WebSocketDataFrame.Opcode?
    private var buffer = ByteBuffer()

    init(limits: RelayLimits) {
        self.limits = limits
    }

    mutating func append(_ frame: WebSocketDataFrame) throws(RelayRefusal) -> Message? {
        switch frame.opcode {
        case .text, .binary:
            guard opcode == nil else {
                throw RelayRefusal(.malformed, "a new message started before the fragmented one before it ended")
            }
            opcode = frame.opcode
            buffer.clear()
        case .continuation:
            guard opcode != nil else { throw RelayRefusal(.malformed, "a continuation frame without a message to continue") }
        }
        let kind = opcode ?? frame.opcode
        let limit = kind == .text ? limits.maxTextBytes : limits.maxBinaryBytes
        guard buffer.readableBytes + frame.data.readableBytes <= limit else {
            let what = kind == .text ? "text" : "binary"
            throw RelayRefusal(.tooLarge, "\(what) message larger than \(limit) bytes (docs/PROTOCOL.md, \"WebSocket framing\")")
        }
        if frame.fin, buffer.readableBytes == 0 {
            // The common case, one frame per message: no copy.
            opcode = nil
            return try Self.message(kind, frame.data)
        }
        var data = frame.data
        buffer.writeBuffer(&data)
        guard frame.fin else { return nil }
        opcode = nil
        let message = buffer
        buffer = ByteBuffer()
        return try Self.message(kind, message)
    }

    private static func message(_ kind: WebSocketDataFrame.Opcode, _ data: ByteBuffer) throws(RelayRefusal) -> Message {
        guard kind == .text else { return .binary(data) }
        guard let text = String(validating: data.readableBytesView, as: UTF8.self) else {
            throw RelayRefusal(.malformed, "a text message that is not UTF-8")
        }
        return .text(text)
    }
}
