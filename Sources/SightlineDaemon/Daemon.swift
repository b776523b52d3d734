import Crypto
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import SightlineCore
import SightlineEncoding
import SightlineSystem

/// Wires the daemon's services together and runs them until SIGTERM.
public enum SightlineDaemon {
    /// Exit status for a configuration that does not validate (sysexits' EX_CONFIG).
    public static let exitConfigurationError: Int32 = 78
    /// Exit status for a problem with the state directory or identity key.
    public static let exitStateError: Int32 = 73

    public struct StartupFailure: Error, CustomStringConvertible {
        public let status: Int32
        public let description: String
    }

    /// Reads the configuration: the explicit `--config` file must exist; the default file may be
    /// absent, in which case the embedded defaults apply.
    public static func loadConfiguration(explicitPath: String?) throws(ConfigurationRejected) -> (DaemonConfiguration, String?) {
        try DaemonConfiguration.load(explicitPath: explicitPath)
    }

    /// `camera.device` names one camera (used alone) or `auto` (the preference list, then any).
    static func cameraPolicy(for camera: DaemonConfiguration.CameraConfiguration) -> CameraPolicy {
        let explicit = camera.device.hasPrefix("/dev/")
        return CameraPolicy(
            role: .camera,
            preferences: (explicit ? [camera.device] : camera.preference).map(CameraPolicy.Preference.init),
            fallbackToAny: explicit ? false : camera.fallbackAny,
            switchDelay: .milliseconds(camera.switchDelayMilliseconds))
    }

    /// The microphone's and speaker's policies, for the roles with a preference list: only
    /// preferred devices are used (the fallback is the configured device name, not any other
    /// card discovery finds, which a sound server may hold).
    static func audioPolicies(for audio: DaemonConfiguration.AudioConfiguration) -> [DevicePolicy] {
        [(DeviceRole.microphone, audio.capturePreference), (.speaker, audio.playbackPreference)].compactMap { role, preference in
            preference.isEmpty ? nil : DevicePolicy(role: role, preferences: preference.map(DevicePreference.init), fallbackToAny: false,
                                                    switchDelay: .milliseconds(audio.switchDelayMilliseconds))
        }
    }

