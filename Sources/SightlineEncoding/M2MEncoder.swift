internal import CV4L2
internal import Foundation
internal import CYUV
internal import SightlineCamera
import SightlineCore

/// A stateful V4L2 memory-to-memory encoder (the kernel's "stateful encoder interface"), for
/// any coded format the device offers: raw pictures go in on OUTPUT (I420 or NV12, converted
/// with libyuv), coded frames come out on CAPTURE. H.264 on a SoC's hardware block in the
/// daemon (`M2MH264Encoder`); FWHT on vicodec in the kernel lab's tests.
///
/// Each `encode` queues one picture and waits for its coded frame, so frames leave in order
/// and one at a time, as OpenH264's do. Not thread-safe: one owner makes every call.
public final class M2MEncoder {
    public let device: String
    public let coded: FourCC
    public let rawFormat: FourCC
    public private(set) var settings: EncoderSettings
    public private(set) var lastEncodeDuration: Duration?
    /// The driver has `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME`; without it a forced keyframe
    /// restarts the CAPTURE queue, which resets the stream.
    public private(set) var hasForceKeyframeControl = false
    /// The driver has `V4L2_CID_MPEG_VIDEO_BITRATE`; without it bitrate changes are ignored.
    public private(set) var hasBitrateControl = false
    /// How long one frame may take. Generous: the lab's emulated CPU runs vicodec slowly.
    public var frameTimeout: Duration = .seconds(5)

    private var session: M2MSession
    private var wanted: EncoderSettings?
    private var jpegDecoder: JPEGPlaneDecoder?
    /// Capture times of frames in flight, by the microsecond timestamp the driver carries back.
    private var inFlight: [Int64: Duration] = [:]

    /// One coded frame.
    public struct Output: Sendable {
        public let data: [UInt8]
        public let isKeyframe: Bool
        public let captureTimestamp: Duration
    }

    /// Opens `device` and starts it at `settings` (size, rate, bitrate, GOP).
    public init(device: String, rawFormat: FourCC, coded: FourCC, settings: EncoderSettings) throws(EncoderError) {
        let settings = try settings.validated()
        self.device = device
        self.coded = coded
        self.rawFormat = rawFormat
        self.settings = settings
        session = try Self.open(device, rawFormat: rawFormat, coded: coded, settings: settings)
        try configure(settings, starting: true)
    }

    deinit { session.shutDown() }

    /// Settings for the next `encode`: rate, bitrate and GOP change in place, a new size starts
    /// a new session (whose first frame is a keyframe).
    public func update(_ settings: EncoderSettings) { wanted = settings }

    /// Encodes one frame. Nil when the device gave nothing back within `frameTimeout` (the frame
    /// counts as dropped; a late one comes out of the next call).
    public func encode(_ frame: CapturedFrame, forceKeyframe: Bool) throws(EncoderError) -> Output? {
        let timer = EncodeTimer()
        defer { lastEncodeDuration = timer.elapsed }
        var force = forceKeyframe
        if let next = wanted {
            wanted = nil
            force = try apply(next.validated()) || force
        }
        let picture = try scaled(I420Picture.from(frame) { () throws(EncoderError) -> JPEGPlaneDecoder in
            if let jpegDecoder { return jpegDecoder }
            let decoder = try JPEGPlaneDecoder()
            jpegDecoder = decoder
            return decoder
        })
        do throws(CameraError) {
            if force {
                if hasForceKeyframeControl {
                    try session.setControl(CV4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1)
                } else {
                    try session.restartCapture()
                }
            }
            let format = session.outputFormat
            let microseconds = Self.microseconds(frame.timestamp)
            inFlight[microseconds] = frame.timestamp
            try session.queue(timestamp: frame.timestamp, timeout: frameTimeout) { (buffer) throws(CameraError) -> Int in
                try Self.write(picture, as: format, into: buffer, path: device)
            }
            guard let packet = try session.dequeue(timeout: frameTimeout) else { return nil }
            let key = Self.microseconds(packet.timestamp)
            let captured = inFlight.removeValue(forKey: key) ?? packet.timestamp
            // Frames the device never returned must not pile up.
            inFlight = inFlight.filter { $0.key > key }
            return Output(data: packet.data, isKeyframe: packet.isKeyframe || Self.isKeyframe(packet.data, coded: coded),
                          captureTimestamp: captured)
        } catch {
            throw .hardware(error.description)
        }
    }

