internal import Foundation
internal import SightlineCamera
import SightlineCore

/// Motion JPEG for the low-bandwidth and stills path: every frame stands alone, so each one is
/// a keyframe and a lost frame costs nothing later.
///
/// MJPEG camera frames pass through with their APP1…APP15 segments removed (EXIF can carry
/// location); YUYV and NV12 are compressed by the camera module's turbojpeg `JPEGEncoder` at a
/// quality that fits the bitrate. Scaling is not done here: JPEG frames keep the camera's size.
public final class JPEGVideoEncoder: VideoEncoder {
    public let codec = VideoCodec.jpeg
    public private(set) var settings: EncoderSettings
    public private(set) var lastEncodeDuration: Duration?
    private var compressor: JPEGEncoder?

    public init(settings: EncoderSettings) throws(EncoderError) {
        self.settings = try settings.validated()
    }

    public func update(_ settings: EncoderSettings) {
        self.settings = settings
    }

    /// `forceKeyframe` is moot: every JPEG is a keyframe.
    public func encode(_ frame: CapturedFrame, forceKeyframe: Bool) throws(EncoderError) -> EncodedFrame? {
        let timer = EncodeTimer()
        defer { lastEncodeDuration = timer.elapsed }
        let fourCC = frame.mode.fourCC, size = frame.mode.size
        let malformed = EncoderError.malformedFrame(fourCC, byteCount: frame.bytes.count, width: size.width, height: size.height)
        let data: [UInt8]
        switch fourCC {
        case .mjpeg, .jpeg:
            guard let clean = JPEGMetadata.strippingMetadata(frame.bytes) else { throw malformed }
            data = clean
        case .yuyv:
            guard let planes = PlanarYUV.fromYUYV(frame.bytes, width: size.width, height: size.height) else { throw malformed }
            data = try compress(planes)
        case .nv12:
            guard let planes = PlanarYUV.fromNV12(frame.bytes, width: size.width, height: size.height) else { throw malformed }
            data = try compress(planes)
        default:
            throw .unsupportedInput(fourCC, codec: .jpeg)
        }
        return EncodedFrame(codec: .jpeg, isKeyframe: true, width: size.width, height: size.height,
                            captureTimestamp: frame.timestamp, data: data)
    }

    private func compress(_ planes: PlanarYUV) throws(EncoderError) -> [UInt8] {
        let quality = Self.quality(bitrateKbps: settings.bitrateKbps, width: planes.width, height: planes.height, fps: settings.fps)
        do throws(JPEGEncoder.Failure) {
            let compressor: JPEGEncoder
            if let existing = self.compressor {
                compressor = existing
            } else {
                compressor = try JPEGEncoder()
                self.compressor = compressor
            }
            return try compressor.encode(planes, quality: quality)
        } catch {
            throw .jpeg(error.description)
        }
    }

    /// A JPEG quality (20…95) for the bits each pixel may spend: about 0.1 bit/pixel gives
    /// quality 50, each doubling adds 12. JPEG has no rate control, so this is a starting
    /// point, not a guarantee; the stream's pacing drops frames when it still overshoots.
    public static func quality(bitrateKbps: Int, width: Int, height: Int, fps: Double) -> Int32 {
        let pixelsPerSecond = Double(max(width * height, 1)) * max(fps, 1)
        let bitsPerPixel = Double(max(bitrateKbps, 1)) * 1000 / pixelsPerSecond
        let quality = 50 + 12 * log2(bitsPerPixel / 0.1)
        return Int32(min(max(quality.rounded(), 20), 95))
    }
}
