#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Synchronization

/// When a socket last received anything at all.
///
/// The WebSocket layer answers pings and swallows pongs itself, so the relay's own code never
/// sees them; yet docs/PROTOCOL.md counts them as activity. Watching the bytes that arrive
/// on the socket covers pings, pongs and data alike.
final class InboundActivity: Sendable {
    private let last: Mutex<ContinuousClock.Instant>

    init(now: ContinuousClock.Instant = .now) {
        last = Mutex(now)
    }

    func record(_ now: ContinuousClock.Instant = .now) {
        last.withLock { $0 = now }
    }

    var lastReceived: ContinuousClock.Instant { last.withLock { $0 } }
}

/// Sits first in a socket's pipeline and notes every read in an ``InboundActivity``.
final class InboundActivityRecorder: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny

    private let activity: InboundActivity

    init(_ activity: InboundActivity) {
        self.activity = activity
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        activity.record()
        context.fireChannelRead(data)
    }
}

/// Turns hummingbird-websocket's answer to a refused upgrade (always `400 Bad Request`) into
/// `401 Unauthorized` with a `WWW-Authenticate` challenge, as docs/PROTOCOL.md promises a
/// device with a wrong or missing token. Added to a socket's pipeline only when its device
/// token was refused, so every other refused upgrade keeps its 400.
final class UnauthorizedUpgradeResponse: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    static let body = "device token missing or not provisioned on this relay: send `Authorization: Bearer TOKEN` with the token from the relay's device token file\n"
    private var rewritten = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status == .badRequest && !rewritten:
            rewritten = true
            head.status = .unauthorized
            head.headers.replaceOrAdd(name: "WWW-Authenticate", value: "Bearer realm=\"sightline-relay\", error=\"invalid_token\"")
            head.headers.replaceOrAdd(name: "Content-Type", value: "text/plain; charset=utf-8")
            head.headers.replaceOrAdd(name: "Content-Length", value: String(Self.body.utf8.count))
            head.headers.replaceOrAdd(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end(let trailers) where rewritten:
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: Self.body)))), promise: nil)
            context.write(wrapOutboundOut(.end(trailers)), promise: promise)
        default:
            context.write(data, promise: promise)
        }
    }
}

/// Puts the socket's ``RelayPeerHandler`` right behind the WebSocket frame decoder once the
/// upgrade is complete, then steps aside.
///
/// The decoder only exists after the upgrade, and hummingbird-websocket wraps the channel for
/// its task at the same moment; the upgrade-complete event comes before any buffered byte is
/// decoded, so the relay's handler sees every frame, the first one included.
final class RelayPeerInstaller: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    private let makeHandler: @Sendable () -> RelayPeerHandler

    init(_ makeHandler: @escaping @Sendable () -> RelayPeerHandler) {
        self.makeHandler = makeHandler
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .upgradeComplete = event as? HTTPServerUpgradeEvents else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        let pipeline = context.pipeline.syncOperations
        do {
            let decoder = try pipeline.context(handlerType: ByteToMessageHandler<WebSocketFrameDecoder>.self)
            try pipeline.addHandler(makeHandler(), position: .after(decoder.handler))
        } catch {
            // Without its handler the socket would be a WebSocket that routes nothing.
            context.close(promise: nil)
        }
        pipeline.removeHandler(context: context, promise: nil)
        context.fireUserInboundEventTriggered(event)
    }
}

extension Channel {
    /// Answers the coming refused upgrade with 401 instead of 400.
    func refuseUpgradeAsUnauthorized() async {
        try? await eventLoop.submit {
            try self.pipeline.syncOperations.addHandler(UnauthorizedUpgradeResponse(), position: .last)
        }.get()
    }

    /// Records inbound activity, caps the kernel's unsent bytes (see
    /// ``RelayLimits/socketUnsentBytes``) and arranges for `installer` to put the relay's
    /// handler in place, on a socket about to become a WebSocket.
    func prepareForRelay(activity: InboundActivity, unsentBytes: Int, installer: RelayPeerInstaller) async {
        try? await pipeline.addHandler(InboundActivityRecorder(activity), position: .first).get()
        try? await pipeline.addHandler(installer, position: .last).get()
        #if os(Linux)
        let notSentLowWater = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: CInt(TCP_NOTSENT_LOWAT)))
        try? await setOption(notSentLowWater, value: SocketOptionValue(unsentBytes)).get()
        #endif
    }
}
