/// Folds interleaved multichannel audio to mono by averaging the channels of each frame.
///
/// Averaging (not summing) keeps full-scale input in range, and a voice that reaches only one
/// channel of a cheap headset is attenuated by the channel count rather than lost.
public enum ChannelMix {
    /// Mono from `channels`-channel interleaved samples; a trailing partial frame is ignored.
    public static func mono(interleaved samples: [Int16], channels: Int) -> [Int16] {
        guard channels > 1 else { return channels == 1 ? samples : [] }
        let frames = samples.count / channels
        var mono = [Int16](repeating: 0, count: frames)
        samples.withUnsafeBufferPointer { input in
            for frame in 0..<frames {
                var sum = 0
                for channel in 0..<channels { sum += Int(input[frame * channels + channel]) }
                mono[frame] = Int16(sum / channels)
            }
        }
        return mono
    }
}
