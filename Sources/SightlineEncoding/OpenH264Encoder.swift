internal import COpenH264
import SightlineCore

/// Software H.264 with Cisco's OpenH264, tuned for live viewing rather than storage:
/// constrained baseline (every browser and phone decodes it), CAVLC, one reference frame,
/// no B-frames, one slice, one thread, and SPS + PPS in front of every IDR so a viewer can
/// join at any keyframe.
///
/// Not `Sendable`: OpenH264 state must be driven from one thread, so one owner makes every call.
public final class OpenH264Encoder: VideoEncoder {
    public let codec = VideoCodec.h264
    public private(set) var settings: EncoderSettings
    public private(set) var lastEncodeDuration: Duration?

    private var session: OpenH264Session
    /// What `session` runs with; differs from `settings` between `update` and the next `encode`.
    private var applied: EncoderSettings
    /// Set by `forceKeyframe` until an IDR comes out: rate control may skip the frame that was asked for.
    private var keyframePending = false
    private var jpegDecoder: JPEGPlaneDecoder?

    public init(settings: EncoderSettings) throws(EncoderError) {
        let settings = try settings.validated()
        session = try OpenH264Session(settings)
        self.settings = settings
        applied = settings
    }

    public func update(_ settings: EncoderSettings) {
        self.settings = settings
    }

    /// Takes YUYV, NV12, I420 (`YU12`) and MJPEG frames. A frame larger than the settings'
    /// size is scaled down to it by OpenH264 (so choose a size with the camera's aspect ratio);
    /// a smaller one restarts the encoder at the frame's size.
    public func encode(_ frame: CapturedFrame, forceKeyframe: Bool) throws(EncoderError) -> EncodedFrame? {
        let timer = EncodeTimer()
        defer { lastEncodeDuration = timer.elapsed }
        let picture = try I420Picture.from(frame) { () throws(EncoderError) -> JPEGPlaneDecoder in
            if let jpegDecoder { return jpegDecoder }
            let decoder = try JPEGPlaneDecoder()
            jpegDecoder = decoder
            return decoder
        }
        try apply(settings, pictureWidth: picture.width, pictureHeight: picture.height)
        if forceKeyframe || keyframePending {
            try session.forceIDR()
            keyframePending = true
        }
        guard let output = try session.encode(picture, timestamp: frame.timestamp) else { return nil }
        if output.isIDR { keyframePending = false }
        return EncodedFrame(codec: .h264, isKeyframe: output.isIDR, width: session.width, height: session.height,
                            captureTimestamp: frame.timestamp, data: output.data)
    }

    /// Brings the session in line with `wanted`: a new size (or a picture smaller than the
    /// coded size, which OpenH264 cannot scale up) starts a new session with an IDR; bitrate,
    /// frame rate and keyframe interval change in place.
    /// On a failure `settings` falls back to what runs, so the error is reported once.
    private func apply(_ wanted: EncoderSettings, pictureWidth: Int, pictureHeight: Int) throws(EncoderError) {
        var target = wanted
        if pictureWidth < target.width || pictureHeight < target.height {
            target.width = pictureWidth & ~1
            target.height = pictureHeight & ~1
        }
        guard target != applied else { return }
        do {
            let valid = try target.validated()
            if valid.width != applied.width || valid.height != applied.height {
                session = try OpenH264Session(valid)
                applied = valid
                return
            }
            if valid.bitrateKbps != applied.bitrateKbps {
                try session.setBitrate(kbps: valid.bitrateKbps)
                applied.bitrateKbps = valid.bitrateKbps
            }
            if valid.fps != applied.fps {
                try session.setFrameRate(valid.fps)
                applied.fps = valid.fps
            }
            if valid.keyframeInterval != applied.keyframeInterval {
                try session.setKeyframeInterval(valid.keyframeInterval)
                applied.keyframeInterval = valid.keyframeInterval
            }
        } catch {
            var fallback = applied
            // A smaller camera picture is a fact of the input, not a setting to roll back.
            if target.width != wanted.width || target.height != wanted.height {
                fallback.width = wanted.width
                fallback.height = wanted.height
            }
            settings = fallback
            throw error
        }
    }
}

/// Owns one OpenH264 encoder from `WelsCreateSVCEncoder`; `deinit` uninitializes and destroys it.
/// The handle never leaves this type.
struct OpenH264Session: ~Copyable {
    private let handle: UnsafeMutablePointer<ISVCEncoder?>
    let width: Int
    let height: Int

