import SightlineCore

/// What the daemon is doing right now: each service's state, the camera's counters and the
/// main loops' progress. One actor so the control API, the metrics endpoint and the watchdog
/// all see the same picture.
public actor DaemonState {
    public let startedAt: ContinuousClock.Instant
    public let configurationLabel: String
    public let stateDirectory: String
    public let identity: IdentityInfo
    private var services: [String: ServiceStatus] = [:]
    private var serviceOrder: [String] = []
    private var camera: CameraStatus?
    private var watchdog: ProgressWatchdog
    private var voice: (@Sendable () -> VoiceStatus)?

    public init(configurationLabel: String, stateDirectory: String, identity: IdentityInfo, stallAfter: Duration) {
        self.startedAt = .now
        self.configurationLabel = configurationLabel
        self.stateDirectory = stateDirectory
        self.identity = identity
        self.watchdog = ProgressWatchdog(stallAfter: stallAfter)
    }

    public func set(_ name: String, _ state: ServiceState, _ detail: String) {
        if services[name] == nil { serviceOrder.append(name) }
        services[name] = ServiceStatus(name: name, state: state, detail: detail)
    }

    public func updateCamera(_ status: CameraStatus) { camera = status }

    /// Where the status reads the voice and action counters from (they change off this actor).
    func setVoiceStatus(_ source: @escaping @Sendable () -> VoiceStatus) { voice = source }

    /// A main loop joins the watchdog: from now on it must report progress.
    public func registerLoop(_ name: String) { watchdog.register(name, at: .now) }
    public func unregisterLoop(_ name: String) { watchdog.unregister(name) }
    public func progress(_ loop: String) { watchdog.progress(loop, at: .now) }
    public func stalls() -> [ProgressWatchdog.Stall] { watchdog.stalls(at: .now) }

    public func status(pid: Int32) -> DaemonStatus {
        DaemonStatus(
            version: SightlineVersion.current,
            pid: pid,
            uptimeSeconds: Double((ContinuousClock.now - startedAt).components.seconds),
            configuration: configurationLabel,
            stateDirectory: stateDirectory,
            fingerprint: identity.fingerprint,
            services: serviceOrder.compactMap { services[$0] },
            camera: camera,
            voice: voice?())
    }

    public func health() -> HealthReport {
        HealthReport(services: serviceOrder.compactMap { services[$0] })
    }
}
