import Foundation

/// Everything `sightlined` reads from its configuration file, typed and validated.
public struct DaemonConfiguration: Sendable, Equatable {
    public static let defaultPath = "/etc/sightline/sightlined.yaml"

    public var stateDirectory: String
    public var logLevel: String
    public var controlSocket: String
    public var controlGroup: String
    public var metricsEnabled: Bool
    public var metricsListen: ListenAddress
    public var shutdownBudgetSeconds: Int
    public var watchdogStallSeconds: Int
    public var camera: CameraConfiguration
    public var relay: RelayConfiguration
    public var stream: StreamConfiguration
    public var voice: VoiceConfiguration
    public var actions: ActionConfiguration
    public var hooks: HookConfiguration
    public var audio: AudioConfiguration
    /// The evidence archive's retention classes, from the `retention.*` keys.
    public var retention: RetentionPolicy
    public var purgeIntervalHours: Int
    /// Nil: sync is off (`sync.url` empty).
    public var sync: SyncConfiguration?
    public var faultInjection: Bool

    /// The `sync.*` keys: where and how the archive's cases go to the organisation's archive.
    public struct SyncConfiguration: Sendable, Equatable {
        public var url: String
        public var tokenFile: String
        /// Nil: trust the system's certificate store.
        public var caFile: String?
        public var intervalSeconds: Int
        public var deleteAfterSync: Bool
    }

    public struct RelayConfiguration: Sendable, Equatable {
        public var url: String
        /// Where experts open invite links: `relay.public_url`, or derived from `url`.
        public var publicURL: String
        public var tokenFile: String
        /// Nil: trust the system's certificate store.
        public var caFile: String?
    }

    public struct StreamConfiguration: Sendable, Equatable {
        public var codec: String
        public var bitrateKbps: Int
        public var rekeySeconds: Int
    }

    public struct AudioConfiguration: Sendable, Equatable {
        public var backend: AudioBackendKind
        /// nil: the sound system's default device.
        public var captureDevice: String?
        /// nil: the sound system's default device.
        public var playbackDevice: String?
        /// `audio.capture_preference`: empty, the microphone is `captureDevice`; else discovery
        /// chooses it and `captureDevice` is the fallback.
        public var capturePreference: [String]
        /// `audio.playback_preference`, the same for the speaker.
        public var playbackPreference: [String]
        /// `audio.fallback`: with a preference list, use the configured device while no preferred one is present.
        public var fallback: Bool
        public var switchDelayMilliseconds: Int

        public init(backend: AudioBackendKind, captureDevice: String?, playbackDevice: String? = nil, capturePreference: [String] = [],
                    playbackPreference: [String] = [], fallback: Bool = true, switchDelayMilliseconds: Int = 500) {
            self.backend = backend
            self.captureDevice = captureDevice
            self.playbackDevice = playbackDevice
            self.capturePreference = capturePreference
            self.playbackPreference = playbackPreference
            self.fallback = fallback
            self.switchDelayMilliseconds = switchDelayMilliseconds
        }
    }

    public struct VoiceConfiguration: Sendable, Equatable {
        public var enabled = true
        public var modelDirectory: String
        public var vocabulary: VoiceVocabulary
        public var thresholds: VoiceThresholds
        /// The noise-adapted decoders' transform (`voice.noise_transform`); nil for the built-in one.
        public var noiseTransformFile: String?
    }

    public struct ActionConfiguration: Sendable, Equatable {
        public var cancelWindowMilliseconds: Int
        public var noteSilenceMilliseconds: Int
        public var noteMaximumSeconds: Int
        /// Longest video recording (`actions.recording_max_seconds`).
        public var recordingMaximumSeconds: Int
    }

    public struct HookConfiguration: Sendable, Equatable {
        public var hooks: [HookSpec]
        public var timeoutMilliseconds: Int
        /// nil: hook programs run as the daemon's user.
        public var user: String?
        public var retries: Int
        public var queue: Int

        public init(hooks: [HookSpec], timeoutMilliseconds: Int, user: String?, retries: Int, queue: Int) {
            self.hooks = hooks
            self.timeoutMilliseconds = timeoutMilliseconds
            self.user = user
            self.retries = retries
            self.queue = queue
        }
    }

    public struct CameraConfiguration: Sendable, Equatable {
        public var device: String
        public var preference: [String]
        public var fallbackAny: Bool
        public var switchDelayMilliseconds: Int
        public var width: Int
        public var height: Int
        public var fps: Int
        public var formatPreference: [String]
        public var buffers: Int
    }

    /// The embedded defaults: what runs when no configuration file exists.
    public static var defaults: DaemonConfiguration {
        // The schema's defaults are valid by construction (checked by a test).
        do {
            return try DaemonConfiguration(values: [:])
        } catch {
            preconditionFailure("the configuration schema's defaults do not validate: \(error)")
        }
    }

