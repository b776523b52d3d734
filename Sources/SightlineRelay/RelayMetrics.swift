import Prometheus

/// The relay's Prometheus metrics, in a registry of its own rather than the process-wide
/// metrics bootstrap: several relays can then run in one test process, each with its own
/// numbers.
public final class RelayMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    let sessions: Gauge
    let devices: Gauge
    let experts: Gauge
    private let forwardedFrames: [String: Counter]
    private let forwardedBytes: [String: Counter]
    private let droppedFrames: [FrameDropReason: Counter]
    private let droppedBytes: [FrameDropReason: Counter]
    private let closes: [RelayCloseCode: Counter]
    let congestionReports: Counter
    let refusedUpgrades: Counter

    /// Labels of forwarded messages: `control` for text, else the envelope's media kind.
    static let kinds = ["control", "video", "audio", "still"]

    public init() {
        sessions = registry.makeGauge(descriptor: Self.name("sessions", help: "Sessions open, with or without their device connected"))
        devices = registry.makeGauge(descriptor: Self.name("peers", help: "Peers connected after their hello"), labels: [("role", "device")])
        experts = registry.makeGauge(descriptor: Self.name("peers", help: "Peers connected after their hello"), labels: [("role", "expert")])
        var frames: [String: Counter] = [:], bytes: [String: Counter] = [:]
        for kind in Self.kinds {
            frames[kind] = registry.makeCounter(descriptor: Self.name("forwarded_frames", unit: "total", help: "Messages written to peers' sockets: routed ones and the relay's own control messages"), labels: [("kind", kind)])
            bytes[kind] = registry.makeCounter(descriptor: Self.name("forwarded_bytes", unit: "total", help: "Bytes of messages written to peers' sockets"), labels: [("kind", kind)])
        }
        forwardedFrames = frames
        forwardedBytes = bytes
        var droppedFrames: [FrameDropReason: Counter] = [:], droppedBytes: [FrameDropReason: Counter] = [:]
        for reason in FrameDropReason.allCases {
            droppedFrames[reason] = registry.makeCounter(descriptor: Self.name("dropped_frames", unit: "total", help: "Media frames a slow receiver did not get"), labels: [("reason", reason.rawValue)])
            droppedBytes[reason] = registry.makeCounter(descriptor: Self.name("dropped_bytes", unit: "total", help: "Bytes of media frames a slow receiver did not get"), labels: [("reason", reason.rawValue)])
        }
        self.droppedFrames = droppedFrames
        self.droppedBytes = droppedBytes
        var closes: [RelayCloseCode: Counter] = [:]
        for code in RelayCloseCode.allCases {
            closes[code] = registry.makeCounter(descriptor: Self.name("closed_sockets", unit: "total", help: "Sockets the relay closed, by close code"), labels: [("code", String(code.rawValue))])
        }
        self.closes = closes
        congestionReports = registry.makeCounter(descriptor: Self.name("congestion_reports", unit: "total", help: "congestion messages sent to devices"))
        refusedUpgrades = registry.makeCounter(descriptor: Self.name("unauthorized_upgrades", unit: "total", help: "Device upgrades refused with 401 (missing or unknown token)"))
    }

    func forwarded(kind: QueuedKind, bytes: Int) {
        let label = switch kind {
        case .control: "control"
        case .video: "video"
        case .audio: "audio"
        case .still: "still"
        }
        forwardedFrames[label]?.increment()
        forwardedBytes[label]?.increment(by: Int64(bytes))
    }

    func dropped(_ drop: FrameDrop) {
        droppedFrames[drop.reason]?.increment(by: Int64(drop.frames))
        droppedBytes[drop.reason]?.increment(by: Int64(drop.bytes))
    }

    func closed(_ code: RelayCloseCode) {
        closes[code]?.increment()
    }

    /// `sightline_relay_NAME[_UNIT]`, with its help text.
    private static func name(_ metric: String, unit: String = "", help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "sightline", subsystem: "relay", metricName: metric, unitName: unit, helpText: help)
    }

    /// The Prometheus text exposition.
    public func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }
}
