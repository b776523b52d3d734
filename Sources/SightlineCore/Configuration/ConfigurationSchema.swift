/// The kinds of value a configuration key accepts; each knows how to check a raw scalar and how
/// to describe what is allowed, so every error message can say it.
public enum ConfigValueKind: Sendable, Equatable {
    case string
    /// An absolute filesystem path.
    case absolutePath
    case integer(ClosedRange<Int>)
    case boolean
    case choice([String])
    /// A list whose items are each one of the given choices, without repeats.
    case choiceList([String])
    /// `HOST:PORT` where HOST must be a loopback address: what it serves is unauthenticated.
    case loopbackListenAddress
    /// A POSIX group name (`[a-z_][a-z0-9_-]*`, at most 32 characters).
    case groupName
    /// `auto`, `test-pattern` or a device path under /dev.
    case cameraDevice
    /// A list of non-empty strings.
    case stringList
    /// `wss://HOST[:PORT]`, or `ws://` with a loopback host: media keys never depend on the
    /// transport, but device tokens do.
    case relayURL
    /// An absolute path, or empty for "none".
    case optionalAbsolutePath
    /// A list of `PHRASE=ACTION` voice commands (`VoicePhrase`); empty means the built-in phrases.
    case voicePhrases
    /// A list of `ACTION=TARGET` hooks (`HookSpec`): an executable's absolute path or an http(s) URL.
    case hooks
    /// A user name (same rules as `groupName`), or empty for "none".
    case optionalAccount
    /// Words of letters and apostrophes said before every voice command, or empty for none.
    case wakePhrase
    /// Empty (sync off), `https://HOST[:PORT]`, or `http://` with a loopback host: the device
    /// token goes in a header.
    case optionalArchiveURL

    /// What an operator may write, for error messages and the configuration reference.
    public var allowed: String {
        switch self {
        case .string: "a string"
        case .absolutePath: "an absolute path such as /var/lib/sightline"
        case .integer(let range): "a whole number from \(range.lowerBound) to \(range.upperBound)"
        case .boolean: "true or false"
        case .choice(let choices): "one of " + choices.joined(separator: ", ")
        case .choiceList(let choices): "a list of distinct values from " + choices.joined(separator: ", ")
        case .loopbackListenAddress: "HOST:PORT with a loopback host (127.0.0.1, [::1] or localhost) and a port from 1 to 65535"
        case .groupName: "a group name (lowercase letters, digits, _ and -, starting with a letter or _)"
        case .cameraDevice: "auto, test-pattern, or a device path such as /dev/v4l/by-id/usb-Vendor_Cam-video-index0"
        case .stringList: "a list of strings, like [\"ID_SERIAL=Acme_0042\", /dev/v4l/by-id/usb-Acme-video-index0]"
        case .relayURL: "wss://HOST[:PORT], or ws://HOST:PORT with a loopback host (127.0.0.1, [::1] or localhost)"
        case .optionalAbsolutePath: "an absolute path, or \"\" for none"
        case .hooks: "a list of \"ACTION=TARGET\" entries where TARGET is an executable's absolute path or an http:// or https:// URL, like [\"take_photo=/usr/local/bin/upload-photo\"]; actions: \(VoiceAction.names)"
        case .wakePhrase: "words of letters (and apostrophes) said before every command, like \"okay glasses\", or \"\" for none"
        case .optionalAccount: "a user name (lowercase letters, digits, _ and -, starting with a letter or _), or \"\" for none"
        case .optionalArchiveURL: "\"\" for no sync, https://HOST[:PORT], or http://HOST:PORT with a loopback host (127.0.0.1, [::1] or localhost)"
        case .voicePhrases: "a list of \"PHRASE=ACTION\" entries with distinct phrases, like [\"take a picture=take_photo\"]; actions: \(VoiceAction.names)"
        }
    }
}

/// One documented configuration key. The schema below is the single source of truth: the loader
/// validates against it and `docs/CONFIGURATION.md` is checked against it by a test.
public struct ConfigKey: Sendable, Equatable {
    /// Dotted path, e.g. `control.socket`.
    public let path: String
    public let kind: ConfigValueKind
    /// The default as an operator would write it in the file.
    public let defaultValue: String
    public let meaning: String
    /// Whether SIGHUP applies a new value without a restart.
    public let reloadable: Bool

    public init(_ path: String, _ kind: ConfigValueKind, default defaultValue: String, reloadable: Bool = false, _ meaning: String) {
        self.path = path
        self.kind = kind
        self.defaultValue = defaultValue
        self.meaning = meaning
        self.reloadable = reloadable
    }
}

