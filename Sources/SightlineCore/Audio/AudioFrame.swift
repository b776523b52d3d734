/// Sample rate and channel count of 16-bit interleaved audio.
public struct AudioFormat: Sendable, Hashable, Codable, CustomStringConvertible {
    public let sampleRate: Int
    public let channels: Int

    public init(sampleRate: Int, channels: Int) {
        self.sampleRate = sampleRate
        self.channels = channels
    }

    /// The stream's format: what Opus and the viewer expect.
    public static let stream = AudioFormat(sampleRate: 48000, channels: 1)
    /// The voice-command tap.
    public static let voice = AudioFormat(sampleRate: 16000, channels: 1)

    /// Frames (one sample per channel) in `milliseconds`.
    public func frames(milliseconds: Int) -> Int { sampleRate * milliseconds / 1000 }
    /// Samples in one 20 ms frame (all channels).
    public var samplesPerFrame: Int { frames(milliseconds: AudioFrame.milliseconds) * channels }

    public func duration(frames: Int) -> Duration {
        .nanoseconds(Int64(frames) * 1_000_000_000 / Int64(max(1, sampleRate)))
    }

    public var description: String { "\(sampleRate) Hz, \(channels) channel\(channels == 1 ? "" : "s")" }
}

/// 20 ms of captured (or decoded) audio: 16-bit samples, interleaved by channel.
public struct AudioFrame: Sendable, Equatable {
    public static let milliseconds = 20

    public let format: AudioFormat
    /// When the first sample was captured, on CLOCK_MONOTONIC; carried through encoding so the
    /// far end can measure mouth-to-ear delay.
    public let timestamp: Duration
    /// Counts frames from the start of the capture; a gap means samples were lost (an xrun).
    public let sequence: UInt64
    public let samples: [Int16]

    public init(format: AudioFormat, timestamp: Duration, sequence: UInt64, samples: [Int16]) {
        self.format = format
        self.timestamp = timestamp
        self.sequence = sequence
        self.samples = samples
    }

    /// Samples per channel.
    public var frameCount: Int { samples.count / max(1, format.channels) }
}

/// Cuts a capture's chunks of arbitrary size into `AudioFrame`s of exactly 20 ms, each stamped
/// with the capture time of its first sample.
public struct AudioFrameAssembler: Sendable {
    public let format: AudioFormat
    private var pending: [Int16] = []
    /// Capture time of `pending[0]`.
    private var pendingTimestamp: Duration = .zero
    private var sequence: UInt64 = 0

    public init(format: AudioFormat) { self.format = format }

    /// Samples per frame (all channels).
    public var samplesPerFrame: Int { format.samplesPerFrame }

    /// Adds interleaved samples whose first sample was captured at `timestamp`; returns the
    /// frames that are now complete.
    public mutating func append(_ samples: [Int16], capturedAt timestamp: Duration) -> [AudioFrame] {
        if pending.isEmpty {
            pendingTimestamp = timestamp
        }
        pending.append(contentsOf: samples)
        var frames: [AudioFrame] = []
        let size = samplesPerFrame
        var offset = 0
        while pending.count - offset >= size {
            let stamp = pendingTimestamp + format.duration(frames: offset / format.channels)
            frames.append(AudioFrame(format: format, timestamp: stamp, sequence: sequence,
                                     samples: Array(pending[offset..<(offset + size)])))
            sequence += 1
            offset += size
        }
        if offset > 0 {
            pending.removeFirst(offset)
            pendingTimestamp += format.duration(frames: offset / format.channels)
        }
        return frames
    }

    /// Drops a partial frame, e.g. after an xrun broke the stream's continuity.
    public mutating func discardPartial() {
        pending.removeAll(keepingCapacity: true)
    }
}
