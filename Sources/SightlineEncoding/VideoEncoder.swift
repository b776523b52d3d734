import SightlineCore

/// The codec of an encoded frame. The raw values go on the wire, so they never change.
public enum VideoCodec: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case h264 = 1
    case jpeg = 2

    public var description: String {
        switch self {
        case .h264: "H.264"
        case .jpeg: "JPEG"
        }
    }
}

/// One compressed picture, ready to seal and send.
public struct EncodedFrame: Sendable {
    public let codec: VideoCodec
    /// A viewer can start decoding here: an H.264 IDR with its SPS and PPS in front, or any JPEG.
    public let isKeyframe: Bool
    public let width: Int
    public let height: Int
    /// The driver's capture time on CLOCK_MONOTONIC, carried over from `CapturedFrame.timestamp`.
    public let captureTimestamp: Duration
    /// H.264: one access unit in Annex-B (start codes included). JPEG: one complete JPEG file.
    public let data: [UInt8]

    public init(codec: VideoCodec, isKeyframe: Bool, width: Int, height: Int, captureTimestamp: Duration, data: [UInt8]) {
        self.codec = codec
        self.isKeyframe = isKeyframe
        self.width = width
        self.height = height
        self.captureTimestamp = captureTimestamp
        self.data = data
    }
}

/// What an encoder aims for. Every field can change while streaming (`VideoEncoder.update`).
public struct EncoderSettings: Sendable, Equatable {
    /// The coded picture size. OpenH264 scales larger camera frames down to it.
    public var width: Int
    public var height: Int
    public var fps: Double
    public var bitrateKbps: Int
    /// Frames between periodic IDRs. Long, because viewers that join ask for a keyframe
    /// (`forceKeyframe`) and every IDR costs several P frames of bandwidth.
    public var keyframeInterval: Int

    /// Ten seconds at 30 fps.
    public static let defaultKeyframeInterval = 300

    public init(width: Int, height: Int, fps: Double = 30, bitrateKbps: Int = 2000,
                keyframeInterval: Int = EncoderSettings.defaultKeyframeInterval) {
        self.width = width
        self.height = height
        self.fps = fps
        self.bitrateKbps = bitrateKbps
        self.keyframeInterval = keyframeInterval
    }

    /// The ranges OpenH264 accepts (`MIN_FRAME_RATE`/`MAX_FRAME_RATE`, even sizes for 4:2:0).
    func validated() throws(EncoderError) -> EncoderSettings {
        guard width >= 16, height >= 16, width % 2 == 0, height % 2 == 0, width <= 4096, height <= 4096 else {
            throw .invalidSettings("size \(width)x\(height) must be even and between 16x16 and 4096x4096")
        }
        guard fps >= 1, fps <= 60 else { throw .invalidSettings("frame rate \(fps) must be between 1 and 60 fps") }
        guard bitrateKbps >= 10, bitrateKbps <= 100_000 else {
            throw .invalidSettings("bitrate \(bitrateKbps) kbps must be between 10 and 100000 kbps")
        }
        guard keyframeInterval >= 1 else {
            throw .invalidSettings("keyframe interval \(keyframeInterval) must be at least 1 frame")
        }
        return self
    }
}

/// Turns captured frames into frames for the wire.
///
/// An encoder holds C state that is not thread-safe, so it is deliberately not `Sendable`:
/// one actor or capture thread owns it and makes every call.
public protocol VideoEncoder: AnyObject {
    var codec: VideoCodec { get }
    /// The settings the next `encode` works with.
    var settings: EncoderSettings { get }
    /// Wall time the last `encode` took, input conversion included; nil before the first.
    var lastEncodeDuration: Duration? { get }

    /// Encodes one frame. Returns nil when the encoder drops the frame to hold the bitrate.
    /// - Parameter forceKeyframe: a viewer joined or lost data; the next emitted frame is a keyframe.
    func encode(_ frame: CapturedFrame, forceKeyframe: Bool) throws(EncoderError) -> EncodedFrame?

    /// Takes new settings. They apply at the next `encode`, which reports a failure to apply them;
    /// bitrate, frame rate and keyframe interval change in place, a new size may start a new
    /// stream with an IDR.
    func update(_ settings: EncoderSettings)
}

/// Why encoding failed, in words an operator can act on.
public enum EncoderError: Error, Equatable, CustomStringConvertible {
    /// The encoder cannot take frames in this pixel format.
    case unsupportedInput(FourCC, codec: VideoCodec)
    /// A frame is shorter than its format and size need, or its JPEG is damaged.
    case malformedFrame(FourCC, byteCount: Int, width: Int, height: Int)
    case invalidSettings(String)
    /// OpenH264 refused to start (`WelsCreateSVCEncoder`/`InitializeExt` result code).
    case initializationFailed(code: Int32, width: Int, height: Int)
    /// OpenH264 rejected a runtime change (`SetOption` result code).
    case optionRejected(String, code: Int32)
    /// `EncodeFrame` failed.
    case encodeFailed(code: Int32)
    /// libturbojpeg failed, with its message.
    case jpeg(String)
    /// The V4L2 memory-to-memory encoder failed, with the request and the driver's error.
    case hardware(String)

    public var description: String {
        switch self {
        case let .unsupportedInput(fourCC, codec):
            "the \(codec) encoder cannot take \(fourCC) frames; set camera.format_preference to yuyv, nv12 or mjpeg"
                + (codec == .jpeg ? ", or stream H.264" : "")
        case let .malformedFrame(fourCC, byteCount, width, height):
            "a \(fourCC) frame of \(byteCount) bytes does not hold a \(width)x\(height) picture; "
                + "the camera or its driver delivered a damaged frame (check the cable and dmesg)"
        case let .invalidSettings(reason):
            "invalid encoder settings: \(reason); fix the stream settings"
        case let .initializationFailed(code, width, height):
            "OpenH264 could not start an encoder for \(width)x\(height) (error \(code)); "
                + "try a smaller size or check that libopenh264 is installed and not corrupted"
        case let .optionRejected(option, code):
            "OpenH264 rejected the new \(option) (error \(code)); the encoder keeps its previous value"
        case let .encodeFailed(code):
            "OpenH264 failed to encode a frame (error \(code)); the stream restarts at the next keyframe"
        case let .jpeg(message):
            "libturbojpeg: \(message)"
        case let .hardware(message):
            "the V4L2 hardware encoder failed: \(message); the driver explains more in dmesg"
        }
    }
}

/// `YU12`: planar I420, which test patterns and some capture paths deliver.
extension FourCC {
    public static let i420 = FourCC("YU12")
}

/// Times one encode, for `lastEncodeDuration`.
struct EncodeTimer {
    private let start = ContinuousClock.now
    var elapsed: Duration { ContinuousClock.now - start }
}