    init(_ settings: EncoderSettings) throws(EncoderError) {
        var created: UnsafeMutablePointer<ISVCEncoder?>?
        let code = WelsCreateSVCEncoder(&created)
        guard code == 0, let created else {
            throw .initializationFailed(code: code, width: settings.width, height: settings.height)
        }
        // OpenH264 warns on stderr per frame at its default level; the daemon's journal wants errors only.
        var traceLevel = Int32(WELS_LOG_ERROR)
        var parameters = SEncParamExt()
        var result = copenh264_encoder_set_option(created, ENCODER_OPTION_TRACE_LEVEL, &traceLevel)
        if result == 0 { result = copenh264_encoder_default_params(created, &parameters) }
        if result == 0 {
            Self.configure(&parameters, for: settings)
            result = copenh264_encoder_initialize(created, &parameters)
        }
        var format = Int32(videoFormatI420.rawValue)
        if result == 0 { result = copenh264_encoder_set_option(created, ENCODER_OPTION_DATAFORMAT, &format) }
        guard result == 0 else {
            WelsDestroySVCEncoder(created)
            throw .initializationFailed(code: result, width: settings.width, height: settings.height)
        }
        handle = created
        width = settings.width
        height = settings.height
    }

    deinit {
        // Nothing to do about a failed Uninitialize: the handle is destroyed either way.
        _ = copenh264_encoder_uninitialize(handle)
        WelsDestroySVCEncoder(handle)
    }

    /// `SEncParamExt` for live viewing; each choice that departs from OpenH264's defaults says why.
    private static func configure(_ parameters: inout SEncParamExt, for settings: EncoderSettings) {
        parameters.iUsageType = CAMERA_VIDEO_REAL_TIME
        parameters.iPicWidth = Int32(settings.width)
        parameters.iPicHeight = Int32(settings.height)
        parameters.iTargetBitrate = Int32(settings.bitrateKbps * 1000)
        parameters.iMaxBitrate = COPENH264_UNSPECIFIED_BIT_RATE
        // RC_BITRATE_MODE is OpenH264's real-time rate control: it holds the target per second
        // window. RC_QUALITY_MODE lets the size float with scene content; RC_BUFFERBASED and
        // RC_TIMESTAMP are for bursty screen sharing. There is no RC_LOW_BW in OpenH264.
        parameters.iRCMode = RC_BITRATE_MODE
        // Frame skip on: when a scene change overshoots the budget, dropping a frame costs one
        // frame of motion, while sending it anyway queues on a thin uplink and delays every
        // later frame for every viewer.
        parameters.bEnableFrameSkip = true
        parameters.fMaxFrameRate = Float(settings.fps)
        parameters.iTemporalLayerNum = 1
        parameters.iSpatialLayerNum = 1
        parameters.uiIntraPeriod = UInt32(settings.keyframeInterval)
        // One reference frame: the least decoder memory and the shortest recovery after a loss.
        parameters.iNumRefFrame = 1
        // IDs stay 0 and every IDR carries its own SPS and PPS, so a viewer can start at any IDR.
        parameters.eSpsPpsIdStrategy = CONSTANT_ID
        // Prefix NALs (type 14) and SSEI only serve SVC decoders.
        parameters.bPrefixNalAddingCtrl = false
        parameters.bEnableSSEI = false
        parameters.bSimulcastAVC = false
        parameters.iPaddingFlag = 0
        parameters.iEntropyCodingModeFlag = 0  // CAVLC: CABAC is not allowed in baseline.
        // OpenH264's default, stated because it matters: 720p in about 6 ms on a shared core.
        parameters.iComplexityMode = LOW_COMPLEXITY
        // One thread: with one slice per picture a second thread measured no faster, and the
        // daemon shares its few cores with capture, audio and crypto.
        parameters.iMultipleThreadIdc = 1
        parameters.bEnableLongTermReference = false
        // Scene-change detection off: on sensor noise or fast texture it fired an IDR every 17
        // frames (measured at 320x240), each several P frames in size. Keyframes come from the
        // interval and from viewers' requests; P frames code changed areas as intra blocks anyway.
        parameters.bEnableSceneChangeDetect = false
        parameters.bEnableDenoise = false  // Costs CPU; camera ISPs denoise already.
        parameters.bEnableFrameCroppingFlag = true  // 1080 is not a multiple of 16.
        parameters.iLoopFilterDisableIdc = 0

        parameters.sSpatialLayers.0.iVideoWidth = Int32(settings.width)
        parameters.sSpatialLayers.0.iVideoHeight = Int32(settings.height)
        parameters.sSpatialLayers.0.fFrameRate = Float(settings.fps)
        parameters.sSpatialLayers.0.iSpatialBitrate = Int32(settings.bitrateKbps * 1000)
        parameters.sSpatialLayers.0.iMaxSpatialBitrate = COPENH264_UNSPECIFIED_BIT_RATE
        parameters.sSpatialLayers.0.uiProfileIdc = PRO_BASELINE
        parameters.sSpatialLayers.0.uiLevelIdc = LEVEL_UNKNOWN  // OpenH264 picks the lowest level that fits.
        parameters.sSpatialLayers.0.sSliceArgument.uiSliceMode = SM_SINGLE_SLICE
    }

