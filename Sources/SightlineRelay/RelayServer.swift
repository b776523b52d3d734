import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import SightlineCore
import SightlineServerAccess
import SightlineSystem

/// The relay both sides dial out to (docs/PROTOCOL.md, docs/RELAY.md): HTTP for health,
/// metrics and the viewer's files, WebSockets for devices and experts. It serves TLS when
/// given a certificate and key and refuses anything but loopback without them, so it never
/// serves plain HTTP to a network.
public enum RelayServer {
    public struct Configuration: Sendable {
        /// Host to bind; a loopback address unless ``tls`` is set.
        public var host: String
        /// Port to bind; 0 lets the kernel choose (tests read it from `onRunning`).
        public var port: Int
        public var tls: TLSFiles?
        public var deviceTokens: DeviceTokens
        /// The viewer's files; nil for the copy bundled with the relay.
        public var viewerDirectory: String?
        /// How the relay is reached from outside (e.g. behind a proxy); only printed.
        public var publicURL: String?
        public var limits: RelayLimits

        public init(listen: ListenAddress, tls: TLSFiles? = nil, deviceTokens: DeviceTokens, viewerDirectory: String? = nil,
                    publicURL: String? = nil, limits: RelayLimits = RelayLimits()) {
            self.init(host: listen.host, port: listen.port, tls: tls, deviceTokens: deviceTokens,
                      viewerDirectory: viewerDirectory, publicURL: publicURL, limits: limits)
        }

        public init(host: String, port: Int, tls: TLSFiles? = nil, deviceTokens: DeviceTokens, viewerDirectory: String? = nil,
                    publicURL: String? = nil, limits: RelayLimits = RelayLimits()) {
            self.host = host
            self.port = port
            self.tls = tls
            self.deviceTokens = deviceTokens
            self.viewerDirectory = viewerDirectory
            self.publicURL = publicURL
            self.limits = limits
        }

        /// Same rule as `ListenAddress.isLoopback`, for hosts with any port (0 included).
        var isLoopback: Bool { ServerTLS.isLoopback(host: host) }
    }

    /// PEM files: the certificate chain (leaf first) and its private key.
    public typealias TLSFiles = ServerTLS.Files

    /// A configuration the relay cannot start with; the message says what to change.
    public typealias ConfigurationError = ServerConfigurationError

    /// The running relay as `onRunning` sees it.
    public struct Running: Sendable {
        /// The bound port (the chosen one when the configuration asked for 0).
        public let port: Int
        public let metrics: RelayMetrics
        /// `http` or `https`, for building URLs.
        public let scheme: String
    }

