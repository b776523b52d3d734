import SightlineCore

/// Forwards H.264 the camera already encoded: no CPU spent on compression.
///
/// The camera's own encoder decides bitrate and GOP, so `update` only records the settings and
/// `forceKeyframe` cannot be honoured here: the call's media sender presses the camera's
/// `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` control instead, and where the camera has none it says
/// so in the log and the call status (a viewer then waits for the camera's next IDR). An IDR
/// the camera sends without SPS and PPS gets the last ones seen put in front, so a viewer can
/// start at any keyframe; before any were seen it is not flagged as one.
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
        let data = parameterSets.completing(frame.bytes)
        // A keyframe is where a viewer can start: an IDR with SPS and PPS, its own or the last
        // ones seen. An IDR before the first parameter sets (a call that started after the
        // camera sent them) goes out unflagged, and viewers wait for a complete one.
        var isKeyframe = false
        if units.contains(where: { $0.type == AnnexB.NALType.idrSlice }) {
            let types = Set(AnnexB.nalUnits(in: data).map(\.type))
            isKeyframe = types.contains(AnnexB.NALType.sps) && types.contains(AnnexB.NALType.pps)
        }
        return EncodedFrame(codec: .h264, isKeyframe: isKeyframe, width: frame.mode.size.width,
                            height: frame.mode.size.height, captureTimestamp: frame.timestamp, data: data)
    }
}
