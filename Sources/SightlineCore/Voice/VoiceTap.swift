/// The voice path's view of the microphone: captured `AudioFrame`s of any rate and channel count
/// become 16 kHz mono chunks for the recognizer (channels averaged by `ChannelMix`, the rate
/// converted by a streaming `Resampler`). The capture side yields each converted frame into
/// `makeStream()`'s continuation and `VoiceService` consumes the stream.
public struct VoiceTap: Sendable {
    public static let format = AudioFormat.voice
    /// 5 s of 20 ms chunks; when the recognizer falls further behind, the oldest audio goes.
    public static let bufferedChunks = 250

    private var resampler: Resampler?
    private var inputFormat: AudioFormat?

    public init() {}

    /// The stream `VoiceService` reads and the continuation the capture side feeds.
    public static func makeStream() -> (stream: AsyncStream<[Int16]>, continuation: AsyncStream<[Int16]>.Continuation) {
        AsyncStream.makeStream(of: [Int16].self, bufferingPolicy: .bufferingNewest(bufferedChunks))
    }

    /// 16 kHz mono samples for `frame`; a change of input format starts a new resampling stream.
    public mutating func convert(_ frame: AudioFrame) throws(Resampler.Failure) -> [Int16] {
        let mono = ChannelMix.mono(interleaved: frame.samples, channels: frame.format.channels)
        if frame.format != inputFormat {
            inputFormat = frame.format
            resampler = frame.format.sampleRate == Self.format.sampleRate
                ? nil : try Resampler(inputRate: frame.format.sampleRate, outputRate: Self.format.sampleRate)
        }
        guard var converter = resampler else { return mono }
        resampler = nil  // one owner while it works, so its history is not copied
        let output = converter.process(mono)
        resampler = converter
        return output
    }
}
