extension ControlAPI {
    public static let audioPath = "/v1/audio"
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