public enum DaemonConfigSchema {
    public static let videoFormats = ["h264", "mjpeg", "yuyv", "nv12"]

    /// Keys that are no longer read, with what to write instead. Refused rather than ignored: an
    /// old value must not silently stop meaning what its author intended.
    public static let retiredKeys: [String: String] = [
        "voice.min_margin": "is no longer read: it was a margin per second of speech, and the margin is now the whole utterance's score difference; set voice.min_utterance_margin instead (default \(VoiceThresholds.defaultMinimumMargin); docs/VOICE.md)",
        "voice.noisy_min_margin": "is no longer read: it was a margin per second of speech, and the margin is now the whole utterance's score difference; set voice.noisy_min_utterance_margin instead (default \(VoiceThresholds.defaultNoisyMinimumMargin); docs/VOICE.md)",
    ]

    public static let keys: [ConfigKey] = [
        ConfigKey("state_directory", .absolutePath, default: "/var/lib/sightline",
                  "Where the device identity key and evidence live. Created 0700 if missing."),
        ConfigKey("log_level", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]),
                  default: "info", reloadable: true, "Lowest severity that is logged."),
        ConfigKey("control.socket", .absolutePath, default: "/run/sightline/control.sock",
                  "Unix socket of the local control API used by sightctl."),
        ConfigKey("control.group", .groupName, default: "sightline",
                  "Group whose members may use the control API besides root. Checked with SO_PEERCRED on every connection."),
        ConfigKey("metrics.enabled", .boolean, default: "true",
                  "Serve Prometheus metrics and the health endpoint over HTTP."),
        ConfigKey("metrics.listen", .loopbackListenAddress, default: "127.0.0.1:9464",
                  "Loopback address for /metrics and /health. Never exposed beyond the device."),
        ConfigKey("shutdown.budget_seconds", .integer(1...60), default: "10",
                  "Time allowed for a graceful stop on SIGTERM; keep it below the unit's TimeoutStopSec."),
        ConfigKey("watchdog.stall_seconds", .integer(1...600), default: "10",
                  "A main loop without progress for this long stops the systemd watchdog pings, so systemd restarts the daemon."),
        ConfigKey("camera.device", .cameraDevice, default: "auto",
                  "Camera to use: auto (first capture device, else the test pattern), test-pattern, or a /dev/v4l/by-id path."),
        ConfigKey("camera.preference", .stringList, default: "[]",
                  "With device auto: cameras to prefer, best first. Each entry is KEY=VALUE pairs joined by commas, matched against udev properties (ID_SERIAL, ID_VENDOR_ID, ID_MODEL_ID, ID_PATH), or a device path or /dev/v4l link."),
        ConfigKey("camera.fallback_any", .boolean, default: "true",
                  "With device auto: use any other capture device when no preferred one is present."),
        ConfigKey("camera.switch_delay_ms", .integer(0...10_000), default: "500",
                  "After the camera in use disappears, how long to wait for it to return before switching to another one."),
        ConfigKey("camera.width", .integer(160...7680), default: "1280", "Requested frame width in pixels."),
        ConfigKey("camera.height", .integer(120...4320), default: "720", "Requested frame height in pixels."),
        ConfigKey("camera.fps", .integer(1...120), default: "30", "Requested frame rate."),
        ConfigKey("camera.format_preference", .choiceList(videoFormats), default: "[h264, mjpeg, yuyv, nv12]",
                  "Pixel formats in order of preference when the camera offers several."),
        ConfigKey("camera.buffers", .integer(2...32), default: "4", "Number of mmap capture buffers."),
        ConfigKey("relay.url", .relayURL, default: "ws://127.0.0.1:8443",
                  "The relay the device dials out to for calls."),
        ConfigKey("relay.public_url", .string, default: "auto",
                  "Base URL experts open invite links on; auto derives it from relay.url (ws becomes http, wss becomes https)."),
        ConfigKey("relay.token_file", .absolutePath, default: "/etc/sightline/relay-token",
                  "File holding this device's relay token (one line; mode 0600 or 0640, owned by root or the daemon)."),
        ConfigKey("relay.ca_file", .optionalAbsolutePath, default: "\"\"",
                  "PEM certificates to trust for the relay's TLS instead of the system store; \"\" uses the system store."),
        ConfigKey("stream.codec", .choice(["h264", "jpeg"]), default: "h264",
                  "Codec for live video: h264 (camera H.264 passed through, else OpenH264) or jpeg (camera MJPEG passed through, else libjpeg-turbo)."),
        ConfigKey("stream.bitrate_kbps", .integer(100...20_000), default: "1200",
                  "Target video bitrate at the full step of the degradation ladder."),
        ConfigKey("stream.rekey_seconds", .integer(10...600), default: "600",
                  "Longest time a media key is used; keys also change whenever an expert joins or leaves."),
        ConfigKey("audio.backend", .choice(AudioBackendKind.allCases.map(\.rawValue)), default: "auto",
                  "Sound system: auto (PulseAudio when a server answers, else ALSA), pulse, or alsa."),
        ConfigKey("audio.capture_device", .string, default: "default",
                  "Microphone: a PulseAudio source name or an ALSA PCM name; default is the sound system's default."),
        ConfigKey("audio.playback_device", .string, default: "default",
                  "Speaker for the expert's voice and spoken feedback: a PulseAudio sink name or an ALSA PCM name; default is the sound system's default."),
        ConfigKey("audio.capture_preference", .stringList, default: "[]",
                  "Microphones to prefer, best first, chosen through discovery with the same entries as camera.preference (udev properties of the sound card such as ID_SERIAL, ID_VENDOR_ID, ID_MODEL_ID, ID_PATH, NAME; an identity; /dev/snd/pcmC…c). Empty: audio.capture_device alone."),
        ConfigKey("audio.playback_preference", .stringList, default: "[]",
                  "Speakers to prefer, best first, chosen through discovery like audio.capture_preference. Empty: audio.playback_device alone."),
        ConfigKey("audio.fallback", .boolean, default: "true",
                  "With a preference list: while no preferred device is present, use audio.capture_device / audio.playback_device; false waits for a preferred one."),
        ConfigKey("audio.switch_delay_ms", .integer(0...10_000), default: "500",
                  "After the preferred microphone or speaker in use disappears, how long to wait for it to return before switching to the next one or the fallback."),
        ConfigKey("voice.enabled", .boolean, default: "true",
                  "Listen for voice commands on the microphone's 16 kHz tap."),
        ConfigKey("voice.model_directory", .absolutePath, default: "/usr/share/pocketsphinx/model/en-us",
                  "PocketSphinx model: the acoustic model in en-us/, cmudict-en-us.dict and en-us-phone.lm.bin (Debian's pocketsphinx-en-us)."),
        ConfigKey("voice.phrases", .voicePhrases, default: "[]",
                  "Voice commands as PHRASE=ACTION entries; they replace the built-in phrases, [] keeps those (sightctl voice list shows them)."),
        ConfigKey("voice.wake_phrase", .wakePhrase, default: "\"\"",
                  "Words every command must start with (\"okay glasses take a picture\"); empty for none. Fewer false activations, more to say."),
        ConfigKey("voice.min_utterance_margin", .integer(-10_000...10_000), default: String(VoiceThresholds.defaultMinimumMargin),
                  "How far the command grammar's score over the whole utterance may trail the all-phone decoder's and still count as a command; higher rejects more."),
        ConfigKey("voice.noisy_min_utterance_margin", .integer(-10_000...10_000), default: String(VoiceThresholds.defaultNoisyMinimumMargin),
                  "The voice.min_utterance_margin that applies when speech stands only 10 dB above the background noise (linear up to 30 dB, where voice.min_utterance_margin holds); higher rejects more in noise."),
        ConfigKey("voice.max_command_ms", .integer(500...10_000), default: String(VoiceThresholds.defaultMaximumCommandMilliseconds),
                  "Longest utterance that can be a command; longer speech is never one."),
        ConfigKey("voice.end_silence_ms", .integer(100...2000), default: String(VoiceThresholds.defaultEndSilenceMilliseconds),
                  "Silence that ends an utterance; shorter reacts sooner but may cut phrases at a pause."),
        ConfigKey("voice.noise_suppression_db", .integer(0...60), default: String(VoiceThresholds.defaultNoiseSuppressionDecibels),
                  "Most the noise suppressor in front of the recognizer attenuates steady noise, in dB; 0 turns it off (quiet rooms only)."),
        ConfigKey("voice.noise_adapted_below_db", .integer(0...60), default: String(VoiceThresholds.defaultNoiseAdaptedBelowDecibels),
                  "Below this signal-to-noise ratio (dB) decoders on a copy of the model adapted to noisy speech judge the utterance; 0 turns them off (about half the recognizer's CPU and memory)."),
        ConfigKey("voice.noise_adapted_min_utterance_margin", .integer(-10_000...10_000), default: String(VoiceThresholds.defaultNoiseAdaptedMinimumMargin),
                  "The voice.min_utterance_margin of the noise-adapted decoders (below voice.noise_adapted_below_db); higher rejects more in noise."),
        ConfigKey("voice.min_last_word_margin", .integer(-1000...1000), default: String(VoiceThresholds.defaultMinimumLastWordMargin),
                  "How far the command grammar's acoustic score per 10 ms over the phrase's last word may trail the all-phone decoder's over the same stretch; higher rejects more near misses and more commands."),
        ConfigKey("voice.noise_adapted_min_last_word_margin", .integer(-1000...1000), default: String(VoiceThresholds.defaultNoiseAdaptedMinimumLastWordMargin),
                  "The voice.min_last_word_margin of the noise-adapted decoders (below voice.noise_adapted_below_db)."),
        ConfigKey("voice.noise_transform", .optionalAbsolutePath, default: "\"\"",
                  "The noise-adapted decoders' MLLR transform, made for the site's own noise with scripts/make-noise-transform --noise (docs/VOICE.md); \"\" for the built-in one (white noise)."),
        ConfigKey("actions.cancel_window_ms", .integer(0...10_000), default: "3000",
                  "How long a spoken risky action (start_recording, call_expert) waits before it runs; its opposite command cancels it meanwhile. 0 runs it at once."),
        ConfigKey("actions.note_silence_ms", .integer(500...10_000), default: "1500",
                  "Silence that ends a voice note."),
        ConfigKey("actions.note_max_seconds", .integer(5...900), default: "120",
                  "Longest voice note; the note is filed when it is reached."),
        ConfigKey("actions.recording_max_seconds", .integer(5...86_400), default: "1800",
                  "Longest video recording; at the limit it stops by itself and is filed, so a forgotten recording cannot fill the disk."),
        ConfigKey("hooks.run", .hooks, default: "[]",
                  "Integrator hooks as ACTION=TARGET entries: an executable run with the action's JSON on stdin, or an http(s) URL the JSON is posted to."),
        ConfigKey("hooks.timeout_ms", .integer(100...600_000), default: "10000",
                  "Longest a hook program or one webhook attempt may take; a program's whole process group is killed at the limit."),
        ConfigKey("hooks.user", .optionalAccount, default: "\"\"",
                  "Unprivileged user hook programs run as (through setpriv); \"\" runs them as the daemon's user."),
        ConfigKey("hooks.retries", .integer(0...10), default: "3",
                  "Further attempts of a failed webhook, with doubling backoff from one second."),
        ConfigKey("hooks.queue", .integer(1...10_000), default: "64",
                  "Hook runs that may wait; beyond this new ones are dropped and counted."),
        ConfigKey("retention.commercial_letter_years", .integer(1...30), default: "6",
                  "Retention of service documentation (photos, recordings, call records, notes): years from the end of the calendar year."),
        ConfigKey("retention.booking_voucher_years", .integer(1...30), default: "8",
                  "Retention of invoices and booking vouchers: years from the end of the calendar year."),
        ConfigKey("retention.books_years", .integer(1...30), default: "10",
                  "Retention of books and records: years from the end of the calendar year."),
        ConfigKey("retention.personal_audio_days", .integer(1...3650), default: "30",
                  "Retention of audio notes and voice commands: days from filing."),
        ConfigKey("retention.purge_interval_hours", .integer(1...168), default: "24",
                  "How often the purge job deletes evidence whose retention period ended."),
        ConfigKey("sync.url", .optionalArchiveURL, default: "\"\"",
                  "The organisation's archive (sightline-archive) that cases are synced to; \"\" keeps evidence on the device only."),
        ConfigKey("sync.token_file", .absolutePath, default: "/etc/sightline/archive-token",
                  "File holding this device's archive token (one line; mode 0600 or 0640, owned by root or the daemon)."),
        ConfigKey("sync.ca_file", .optionalAbsolutePath, default: "\"\"",
                  "PEM certificates to trust for the archive's TLS instead of the system store; \"\" uses the system store."),
        ConfigKey("sync.interval_s", .integer(5...86_400), default: "300",
                  "Seconds between sync passes; after a failure the next attempt backs off from 5 seconds up to this."),
        ConfigKey("sync.delete_after_sync", .boolean, default: "false",
                  "Remove a blob's encrypted file from the device once the archive confirmed it; the journal stays."),
        ConfigKey("debug.fault_injection", .boolean, default: "false",
                  "Enables the control API's fault-injection endpoints used by the test suite. Never enable in production."),
    ]

    public static func key(_ path: String) -> ConfigKey? {
        keys.first { $0.path == path }
    }

    /// Section names (first path component of dotted keys).
    public static var sections: Set<String> {
        Set(keys.compactMap { key in key.path.contains(".") ? String(key.path.split(separator: ".")[0]) : nil })
    }
}