    /// The next encoded frame will be an IDR (`ForceIntraFrame(true)`).
    func forceIDR() throws(EncoderError) {
        let result = copenh264_encoder_force_idr(handle)
        guard result == 0 else { throw .optionRejected("keyframe request", code: result) }
    }

    /// `SetOption(ENCODER_OPTION_BITRATE)` for all spatial layers.
    func setBitrate(kbps: Int) throws(EncoderError) {
        var info = SBitrateInfo(iLayer: SPATIAL_LAYER_ALL, iBitrate: Int32(kbps * 1000))
        let result = copenh264_encoder_set_option(handle, ENCODER_OPTION_BITRATE, &info)
        guard result == 0 else { throw .optionRejected("bitrate of \(kbps) kbps", code: result) }
    }

    /// `SetOption(ENCODER_OPTION_FRAME_RATE)`: rate control spreads the bitrate over this many frames.
    func setFrameRate(_ fps: Double) throws(EncoderError) {
        var rate = Float(fps)
        let result = copenh264_encoder_set_option(handle, ENCODER_OPTION_FRAME_RATE, &rate)
        guard result == 0 else { throw .optionRejected("frame rate of \(fps) fps", code: result) }
    }

    /// `SetOption(ENCODER_OPTION_IDR_INTERVAL)`; counts from the last IDR.
    func setKeyframeInterval(_ frames: Int) throws(EncoderError) {
        var interval = Int32(frames)
        let result = copenh264_encoder_set_option(handle, ENCODER_OPTION_IDR_INTERVAL, &interval)
        guard result == 0 else { throw .optionRejected("keyframe interval of \(frames) frames", code: result) }
    }

    /// One access unit: every layer's NAL units (Annex-B start codes included) copied out of the
    /// encoder's buffers, which it reuses on the next call. Nil when rate control skipped the frame.
    func encode(_ picture: I420Picture, timestamp: Duration) throws(EncoderError) -> (data: [UInt8], isIDR: Bool)? {
        var info = SFrameBSInfo()
        let milliseconds = timestamp.components.seconds * 1000 + timestamp.components.attoseconds / 1_000_000_000_000_000
        let result = picture.bytes.withUnsafeBufferPointer { planes in
            // OpenH264 reads the source only; its C signature is not const-correct.
            let y = planes.baseAddress.map { UnsafeMutablePointer(mutating: $0) }
            let u = y.map { $0 + picture.lumaByteCount }, v = u.map { $0 + picture.chromaByteCount }
            var source = SSourcePicture()
            source.iColorFormat = Int32(videoFormatI420.rawValue)
            source.iPicWidth = Int32(picture.width)
            source.iPicHeight = Int32(picture.height)
            source.iStride = (Int32(picture.width), Int32(picture.chromaWidth), Int32(picture.chromaWidth), 0)
            source.pData = (y, u, v, nil)
            source.uiTimeStamp = milliseconds
            return copenh264_encoder_encode(handle, &source, &info)
        }
        guard result == 0 else { throw .encodeFailed(code: result) }
        guard info.eFrameType != videoFrameTypeSkip, info.eFrameType != videoFrameTypeInvalid else { return nil }
        var data: [UInt8] = []
        data.reserveCapacity(Int(max(info.iFrameSizeInBytes, 0)))
        let layerCount = min(Int(info.iLayerNum), Int(COPENH264_MAX_LAYER_NUM_OF_FRAME))
        for index in 0..<layerCount {
            guard let layer = copenh264_frame_layer(&info, Int32(index))?.pointee,
                  let buffer = layer.pBsBuf, let lengths = layer.pNalLengthInByte, layer.iNalCount > 0 else { continue }
            let byteCount = (0..<Int(layer.iNalCount)).reduce(0) { $0 + max(Int(lengths[$1]), 0) }
            data.append(contentsOf: UnsafeBufferPointer(start: buffer, count: byteCount))
        }
        guard !data.isEmpty else { return nil }
        return (data, info.eFrameType == videoFrameTypeIDR)
    }
}
