import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import SightlineCore
import SightlineSystem

/// The relay both sides dial out to. This first version serves only its health endpoint on a
/// loopback address; media routing, TLS and the viewer arrive with the streaming work. It
/// refuses non-loopback addresses until TLS is there, so it can never serve plain HTTP to a
/// network.
public enum RelayServer {
    public struct Options: Sendable {
        public var listen: ListenAddress
        public init(listen: ListenAddress) { self.listen = listen }
    }

    public struct Refused: Error, CustomStringConvertible {
        public let description: String
    }

    public static func run(_ options: Options) async throws {
        guard options.listen.isLoopback else {
            throw Refused(description: "refusing to listen on \(options.listen) without TLS: use a loopback address such as 127.0.0.1:8443")
        }
        let level = LogLevelSetting(.info)
        LoggingSystem.bootstrap { label in JournalLogHandler(label: label, level: level) }
        let logger = Logger(label: "sightline-relay")
        let notifier = SystemdNotifier()
        let router = Router()
        router.get("/health") { _, _ in
            ["status": "ok", "version": SightlineVersion.current]
        }
        let listen = options.listen
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "sightline-relay"),
            onServerRunning: { _ in
                logger.info("relay ready", metadata: ["listen": "\(listen)"])
                notifier.ready(status: "serving http://\(listen)")
            },
            logger: logger)
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        notifier.stopping(status: "stopped")
    }
}
