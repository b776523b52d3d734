import Hummingbird
import Logging
import Foundation
import NIOCore
import Prometheus
import SightlineCore

/// Prometheus text and the health report over loopback HTTP. Loopback only (the configuration
/// refuses anything else) because neither endpoint is authenticated.
enum MetricsServer {
    static func makeApplication(registry: PrometheusCollectorRegistry, state: DaemonState, listen: ListenAddress,
                                logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("/health") { _, _ in
            let report = await state.health()
            return try jsonResponse(report, status: report.status == "ok" ? .ok : .serviceUnavailable)
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "sightlined-metrics"),
            onServerRunning: { _ in
                await state.set("metrics", .running, "serving http://\(listen)/metrics and /health")
            },
            logger: logger)
    }
}