    /// Parses and validates a configuration file's text.
    public static func parse(_ text: String, file: String) throws(ConfigurationRejected) -> DaemonConfiguration {
        let values = try ConfigurationParser(schema: DaemonConfigSchema.keys, retired: DaemonConfigSchema.retiredKeys).parse(text, file: file)
        return try DaemonConfiguration(values: values, file: file)
    }

    /// Reads and validates the file at `path`.
    public static func load(path: String) throws(ConfigurationRejected) -> DaemonConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path)
                ? "cannot be read (check its permissions and that it is UTF-8 text)"
                : "does not exist (create it, or leave out --config to run on the embedded defaults)"
            throw ConfigurationRejected([ConfigurationDiagnostic(file: path, line: nil, key: nil, message: reason)])
        }
        return try parse(text, file: path)
    }

    /// The configuration the daemon runs with: the explicit file (which must exist), else the
    /// default file when present, else the embedded defaults. Also returns the file used.
    public static func load(explicitPath: String?) throws(ConfigurationRejected) -> (DaemonConfiguration, String?) {
        if let explicitPath {
            return (try load(path: explicitPath), explicitPath)
        }
        if FileManager.default.fileExists(atPath: defaultPath) {
            return (try load(path: defaultPath), defaultPath)
        }
        return (defaults, nil)
    }

    init(values: [String: ConfigValue], file: String = "<defaults>") throws(ConfigurationRejected) {
        let reader = ValueReader(values: values)
        stateDirectory = reader.string("state_directory")
        logLevel = reader.string("log_level")
        controlSocket = reader.string("control.socket")
        controlGroup = reader.string("control.group")
        metricsEnabled = reader.boolean("metrics.enabled")
        let listen = reader.string("metrics.listen")
        shutdownBudgetSeconds = reader.integer("shutdown.budget_seconds")
        watchdogStallSeconds = reader.integer("watchdog.stall_seconds")
        camera = CameraConfiguration(
            device: reader.string("camera.device"),
            preference: reader.list("camera.preference"),
            fallbackAny: reader.boolean("camera.fallback_any"),
            switchDelayMilliseconds: reader.integer("camera.switch_delay_ms"),
            width: reader.integer("camera.width"),
            height: reader.integer("camera.height"),
            fps: reader.integer("camera.fps"),
            formatPreference: reader.list("camera.format_preference"),
            buffers: reader.integer("camera.buffers"))
        let relayURL = reader.string("relay.url")
        let publicURL = reader.string("relay.public_url")
        let caFile = reader.string("relay.ca_file")
        relay = RelayConfiguration(
            url: relayURL,
            publicURL: publicURL == "auto" ? Self.publicURL(forRelay: relayURL) : publicURL,
            tokenFile: reader.string("relay.token_file"),
            caFile: caFile.isEmpty ? nil : caFile)
        stream = StreamConfiguration(
            codec: reader.string("stream.codec"),
            bitrateKbps: reader.integer("stream.bitrate_kbps"),
            rekeySeconds: reader.integer("stream.rekey_seconds"))
        var vocabulary: VoiceVocabulary
        do {
            vocabulary = try VoiceVocabulary(entries: reader.list("voice.phrases"))
        } catch {
            throw ConfigurationRejected([ConfigurationDiagnostic(file: file, line: nil, key: "voice.phrases", message: error.description)])
        }
        let wakePhrase = reader.string("voice.wake_phrase")
        do {
            try vocabulary.requireWakePhrase(wakePhrase)
        } catch {
            throw ConfigurationRejected([ConfigurationDiagnostic(file: file, line: nil, key: "voice.wake_phrase", message: error.description)])
        }
        // The command length limit covers the phrase; the wake phrase comes on top (flite says
        // "okay glasses" in about 0.9 s).
        let wakeAllowance = vocabulary.wakeWords.count * 500
        let noiseTransformFile = reader.string("voice.noise_transform")
        voice = VoiceConfiguration(
            enabled: reader.boolean("voice.enabled"),
            modelDirectory: reader.string("voice.model_directory"),
            vocabulary: vocabulary,
            thresholds: VoiceThresholds(
                minimumMargin: reader.integer("voice.min_utterance_margin"),
                maximumCommandMilliseconds: reader.integer("voice.max_command_ms") + wakeAllowance,
                endSilenceMilliseconds: reader.integer("voice.end_silence_ms"),
                noisyMinimumMargin: reader.integer("voice.noisy_min_utterance_margin"),
                noiseSuppressionDecibels: reader.integer("voice.noise_suppression_db"),
                noiseAdaptedBelowDecibels: reader.integer("voice.noise_adapted_below_db"),
                noiseAdaptedMinimumMargin: reader.integer("voice.noise_adapted_min_utterance_margin"),
                minimumLastWordMargin: reader.integer("voice.min_last_word_margin"),
                noiseAdaptedMinimumLastWordMargin: reader.integer("voice.noise_adapted_min_last_word_margin")),
            noiseTransformFile: noiseTransformFile.isEmpty ? nil : noiseTransformFile)
        actions = ActionConfiguration(
            cancelWindowMilliseconds: reader.integer("actions.cancel_window_ms"),
            noteSilenceMilliseconds: reader.integer("actions.note_silence_ms"),
            noteMaximumSeconds: reader.integer("actions.note_max_seconds"),
            recordingMaximumSeconds: reader.integer("actions.recording_max_seconds"))
        let hookSpecs: [HookSpec]
        do {
            hookSpecs = try HookSpec.parse(reader.list("hooks.run"))
        } catch {
            throw ConfigurationRejected([ConfigurationDiagnostic(file: file, line: nil, key: "hooks.run", message: error.description)])
        }
        let hookUser = reader.string("hooks.user")
        hooks = HookConfiguration(hooks: hookSpecs, timeoutMilliseconds: reader.integer("hooks.timeout_ms"),
                                  user: hookUser.isEmpty ? nil : hookUser, retries: reader.integer("hooks.retries"),
                                  queue: reader.integer("hooks.queue"))
        let captureDevice = reader.string("audio.capture_device"), playbackDevice = reader.string("audio.playback_device")
        audio = AudioConfiguration(backend: AudioBackendKind(rawValue: reader.string("audio.backend")) ?? .auto,
                                   captureDevice: captureDevice == "default" || captureDevice.isEmpty ? nil : captureDevice,
                                   playbackDevice: playbackDevice == "default" || playbackDevice.isEmpty ? nil : playbackDevice,
                                   capturePreference: reader.list("audio.capture_preference"),
                                   playbackPreference: reader.list("audio.playback_preference"),
                                   fallback: reader.boolean("audio.fallback"),
                                   switchDelayMilliseconds: reader.integer("audio.switch_delay_ms"))
        var retention = RetentionPolicy.defaults
        let periods: [String: RetentionClass.Period] = [
            "commercial-letter": .years(reader.integer("retention.commercial_letter_years")),
            "booking-voucher": .years(reader.integer("retention.booking_voucher_years")),
            "books": .years(reader.integer("retention.books_years")),
            "personal-audio": .days(reader.integer("retention.personal_audio_days")),
        ]
        retention.classes = retention.classes.map { retentionClass in
            var changed = retentionClass
            changed.period = periods[retentionClass.name] ?? retentionClass.period
            return changed
        }
        self.retention = retention
        purgeIntervalHours = reader.integer("retention.purge_interval_hours")
        let syncURL = reader.string("sync.url")
        let syncCA = reader.string("sync.ca_file")
        sync = syncURL.isEmpty ? nil : SyncConfiguration(url: syncURL, tokenFile: reader.string("sync.token_file"), caFile: syncCA.isEmpty ? nil : syncCA,
                                                         intervalSeconds: reader.integer("sync.interval_s"),
                                                         deleteAfterSync: reader.boolean("sync.delete_after_sync"))
        faultInjection = reader.boolean("debug.fault_injection")
        guard let address = ListenAddress(listen) else {
            throw ConfigurationRejected([ConfigurationDiagnostic(file: file, line: nil, key: "metrics.listen", message: "invalid default")])
        }
        metricsListen = address
    }
}

