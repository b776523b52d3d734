import Prometheus

/// The archive server's Prometheus metrics (`GET /metrics`), in a registry of its own like the
/// relay's, so several servers can run in one test process. Counts requests and bytes only:
/// nothing that names a device or a case.
public final class ArchiveMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let requests: [String: Counter]
    private let receivedBytes: Counter
    private let sentBytes: Counter

    /// The sync routes, as the `route` label names them.
    static let routes = ["journal_status", "journal_upload", "blob_status", "blob_chunk", "blob_commit", "blob_sealed"]
    /// The answers the routes give, as the `status` label names them.
    static let statuses = [200, 400, 401, 403, 404, 409, 422, 500, 507]

    public init() {
        let requestsName = MetricNameDescriptor(namespace: "sightline", subsystem: "archive", metricName: "requests", unitName: "total",
                                                helpText: "Sync requests answered, by route and HTTP status")
        var requests: [String: Counter] = [:]
        for route in Self.routes {
            for status in Self.statuses {
                requests["\(route) \(status)"] = registry.makeCounter(descriptor: requestsName, labels: [("route", route), ("status", "\(status)")])
            }
        }
        self.requests = requests
        receivedBytes = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "sightline", subsystem: "archive", metricName: "received_chunk_bytes", unitName: "total",
            helpText: "Bytes of blob chunks accepted (sealed; a chunk of a blob already held counts too)"))
        sentBytes = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "sightline", subsystem: "archive", metricName: "sent_sealed_bytes", unitName: "total",
            helpText: "Sealed bytes devices fetched back"))
    }

    func answered(_ route: String, status: Int) { requests["\(route) \(status)"]?.increment() }
    func received(bytes: Int) { receivedBytes.increment(by: Int64(bytes)) }
    func sent(bytes: Int) { sentBytes.increment(by: Int64(bytes)) }

    /// The Prometheus text exposition.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}
