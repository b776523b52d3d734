import SightlineCore
import Testing
@testable import SightlineEncoding

/// The hardware-encoder decisions without hardware: which M2M node the probe picks, why it
/// passes over the others, where the planes of an OUTPUT buffer lie, and the fallback to
/// OpenH264. The encoder itself runs against vicodec in the kernel lab (M2MLabTests).
@Suite("V4L2 M2M probe and buffer layout")
struct M2MProbeTests {
    static let yu12 = FourCC("YU12")
    static let vicodec = M2MDeviceDescription(path: "/dev/video4", driver: "vicodec", name: "stateful-encoder", multiplanar: true,
                                              outputFormats: [yu12, .nv12, .yuyv], captureFormats: [.fwht])
    static let vicodecDecoder = M2MDeviceDescription(path: "/dev/video5", driver: "vicodec", name: "stateful-decoder", multiplanar: true,
                                                     outputFormats: [.fwht], captureFormats: [yu12, .nv12])
    static let venus = M2MDeviceDescription(path: "/dev/video7", driver: "qcom-venus", name: "qcom-venus-encoder", multiplanar: true,
                                            outputFormats: [.nv12], captureFormats: [.h264, FourCC("HEVC")])

    @Test("an H.264 encoder is chosen with the raw format it takes; I420 before NV12")
    func choosesH264() {
        #expect(M2MProbe.choose(from: [Self.vicodec, Self.vicodecDecoder, Self.venus], coded: .h264) == .found(Self.venus, rawFormat: .nv12))
        #expect(M2MProbe.choose(from: [Self.vicodec], coded: .fwht) == .found(Self.vicodec, rawFormat: Self.yu12))
    }

    @Test("no fitting node: the reason names every node passed over and why")
    func explainsNone() {
        let singlePlanar = M2MDeviceDescription(path: "/dev/video9", driver: "coda", name: "coda-encoder", multiplanar: false,
                                                outputFormats: [Self.yu12], captureFormats: [.h264])
        let rgbOnly = M2MDeviceDescription(path: "/dev/video10", driver: "odd", name: "odd", multiplanar: true,
                                           outputFormats: [FourCC("RGB3")], captureFormats: [.h264])
        let result = M2MProbe.choose(from: [Self.vicodec, Self.vicodecDecoder, singlePlanar, rgbOnly], coded: .h264)
        #expect(result.device == nil)
        #expect(result.description == "no V4L2 M2M H264 encoder: /dev/video4 (vicodec) codes FWHT, not H264; "
            + "/dev/video5 (vicodec) codes YU12, NV12, not H264; /dev/video9 (coda) has only the single-planar M2M API; "
            + "/dev/video10 (odd) takes RGB3, neither YU12 nor NV12")
        #expect(M2MProbe.choose(from: [], coded: .h264) == .none(reason: "no V4L2 M2M H264 encoder: there is no V4L2 memory-to-memory device"))
    }

    @Test("plane layout follows the driver's stride and height: I420 halves it for U and V, NV12 interleaves at full stride")
    func planeLayout() throws {
        let i420 = try #require(PlaneLayout(format: .init(fourCC: Self.yu12, width: 640, height: 480, bytesPerLine: 640, sizeImage: 460_800)))
        #expect(i420 == PlaneLayout(lumaStride: 640, chromaStride: 320, chromaOffset: 307_200, secondChromaOffset: 384_000, totalBytes: 460_800))
        // A driver that pads rows to 64 bytes and rounds the height up to 16 lines (1080 -> 1088).
        let nv12 = try #require(PlaneLayout(format: .init(fourCC: .nv12, width: 1920, height: 1088, bytesPerLine: 1984, sizeImage: 0)))
        #expect(nv12 == PlaneLayout(lumaStride: 1984, chromaStride: 1984, chromaOffset: 1984 * 1088, secondChromaOffset: 1984 * 1088,
                                    totalBytes: 1984 * 1088 * 3 / 2))
        #expect(PlaneLayout(format: .init(fourCC: .yuyv, width: 640, height: 480, bytesPerLine: 1280, sizeImage: 0)) == nil)
        #expect(PlaneLayout(format: .init(fourCC: .nv12, width: 640, height: 480, bytesPerLine: 320, sizeImage: 0)) == nil)
    }

    @Test("the factory falls back to OpenH264 and says why: no hardware, or hardware that cannot be opened")
    func fallback() throws {
        let settings = EncoderSettings(width: 640, height: 480)
        let none = try VideoEncoders.choose(for: .yuyv, preferred: .h264, settings: settings,
                                            hardware: M2MProbe.choose(from: [Self.vicodec], coded: .h264))
        #expect(none.encoder is OpenH264Encoder)
        #expect(none.explanation == "software H.264 (OpenH264): no V4L2 M2M H264 encoder: /dev/video4 (vicodec) codes FWHT, not H264")
        let gone = M2MDeviceDescription(path: "/nonexistent/video0", driver: "gone", name: "gone", multiplanar: true,
                                        outputFormats: [.nv12], captureFormats: [.h264])
        let refused = try VideoEncoders.choose(for: .nv12, preferred: .h264, settings: settings, hardware: .found(gone, rawFormat: .nv12))
        #expect(refused.encoder is OpenH264Encoder)
        #expect(refused.explanation.hasPrefix("software H.264 (OpenH264): the V4L2 M2M encoder /nonexistent/video0 (gone) refused: "),
                "\(refused.explanation)")
        #expect(try VideoEncoders.choose(for: .h264, preferred: .h264, settings: settings, hardware: .found(gone, rawFormat: .nv12)).encoder
            is PassthroughEncoder)
    }
}

extension M2MProbeTests {
    @Test("keyframes are recognised from the bitstream where the driver does not flag them: H.264 IDR, FWHT I-frame flag")
    func keyframeFromBitstream() {
        let idr: [UInt8] = [0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 1, 0x65, 0x88]
        let slice: [UInt8] = [0, 0, 0, 1, 0x41, 0x9A, 0x02]
        #expect(M2MEncoder.isKeyframe(idr, coded: .h264) && !M2MEncoder.isKeyframe(slice, coded: .h264))
        // vicodec's header: two magic words, version, width, height, then the flags (big-endian).
        func fwht(flags: UInt32) -> [UInt8] {
            let words: [UInt32] = [0x4F4F_4F4F, 0xFFFF_FFFF, 3, 640, 480, flags, 0, 0, 0, 0, 100]
            return words.flatMap { word in (0..<4).reversed().map { UInt8(truncatingIfNeeded: word >> ($0 * 8)) } }
        }
        #expect(M2MEncoder.isKeyframe(fwht(flags: 1 << 10 | 1 << 7), coded: .fwht))
        #expect(!M2MEncoder.isKeyframe(fwht(flags: 1 << 7), coded: .fwht))
        #expect(!M2MEncoder.isKeyframe(Array(fwht(flags: 1 << 10).prefix(20)), coded: .fwht))
    }
}
