import SightlineCore

/// Forwards H.264 the camera already encoded: no CPU spent on compression.
///
/// The camera's own encoder decides bitrate and GOP, so `update` only records the settings and
/// `forceKeyframe` cannot be honoured here: the call's media sender presses the camera's
/// `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` control instead, and where the camera has none it says
/// so in the log and the call status (a viewer then waits for the camera's next IDR). An IDR
/// the camera sends without SPS and PPS gets the last ones seen put in front, so a viewer can
/// start at any keyframe; before any were seen it is not flagged as one.
///
/// Unlike a frame the encoder made itself, a camera's P-frame references frames this side
/// cannot re-encode: once one access unit is lost (a gap in the driver's sequence numbers, a
/// torn buffer, a frame the call skipped because its uplink was slow), every frame up to the
/// next keyframe would decode against a missing picture and show smeared blocks. Those frames
/// are withheld, and `chainBreaks` counts each loss so the sender can ask the camera for a
/// keyframe.
public final class PassthroughEncoder: VideoEncoder {
    public let codec = VideoCodec.h264
    public private(set) var settings: EncoderSettings
    public private(set) var lastEncodeDuration: Duration?
    /// Access units lost since the encoder started: each one withholds frames until a keyframe.
    public private(set) var chainBreaks = 0
    private var parameterSets = ParameterSetRepeater()
    private var lastSequence: UInt32?
    /// Nothing has been forwarded since the start or the last loss: only a keyframe may go next.
    private var awaitingKeyframe = true

    public init(settings: EncoderSettings) {
        self.settings = settings
    }

    /// Starts from parameter sets the camera sent before this encoder existed (a call that
    /// starts after a camera sent them once, at its stream's start), unless it has its own.
    public func prime(with parameterSets: ParameterSetRepeater) {
        if !self.parameterSets.isComplete { self.parameterSets = parameterSets }
    }

    public func update(_ settings: EncoderSettings) {
        self.settings = settings
    }

    /// Returns nil for a frame no viewer could decode: one with no NAL unit (an empty or torn
    /// buffer), or one after a lost access unit and before the next keyframe.
    public func encode(_ frame: CapturedFrame, forceKeyframe: Bool) throws(EncoderError) -> EncodedFrame? {
        let timer = EncodeTimer()
        defer { lastEncodeDuration = timer.elapsed }
        guard frame.mode.fourCC == .h264 else { throw .unsupportedInput(frame.mode.fourCC, codec: .h264) }
        let follows = lastSequence.map { frame.sequence == $0 &+ 1 } ?? true
        lastSequence = frame.sequence
        let units = AnnexB.nalUnits(in: frame.bytes)
        let lost = !follows || frame.missedBefore > 0
        guard !units.isEmpty else { withhold(); return nil }
        let data = parameterSets.completing(frame.bytes, units: units)
        // A keyframe is where a viewer can start: an IDR with SPS and PPS, its own or the last
        // ones seen (`completing` put those in front). An IDR before the first parameter sets
        // (a call that started after the camera sent them) is withheld like a P-frame, and
        // viewers wait for a complete one.
        let isKeyframe = parameterSets.isComplete && units.contains { $0.type == AnnexB.NALType.idrSlice }
        if isKeyframe {
            awaitingKeyframe = false
        } else if lost || awaitingKeyframe {
            withhold()
            return nil
        }
        return EncodedFrame(codec: .h264, isKeyframe: isKeyframe, width: frame.mode.size.width,
                            height: frame.mode.size.height, captureTimestamp: frame.timestamp, data: data)
    }

    private func withhold() {
        if !awaitingKeyframe { chainBreaks += 1 }
        awaitingKeyframe = true
    }
}