    /// Builds the relay as a Hummingbird application that the caller runs: the executable
    /// in a `ServiceGroup` with signal handling, tests in-process on port 0.
    public static func makeApplication(
        _ configuration: Configuration,
        logger: Logger = Logger(label: "sightline-relay"),
        onRunning: @escaping @Sendable (Running) async -> Void = { _ in }
    ) throws(ConfigurationError) -> some ApplicationProtocol {
        let tlsConfiguration = try configuration.tls.map { files throws(ConfigurationError) in try ServerTLS.load(files) }
        guard tlsConfiguration != nil || configuration.isLoopback else {
            throw ConfigurationError(description: "refusing to listen on \(configuration.host) without TLS: pass --tls-certificate and --tls-key, or use a loopback address such as 127.0.0.1:8443")
        }
        guard let viewerDirectory = configuration.viewerDirectory ?? ViewerFiles.bundledDirectory() else {
            throw ConfigurationError(description: "the viewer's files are not installed next to sightline-relay (sightline_SightlineRelay.resources/Viewer): pass --viewer-dir DIRECTORY")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: viewerDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ConfigurationError(description: "viewer directory \(viewerDirectory) does not exist or is not a directory: check --viewer-dir")
        }

        let metrics = RelayMetrics()
        let limits = configuration.limits
        let registry = SessionRegistry(limits: limits, metrics: metrics, logger: logger)
        let tokens = configuration.deviceTokens

        let router = Router()
        router.get("/health") { _, _ in
            ["status": "ok", "version": SightlineVersion.current]
        }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        // A plain GET on a WebSocket endpoint gets a hint instead of a bare 404.
        for path in ["/v1/device", "/v1/viewer/:session"] {
            router.get(RouterPath(path)) { _, _ -> Response in
                Response(status: .upgradeRequired, headers: [.upgrade: "websocket"],
                         body: .init(byteBuffer: ByteBuffer(string: "this endpoint is a WebSocket (docs/PROTOCOL.md)\n")))
            }
        }
        ViewerFiles(directory: viewerDirectory).register(on: router)

        let webSocket = HTTP1WebSocketUpgradeChannel.Configuration(
            ws: WebSocketServerConfiguration(
                maxFrameSize: limits.maxFrameBytes,
                // The relay pings quiet peers itself and applies its own idle rule (4408).
                autoPing: .disabled,
                closeTimeout: limits.closeGrace))
        let upgrade = HTTPServerBuilder.http1WebSocketUpgrade(configuration: webSocket) { request, channel, logger in
            let endpoint: RelayPeerHandler.Endpoint
            switch webSocketRoute(request.path) {
            case .device:
                guard let name = tokens.deviceName(forAuthorization: request.headerFields[.authorization]) else {
                    logger.notice("device refused: missing or unknown token")
                    metrics.refusedUpgrades.increment()
                    await channel.refuseUpgradeAsUnauthorized()
                    return .dontUpgrade
                }
                endpoint = .device(name: name)
            case .viewer(let session):
                endpoint = .expert(session: session)
            case nil:
                return .dontUpgrade
            }
            let activity = InboundActivity()
            let peer = ConnectedPeer(channel: channel, limits: limits, metrics: metrics)
            let installer = RelayPeerInstaller {
                RelayPeerHandler(endpoint: endpoint, peer: peer, registry: registry, limits: limits, metrics: metrics,
                                 activity: activity, logger: logger)
            }
            await channel.prepareForRelay(activity: activity, unsentBytes: limits.socketUnsentBytes, installer: installer)
            return .upgrade([:]) { inbound, outbound, _ in
                await RelayConnection.run(peer: peer, inbound: inbound, outbound: outbound, logger: logger)
            }
        }
        let server: HTTPServerBuilder
        let scheme: String
        if let tlsConfiguration {
            do {
                server = try .tls(upgrade, tlsConfiguration: tlsConfiguration)
            } catch {
                throw ConfigurationError(description: "TLS setup failed with \(configuration.tls?.certificatePath ?? "") and its key: \(error)")
            }
            scheme = "https"
        } else {
            server = upgrade
            scheme = "http"
        }
        return Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "sightline-relay"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                await onRunning(Running(port: port, metrics: metrics, scheme: scheme))
            },
            logger: logger)
    }

    /// Runs the relay until SIGTERM or SIGINT, logging to the journal and telling systemd
    /// when it is ready.
    public static func run(_ configuration: Configuration) async throws {
        let level = LogLevelSetting(.info)
        LoggingSystem.bootstrap { label in JournalLogHandler(label: label, level: level) }
        let logger = Logger(label: "sightline-relay")
        let notifier = SystemdNotifier()
        let app = try makeApplication(configuration, logger: logger) { running in
            let bound = "\(running.scheme)://\(configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host):\(running.port)"
            let devices = configuration.deviceTokens.names.count
            logger.info("relay ready", metadata: [
                "listen": "\(bound)", "devices": "\(devices)",
                "public": "\(configuration.publicURL ?? bound)",
            ])
            notifier.ready(status: "serving \(bound) for \(devices) provisioned devices; invite links start \(configuration.publicURL ?? bound)/v/")
        }
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        notifier.stopping(status: "stopped")
    }

    enum WebSocketRoute: Equatable {
        case device
        case viewer(session: String)
    }

    /// The two WebSocket endpoints; anything else is not upgraded.
    static func webSocketRoute(_ path: String?) -> WebSocketRoute? {
        guard let path else { return nil }
        let plain = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        if plain == "/v1/device" { return .device }
        let prefix = "/v1/viewer/"
        guard plain.hasPrefix(prefix) else { return nil }
        let session = plain.dropFirst(prefix.count)
        guard !session.isEmpty, session.utf8.count <= 64, !session.contains("/") else { return nil }
        return .viewer(session: String(session))
    }
}