    public static func run(configuration: DaemonConfiguration, configurationPath: String?) async throws {
        umask(0o077)
        let logLevel = LogLevelSetting(Logger.Level(rawValue: configuration.logLevel) ?? .info)
        LoggingSystem.bootstrap { label in JournalLogHandler(label: label, level: logLevel) }
        let logger = Logger(label: "sightlined")
        let notifier = SystemdNotifier()
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        notifier.status("starting: loading device identity")
        let identity: IdentityInfo
        let identityKey: Curve25519.Signing.PrivateKey
        do {
            try SecureFiles.ensurePrivateDirectory(configuration.stateDirectory)
            let store = DeviceIdentityStore(stateDirectory: configuration.stateDirectory)
            identityKey = try store.loadOrCreate()
            identity = DeviceIdentityStore.info(for: identityKey, keyPath: store.keyPath)
        } catch let error as DeviceIdentityStore.Failure {
            throw StartupFailure(status: exitStateError, description: error.description)
        } catch {
            throw StartupFailure(status: exitStateError,
                                 description: "state directory \(configuration.stateDirectory): \(error); check that it is writable by the daemon")
        }
        logger.info("device identity", metadata: ["fingerprint": "\(identity.fingerprint)"])

        let state = DaemonState(
            configurationLabel: configurationPath ?? "embedded defaults",
            stateDirectory: configuration.stateDirectory,
            identity: identity,
            stallAfter: .seconds(configuration.watchdogStallSeconds))
        await state.set("control", .starting, "binding \(configuration.controlSocket)")

        do {
            try ControlSocket.prepare(path: configuration.controlSocket)
        } catch {
            throw StartupFailure(status: 1, description: "\(error)")
        }

        let cases = CaseService(stateDirectory: configuration.stateDirectory, identity: identityKey, retention: configuration.retention,
                                sync: configuration.sync, logger: logger)
        await state.set("archive", cases.unavailableReason == nil ? .running : .failed, cases.unavailableReason ?? "evidence archive open")
        let devices = DeviceRegistry(policies: [cameraPolicy(for: configuration.camera)] + audioPolicies(for: configuration.audio))
        let camera = CameraService(configuration: configuration.camera,
                                   evidence: EvidenceDirectory(stateDirectory: configuration.stateDirectory), cases: cases,
                                   state: state, registry: devices, logger: logger)
        let voiceTap = configuration.voice.enabled ? VoiceTap.makeStream() : nil
        let audio = AudioService(configuration: configuration.audio, state: state, logger: logger, registry: devices, voice: voiceTap?.continuation)
        let calls = CallService(configuration: configuration, identity: identityKey, camera: camera, cases: cases, audio: audio, logger: logger)
        let board = VoiceStatusBoard(enabled: configuration.voice.enabled)
        await state.setVoiceStatus { board.status }
        let hooks = HookRunner(configuration: configuration.hooks, board: board, logger: logger)
        let voiceJournal: VoiceJournal?
        do {
            voiceJournal = try VoiceJournal(stateDirectory: configuration.stateDirectory)
        } catch {
            logger.error("voice command journal unavailable", metadata: ["error": "\(error)"])
            voiceJournal = nil
        }
        let ledger = ActionLedger(board: board, cases: cases, journal: voiceJournal, hooks: hooks,
                                  device: .init(fingerprint: identity.fingerprint, hostname: hostname()), logger: logger)
        let notes = voiceTap == nil ? nil : VoiceNoteRecorder(
            silenceMilliseconds: configuration.actions.noteSilenceMilliseconds, maximumSeconds: configuration.actions.noteMaximumSeconds,
            cases: cases, evidence: EvidenceDirectory(stateDirectory: configuration.stateDirectory), logger: logger)
        let video = VideoRecorder(camera: camera, cases: cases, evidence: EvidenceDirectory(stateDirectory: configuration.stateDirectory),
                                  settings: EncoderSettings(width: configuration.camera.width, height: configuration.camera.height,
                                                            fps: Double(configuration.camera.fps), bitrateKbps: configuration.stream.bitrateKbps,
                                                            keyframeInterval: configuration.camera.fps * 2),
                                  maximumDuration: .seconds(configuration.actions.recordingMaximumSeconds), logger: logger)
        let actions = ActionDispatcher(
            performer: DaemonActionPerformer(camera: camera, calls: calls, cases: cases, audio: audio, notes: notes, video: video, logger: logger),
            feedback: SpeakerFeedback(audio: audio, log: LoggingFeedback(logger: logger)), cancelWindow: .milliseconds(configuration.actions.cancelWindowMilliseconds),
            vocabulary: configuration.voice.vocabulary,
            record: { report, command, deferred in await ledger.record(report, command: command, deferred: deferred) })
        video.whenStoppedBySelf { [weak actions] in _ = await actions?.dispatch(.stopRecording, source: .automatic) }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: ControlServer.makeApplication(.init(
                state: state, configuration: configuration, camera: camera, calls: calls, cases: cases, audio: audio, registry: devices,
                actions: actions, notifier: notifier, logger: logger)),
                  serviceName: "control"),
            .init(service: hooks, serviceName: "hooks"),
            .init(service: calls, serviceName: "calls"),
            .init(service: RetentionPurgeService(cases: cases, interval: .seconds(configuration.purgeIntervalHours * 3600), logger: logger),
                  serviceName: "retention"),
            .init(service: DiscoveryService(registry: devices, state: state, logger: logger), serviceName: "discovery"),
            .init(service: camera, serviceName: "camera"),
            // After the camera in the list, so it stops first: a running recording is filed.
            .init(service: video, serviceName: "recorder"),
            .init(service: audio, serviceName: "audio"),
            .init(service: WatchdogService(state: state, notifier: notifier, logger: logger, unsupervisedCheckInterval: .seconds(1)),
                  serviceName: "watchdog"),
            .init(service: ReloadService(configurationPath: configurationPath, running: configuration, logLevel: logLevel,
                                         notifier: notifier, logger: logger),
                  serviceName: "reload"),
        ]
        if let voiceTap, let voiceJournal {
            let voice = VoiceService(configuration: configuration.voice, journal: voiceJournal, state: state, logger: logger, board: board,
                                     tap: { chunk in notes?.feed(chunk) }) { command in
                await actions.dispatch(command.action, source: .voice, command: command).result
            }
            // After audio in the list, so it stops first on SIGTERM: ending its stream ends recognition.
            services.append(.init(service: VoiceListeningService(voice: voice, audio: voiceTap.stream, feed: voiceTap.continuation),
                                  serviceName: "voice"))
        } else if configuration.voice.enabled {
            await state.set(VoiceService.name, .failed, "the command journal cannot be written; see the log")
        }
        if let sync = cases.sync {
            services.append(.init(service: ArchiveSyncService(loop: sync, http: cases.syncHTTPClient), serviceName: "sync"))
        }
        if configuration.metricsEnabled {
            await state.set("metrics", .starting, "binding \(configuration.metricsListen)")
            services.append(.init(service: MetricsServer.makeApplication(registry: registry, state: state,
                                                                         listen: configuration.metricsListen, logger: logger),
                                  serviceName: "metrics"))
        }

        var groupConfiguration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(configuration.shutdownBudgetSeconds)
        groupConfiguration.maximumCancellationDuration = .seconds(1)
        logger.info("starting", metadata: [
            "version": "\(SightlineVersion.current)", "configuration": "\(configurationPath ?? "embedded defaults")",
        ])
        // Probed once, now, so the log says at start whether H.264 will be hardware or OpenH264.
        logger.info("hardware video encoder", metadata: ["probe": "\(VideoEncoders.hardwareProbe)"])
        defer {
            unlink(configuration.controlSocket)
        }
        try await ServiceGroup(configuration: groupConfiguration).run()
        notifier.stopping(status: "stopped")
        logger.info("stopped")
    }
}

/// The kernel's host name, for hook payloads (no resolver lookup, unlike ProcessInfo.hostName).
func hostname() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
