/// A short, finished piece of 16-bit audio to play: an earcon or a spoken confirmation.
///
/// Clips come from sources with their own rate (espeak-ng speaks at 22050 Hz) and go to a sink
/// that runs at the stream's format, so conversion lives here, in the core, once.
public struct AudioClip: Sendable, Equatable {
    public let format: AudioFormat
    /// Interleaved by channel.
    public let samples: [Int16]

    public init(format: AudioFormat, samples: [Int16]) {
        self.format = format
        self.samples = samples
    }

    public var duration: Duration { format.duration(frames: samples.count / max(1, format.channels)) }

    /// The clip at `target`'s rate and channel count: folded to mono, resampled (windowed sinc,
    /// flushed so the tail is kept), then copied to every channel.
    public func converted(to target: AudioFormat) throws(Resampler.Failure) -> AudioClip {
        if format == target { return self }
        var mono = ChannelMix.mono(interleaved: samples, channels: format.channels)
        if format.sampleRate != target.sampleRate {
            var resampler = try Resampler(inputRate: format.sampleRate, outputRate: target.sampleRate)
            mono = resampler.process(mono) + resampler.flushInt16()
        }
        guard target.channels > 1 else { return AudioClip(format: target, samples: mono) }
        var interleaved = [Int16]()
        interleaved.reserveCapacity(mono.count * target.channels)
        for sample in mono {
            for _ in 0..<target.channels { interleaved.append(sample) }
        }
        return AudioClip(format: target, samples: interleaved)
    }

    /// The clip cut into 20 ms frames, after `lead` of silence, the last one filled with
    /// silence and followed by `tail` of silence: output devices often lose the first moments
    /// after they wake, and a stream stopped right after its last frame would cut off what the
    /// device still buffers.
    public func frames(lead: Duration = .zero, tail: Duration = .milliseconds(100), startingAt start: Duration = .zero) -> [AudioFrame] {
        let size = format.frames(milliseconds: AudioFrame.milliseconds) * format.channels
        guard size > 0 else { return [] }
        let leadSamples = format.frames(milliseconds: Int(lead / .milliseconds(1))) * format.channels
        let tailSamples = format.frames(milliseconds: Int(tail / .milliseconds(1))) * format.channels
        let padded = [Int16](repeating: 0, count: leadSamples) + samples
        let total = padded.count + tailSamples
        let frameCount = (total + size - 1) / size
        return (0..<frameCount).map { index in
            let offset = index * size
            var chunk = offset < padded.count ? Array(padded[offset..<min(padded.count, offset + size)]) : []
            chunk += [Int16](repeating: 0, count: size - chunk.count)
            return AudioFrame(format: format, timestamp: start + .milliseconds(AudioFrame.milliseconds * index),
                              sequence: UInt64(index), samples: chunk)
        }
    }
}
