import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import SightlineCore
import SightlineTesting

/// The load's devices and experts as NIO channel handlers on the bench's own event loop(s).
///
/// The load shares the two cores with the relay it measures, so it has to be cheap: one
/// WebSocket client task per socket plus a sleeping task per sender (what the first version
/// used) cost about as much CPU as the relay itself. Here a sender is a timer on its socket's
/// event loop and a receiver is a handler that reads the timestamp and drops the frame; the
/// frames are still masked as a browser masks them, so the relay does its full share of work.
enum LoadSocket {
    /// Connects to the relay on 127.0.0.1, upgrades `path` to a WebSocket, puts the handler
    /// `makeHandler` builds behind the frame decoder and sends the hello as `role`. Returns the
    /// channel once upgraded.
    static func connect(group: any EventLoopGroup, port: Int, path: String, authorization: String? = nil,
                        role: String, joinToken: String, makeHandler: @escaping @Sendable () -> any ChannelHandler) async throws -> any Channel {
        let upgraded: EventLoopFuture<(any Channel)?> = try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<(any Channel)?>(maxFrameSize: 1 << 20) { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(makeHandler())
                            return channel
                        }
                    }
                    var headers = HTTPHeaders([("Host", "127.0.0.1:\(port)"), ("Content-Length", "0")])
                    if let authorization { headers.add(name: "Authorization", value: authorization) }
                    let request = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
                    let configuration = NIOTypedHTTPClientUpgradeConfiguration<(any Channel)?>(
                        upgradeRequestHead: request, upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in channel.eventLoop.makeCompletedFuture { nil } })
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: .init(upgradeConfiguration: configuration))
                }
            }
        guard let channel = try await upgraded.get() else {
            throw TestFailure("the relay refused the WebSocket upgrade of \(path)")
        }
        // Only now: during the upgrade the HTTP client handlers would not pass a frame on.
        try await channel.writeAndFlush(hello(role: role, joinToken: joinToken))
        return channel
    }

    /// A client frame, masked with a fresh key as RFC 6455 asks of clients.
    static func frame(_ opcode: WebSocketOpcode, _ data: ByteBuffer) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: data)
    }

    /// The first message of every socket (docs/PROTOCOL.md).
    static func hello(role: String, joinToken: String) -> WebSocketFrame {
        frame(.text, ByteBuffer(string: #"{"type":"hello","role":"\#(role)","joinToken":"\#(joinToken)"}"#))
    }
}

/// A load device: once the relay has opened its session, synthetic video
/// frames at a fixed rate from a random phase, each stamped with CLOCK_MONOTONIC.
final class LoadDeviceHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let meter: LoadMeter
    private let progress: SessionProgress
    private let template: ByteBuffer
    private var next: NIODeadline?
    private var count = 0
    private var timer: Scheduled<Void>?

    init(meter: LoadMeter, progress: SessionProgress) {
        self.meter = meter
        self.progress = progress
        var template = ByteBuffer(repeating: 0, count: RelayLoad.frameBytes)
        template.setBytes([1, 1, 0, 0], at: 0)
        for index in stride(from: MediaEnvelope.size + 8, to: RelayLoad.frameBytes - 7, by: 8) { template.setInteger(UInt64.random(in: 0...UInt64.max), at: index) }
        self.template = template
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .ping:
            context.writeAndFlush(wrapOutboundOut(LoadSocket.frame(.pong, frame.unmaskedData)), promise: nil)
        case .text where next == nil:
            guard let fields = try? JSONSerialization.jsonObject(with: Data(frame.unmaskedData.readableBytesView)) as? [String: Any],
                  fields["type"] as? String == "session", let id = fields["session"] as? String else { return }
            progress.sessionID.withLock { $0 = id }
            let interval = RelayLoad.frameInterval
            next = .now() + .nanoseconds(Int64.random(in: 0..<interval.nanoseconds))
            schedule(context: context)
        default:
            break
        }
    }

    private func schedule(context: ChannelHandlerContext) {
        guard let next else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: next) { [self] in
            send(context: context)
        }
    }

    private func send(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var frame = template
        frame.setInteger(UInt8(count % RelayLoad.framesPerSecond == 0 ? 1 : 0), at: 2)
        frame.setInteger(RelayLoad.monotonicNanoseconds(), at: MediaEnvelope.size)
        context.writeAndFlush(wrapOutboundOut(LoadSocket.frame(.binary, frame)), promise: nil)
        meter.sent()
        count += 1
        next = (next ?? .now()) + RelayLoad.frameInterval
        schedule(context: context)
    }
}

/// A load expert: measures every media frame it receives.
final class LoadExpertHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let meter: LoadMeter
    private let progress: SessionProgress

    init(meter: LoadMeter, progress: SessionProgress) {
        self.meter = meter
        self.progress = progress
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            // Server frames are not masked: the timestamp is read in place.
            guard let sent = frame.data.getInteger(at: frame.data.readerIndex + MediaEnvelope.size, as: UInt64.self) else { return }
            meter.received(bytes: frame.data.readableBytes, sentAt: sent, latencyNanoseconds: RelayLoad.monotonicNanoseconds() &- sent)
        case .text:
            progress.joinedExperts.add(1, ordering: .relaxed)
        case .ping:
            context.writeAndFlush(wrapOutboundOut(LoadSocket.frame(.pong, frame.unmaskedData)), promise: nil)
        default:
            break
        }
    }
}