extension DaemonConfiguration {
    /// The relay serves the viewer on the same host and port as its WebSocket endpoint.
    static func publicURL(forRelay url: String) -> String {
        if url.hasPrefix("wss://") { return "https://" + url.dropFirst("wss://".count) }
        if url.hasPrefix("ws://") { return "http://" + url.dropFirst("ws://".count) }
        return url
    }
}

/// Looks values up by key, falling back to the schema's default, so a key left out of the file
/// behaves exactly as documented.
private struct ValueReader {
    let values: [String: ConfigValue]

    private func value(_ path: String) -> ConfigValue {
        if let value = values[path] { return value }
        guard let key = DaemonConfigSchema.key(path) else { preconditionFailure("\(path) is not in the schema") }
        switch ConfigurationParser.defaultValue(of: key) {
        case .success(let value): return value
        case .failure(let failure): preconditionFailure("default of \(path) is invalid: \(failure)")
        }
    }

    func string(_ path: String) -> String {
        if case .string(let text) = value(path) { return text }
        preconditionFailure("\(path) is not a string key")
    }

    func integer(_ path: String) -> Int {
        if case .integer(let number) = value(path) { return number }
        preconditionFailure("\(path) is not an integer key")
    }

    func boolean(_ path: String) -> Bool {
        if case .boolean(let flag) = value(path) { return flag }
        preconditionFailure("\(path) is not a boolean key")
    }

    func list(_ path: String) -> [String] {
        if case .list(let items) = value(path) { return items }
        preconditionFailure("\(path) is not a list key")
    }
}