    /// Stops the encoder (`V4L2_ENC_CMD_STOP`) and returns the frames it still held, up to the
    /// one marked last.
    public func drain() throws(EncoderError) -> [Output] {
        var outputs: [Output] = []
        do throws(CameraError) {
            try session.stopEncoder()
            while let packet = try session.dequeue(timeout: frameTimeout) {
                if !packet.data.isEmpty {
                    let captured = inFlight.removeValue(forKey: Self.microseconds(packet.timestamp)) ?? packet.timestamp
                    outputs.append(Output(data: packet.data, isKeyframe: packet.isKeyframe || Self.isKeyframe(packet.data, coded: coded),
                                          captureTimestamp: captured))
                }
                if packet.isLast { break }
            }
        } catch {
            throw .hardware(error.description)
        }
        return outputs
    }

    // MARK: Settings

    private static func open(_ device: String, rawFormat: FourCC, coded: FourCC, settings: EncoderSettings) throws(EncoderError) -> M2MSession {
        do throws(CameraError) {
            return try M2MSession(path: device, output: rawFormat, capture: coded,
                                  width: settings.width, height: settings.height, codedSide: .capture)
        } catch {
            throw .hardware(error.description)
        }
    }

    /// Sets what the driver has of rate, GOP, bitrate (and for H.264 the profile, no B-frames,
    /// SPS/PPS before every IDR), then starts streaming when `starting`.
    private func configure(_ settings: EncoderSettings, starting: Bool) throws(EncoderError) {
        do throws(CameraError) {
            session.setFrameRate(settings.fps)
            try session.setControl(CV4L2_CID_MPEG_VIDEO_GOP_SIZE, Int64(settings.keyframeInterval))
            hasBitrateControl = try session.setControl(CV4L2_CID_MPEG_VIDEO_BITRATE, Int64(settings.bitrateKbps) * 1000) != nil
            hasForceKeyframeControl = session.controlRange(CV4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME) != nil
            if starting {
                try session.setControl(CV4L2_CID_MPEG_VIDEO_B_FRAMES, 0)
                if coded == .h264 {
                    // V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE: what WebCodecs decodes everywhere.
                    try session.setControl(CV4L2_CID_MPEG_VIDEO_H264_PROFILE, 1)
                    try session.setControl(CV4L2_CID_MPEG_VIDEO_H264_I_PERIOD, Int64(settings.keyframeInterval))
                    // A viewer that joins at an IDR needs the parameter sets in front of it.
                    try session.setControl(CV4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER, 1)
                }
                try session.start()
            }
        } catch {
            throw .hardware(error.description)
        }
    }

    /// Applies new settings; true when a new session started (its first frame is a keyframe).
    private func apply(_ next: EncoderSettings) throws(EncoderError) -> Bool {
        defer { settings = next }
        guard next.width == settings.width, next.height == settings.height else {
            session.shutDown()
            inFlight = [:]
            session = try Self.open(device, rawFormat: rawFormat, coded: coded, settings: next)
            try configure(next, starting: true)
            return true
        }
        try configure(next, starting: false)
        return false
    }

    // MARK: Pictures

    /// The picture at the coded size (libyuv's box filter when the camera's differs).
    private func scaled(_ picture: I420Picture) throws(EncoderError) -> I420Picture {
        guard picture.width != settings.width || picture.height != settings.height else { return picture }
        let width = settings.width, height = settings.height
        let result = picture.bytes.withUnsafeBufferPointer { source in
            I420Picture(width: width, height: height) { y, u, v in
                guard let base = source.baseAddress else { return -1 }
                return I420Scale(base, Int32(picture.width), base + picture.lumaByteCount, Int32(picture.chromaWidth),
                                 base + picture.lumaByteCount + picture.chromaByteCount, Int32(picture.chromaWidth),
                                 Int32(picture.width), Int32(picture.height),
                                 y, Int32(width), u, Int32((width + 1) / 2), v, Int32((width + 1) / 2),
                                 Int32(width), Int32(height), kFilterBox)
            }
        }
        guard let result else { throw .invalidSettings("cannot scale \(picture.width)x\(picture.height) to \(width)x\(height)") }
        return result
    }

