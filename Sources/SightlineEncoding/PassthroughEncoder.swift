import SightlineCore

/// Forwards H.264 the camera already encoded: no CPU spent on compression.
///
/// The camera's own encoder decides bitrate and GOP, so `update` only records the settings and
/// `forceKeyframe` cannot be honoured here; a UVC camera takes keyframe requests through the
/// `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` control, which belongs to the capture session.
public final class PassthroughEncoder: VideoEncoder {
    public let codec = VideoCodec.h264
    public private(set) var settings: EncoderSettings
    public private(set) var lastEncodeDuration: Duration?
    private var parameterSets = ParameterSetRepeater()

    public init(settings: EncoderSettings) {
        self.settings = settings
    }

    public func update(_ settings: EncoderSettings) {
        self.settings = settings
    }

    /// Returns nil for frames with no NAL unit (an empty or torn buffer), which no decoder could use.
    public func encode(_ frame: CapturedFrame, forceKeyframe: Bool) throws(EncoderError) -> EncodedFrame? {
        let timer = EncodeTimer()
        defer { lastEncodeDuration = timer.elapsed }
        guard frame.mode.fourCC == .h264 else { throw .unsupportedInput(frame.mode.fourCC, codec: .h264) }
        let units = AnnexB.nalUnits(in: frame.bytes)
        guard !units.isEmpty else { return nil }
        let isKeyframe = units.contains { $0.type == AnnexB.NALType.idrSlice }
        let data = parameterSets.completing(frame.bytes)
        return EncodedFrame(codec: .h264, isKeyframe: isKeyframe, width: frame.mode.size.width,
                            height: frame.mode.size.height, captureTimestamp: frame.timestamp, data: data)
    }
}
