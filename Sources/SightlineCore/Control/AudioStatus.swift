extension ControlAPI {
    public static let audioPath = "/v1/audio"
    public static let audioMutePath = "/v1/audio/mute"
}

/// `GET /v1/audio`: which sound system runs and why, and the microphone's counters and level.
public struct AudioStatus: Codable, Sendable, Equatable {
    /// `pulse`, `alsa`, or `none` while no backend could be chosen yet.
    public var backend: String
    /// `audio.backend` as configured.
    public var configured: String
    /// Why this backend (e.g. "auto: a PulseAudio server answered").
    public var reason: String
    /// The capture device name; `default` for the sound system's default.
    public var captureDevice: String
    public var sampleRate: Int
    public var channels: Int
    public var capture: AudioStreamStatistics?
    /// What is wrong right now, with what to do.
    public var problem: String?
    /// Why this microphone: the configured name, the preference a discovered card matched, or
    /// the fallback and why no preferred one is in use.
    public var captureChoice: String?
    /// The speaker playback and spoken feedback open (`default`: the sound system's default;
    /// `none` while no speaker may be used).
    public var playbackDevice: String?
    /// Why this speaker, as for the microphone.
    public var playbackChoice: String?

    public init(backend: String, configured: String, reason: String, captureDevice: String, sampleRate: Int, channels: Int,
                capture: AudioStreamStatistics?, problem: String?) {
        self.backend = backend
        self.configured = configured
        self.reason = reason
        self.captureDevice = captureDevice
        self.sampleRate = sampleRate
        self.channels = channels
        self.capture = capture
        self.problem = problem
    }
}

/// `POST /v1/audio/mute`: privacy for the microphone. Muted, no sample leaves the sound system's
/// stream: not to the voice commands, not to a call.
public struct AudioMuteRequest: Codable, Sendable, Equatable {
    public var muted: Bool

    public init(muted: Bool) { self.muted = muted }
}