    /// Writes `picture` into one OUTPUT buffer laid out as `format` (single plane: luma rows of
    /// `bytesPerLine`, then chroma: I420's U and V at half that stride, NV12's interleaved UV at
    /// the full stride). Returns the bytes used.
    static func write(_ picture: I420Picture, as format: M2MSession.Format, into buffer: UnsafeMutableRawBufferPointer,
                      path: String) throws(CameraError) -> Int {
        let layout = PlaneLayout(format: format)
        guard let base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), let layout, layout.totalBytes <= buffer.count,
              picture.width <= format.width, picture.height <= format.height else {
            throw CameraError.system(operation: "filling a \(format.fourCC) \(format.width)x\(format.height) buffer "
                                     + "(\(format.bytesPerLine) bytes per line, \(buffer.count) mapped) with a \(picture.width)x\(picture.height) picture",
                                     path: path, errno: EINVAL)
        }
        let result = picture.bytes.withUnsafeBufferPointer { source -> Int32 in
            guard let y = source.baseAddress else { return -1 }
            let u = y + picture.lumaByteCount, v = u + picture.chromaByteCount
            let chromaStride = Int32(picture.chromaWidth)
            if format.fourCC == .nv12 {
                return I420ToNV12(y, Int32(picture.width), u, chromaStride, v, chromaStride,
                                  base, Int32(layout.lumaStride), base + layout.chromaOffset, Int32(layout.chromaStride),
                                  Int32(picture.width), Int32(picture.height))
            }
            return I420Copy(y, Int32(picture.width), u, chromaStride, v, chromaStride,
                            base, Int32(layout.lumaStride), base + layout.chromaOffset, Int32(layout.chromaStride),
                            base + layout.secondChromaOffset, Int32(layout.chromaStride),
                            Int32(picture.width), Int32(picture.height))
        }
        guard result == 0 else {
            throw CameraError.system(operation: "converting a picture to \(format.fourCC)", path: path, errno: EINVAL)
        }
        return layout.totalBytes
    }

    /// Whether a coded frame is a keyframe by its own bitstream, for drivers that do not flag
    /// keyframes on the buffer (vicodec's encoder never sets `V4L2_BUF_FLAG_KEYFRAME`): H.264
    /// with an IDR slice, FWHT with `V4L2_FWHT_FL_I_FRAME` in its header's big-endian flags.
    static func isKeyframe(_ data: [UInt8], coded: FourCC) -> Bool {
        switch coded {
        case .h264:
            return AnnexB.nalUnits(in: data).contains { $0.type == 5 }
        case .fwht:
            // struct fwht_cframe_hdr: magic1, magic2, version, width, height, flags, … (32 bits each).
            guard data.count >= 24 else { return false }
            let flags = data[20..<24].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            return flags & Self.fwhtIFrameFlag != 0
        default:
            return false
        }
    }

    /// `V4L2_FWHT_FL_I_FRAME`.
    static let fwhtIFrameFlag: UInt32 = 1 << 10

    private static func microseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }
}

/// Where the planes of a single-plane 4:2:0 buffer lie, from the driver's width, height and
/// luma stride. Pure, so the arithmetic is unit-tested.
struct PlaneLayout: Equatable {
    let lumaStride: Int
    let chromaStride: Int
    let chromaOffset: Int
    /// I420's V plane; equal to `chromaOffset` for NV12, whose chroma is one interleaved plane.
    let secondChromaOffset: Int
    let totalBytes: Int
}

extension PlaneLayout {
    /// Nil for formats other than YU12 and NV12, or a stride narrower than the picture.
    init?(format: M2MSession.Format) {
        let stride = format.bytesPerLine > 0 ? format.bytesPerLine : format.width
        guard stride >= format.width, format.height > 0 else { return nil }
        let chromaRows = (format.height + 1) / 2
        lumaStride = stride
        chromaOffset = stride * format.height
        switch format.fourCC {
        case .nv12:
            chromaStride = stride
            secondChromaOffset = chromaOffset
            totalBytes = chromaOffset + stride * chromaRows
        case FourCC("YU12"):
            chromaStride = (stride + 1) / 2
            secondChromaOffset = chromaOffset + chromaStride * chromaRows
            totalBytes = secondChromaOffset + chromaStride * chromaRows
        default:
            return nil
        }
    }
}

/// The daemon's hardware H.264 path: an `M2MEncoder` behind the `VideoEncoder` protocol.
public final class M2MH264Encoder: VideoEncoder {
    public let codec = VideoCodec.h264
    private let encoder: M2MEncoder

    public init(device: String, rawFormat: FourCC, settings: EncoderSettings) throws(EncoderError) {
        encoder = try M2MEncoder(device: device, rawFormat: rawFormat, coded: .h264, settings: settings)
    }

    public var device: String { encoder.device }
    public var settings: EncoderSettings { encoder.settings }
    public var lastEncodeDuration: Duration? { encoder.lastEncodeDuration }
    public func update(_ settings: EncoderSettings) { encoder.update(settings) }

    public func encode(_ frame: CapturedFrame, forceKeyframe: Bool) throws(EncoderError) -> EncodedFrame? {
        guard let output = try encoder.encode(frame, forceKeyframe: forceKeyframe) else { return nil }
        return EncodedFrame(codec: .h264, isKeyframe: output.isKeyframe, width: encoder.settings.width, height: encoder.settings.height,
                            captureTimestamp: output.captureTimestamp, data: output.data)
    }
}
