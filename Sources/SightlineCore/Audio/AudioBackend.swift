/// Which sound system the daemon talks to (`audio.backend`). `auto` uses PulseAudio (or
/// PipeWire's Pulse server) when one answers, ALSA directly otherwise.
public enum AudioBackendKind: String, Sendable, Codable, CaseIterable {
    case auto, pulse, alsa
}

/// Counters and state of one capture or playback stream, as `sightctl audio` shows them.
public struct AudioStreamStatistics: Sendable, Equatable, Codable {
    /// Frames handed to the consumer (capture) or to the sound system (playback).
    public var frames: UInt64 = 0
    /// Overruns (capture) or underruns (playback) the sound system reported and we recovered from.
    public var xruns: UInt64 = 0
    /// Times the stream came back after losing its server or device.
    public var reconnects: UInt64 = 0
    /// Captured frames discarded at the source because privacy mode was on.
    public var mutedFrames: UInt64 = 0
    public var connected = false
    public var muted = false
    /// Level of the latest frame.
    public var level: AudioLevel?
    /// Playback only: audio queued ahead of the speaker, in ms — in this stream's queue and in
    /// the sound system, as it last reported it. What the device adds after the jitter buffer.
    public var latencyMs: Double?
    /// What went wrong last, with what to do about it.
    public var lastError: String?

    public init() {}
}

/// A running capture: 20 ms frames arrive in `frames` until `stop`.
public protocol AudioCapture: AnyObject, Sendable {
    var format: AudioFormat { get }
    /// Bounded and lossless; a consumer that falls behind causes counted xruns, not silent gaps.
    var frames: AudioFrameQueue { get }
    var statistics: AudioStreamStatistics { get }
    /// Privacy: while muted, captured audio is discarded inside the backend and no frame is delivered.
    func setMuted(_ muted: Bool)
    /// Stops capturing and ends `frames`. Idempotent.
    func stop() async
}

/// A running playback: frames given to `play` reach the device in order.
public protocol AudioPlayback: AnyObject, Sendable {
    var format: AudioFormat { get }
    var statistics: AudioStreamStatistics { get }
    /// Queues a frame, suspending while the playback queue is full. Returns false once stopped.
    @discardableResult
    func play(_ frame: AudioFrame) async -> Bool
    /// Queues a frame from a real-time thread, waiting at most `timeout` for room; false when
    /// the queue stayed full or the playback stopped (the caller counts the frame as dropped).
    func push(_ frame: AudioFrame, timeout: Duration) -> Bool
    /// Waits until everything queued has been handed to the sound system, or `timeout` passed.
    func drain(timeout: Duration) async -> Bool
    /// Stops playing and drops what is queued. Idempotent.
    func stop() async
}

/// Gives a pulled playback stream its next 20 ms of samples (interleaved, the stream's
/// format), nil for silence. Called on the stream's own thread whenever the sound system has
/// room for a frame, so it must be quick and must not block.
public typealias AudioFrameSource = @Sendable () -> [Int16]?

/// A sound system that can open capture and playback streams.
public protocol AudioBackend: Sendable {
    var kind: AudioBackendKind { get }
    /// - Parameter device: the backend's device name (a Pulse source, an ALSA PCM); nil for the default.
    func openCapture(device: String?, format: AudioFormat) throws -> any AudioCapture
    /// A playback stream fed by `play`/`push`, or, with a `source`, one that pulls each frame
    /// when the sound system wants it: played on the device's clock, a live voice never queues
    /// up ahead of the speaker, whatever the two clocks do (a pulled stream takes no pushes).
    func openPlayback(device: String?, format: AudioFormat, source: AudioFrameSource?) throws -> any AudioPlayback
    /// The backend's device name for an ALSA node that discovery chose, to open it with: ALSA
    /// opens the node itself, a sound server names its own source or sink for it (and throws,
    /// saying so, when it has none). May block for a moment: call it off the cooperative pool.
    func deviceName(for address: SoundDeviceAddress) throws -> String
}

extension AudioBackend {
    public func openPlayback(device: String?, format: AudioFormat) throws -> any AudioPlayback {
        try openPlayback(device: device, format: format, source: nil)
    }
}
