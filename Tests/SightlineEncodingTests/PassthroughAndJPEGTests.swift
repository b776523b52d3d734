import SightlineCore
import Testing
@testable import SightlineEncoding

@Suite("Passthrough, JPEG and the encoder factory")
struct PassthroughAndJPEGTests {
    @Test("camera H.264 passes through; keyframes are found by NAL type and made self-contained")
    func passthrough() throws {
        let encoder = PassthroughEncoder(settings: EncoderSettings(width: 1920, height: 1080))
        let idr: [UInt8] = [0, 0, 0, 1, 0x67, 0x64, 0x00, 0x28, 0, 0, 0, 1, 0x68, 0xEE, 0, 0, 0, 1, 0x65, 0x88, 0x80]
        let first = try #require(try encoder.encode(SyntheticFrames.captured(.h264, width: 1920, height: 1080, frame: 0, bytes: idr), forceKeyframe: false))
        #expect(first.isKeyframe && first.codec == .h264 && first.data == idr)
        let delta = try #require(try encoder.encode(SyntheticFrames.captured(.h264, width: 1920, height: 1080, frame: 1, bytes: [0, 0, 1, 0x41, 0x9A]), forceKeyframe: true))
        #expect(!delta.isKeyframe)
        let bare = try #require(try encoder.encode(SyntheticFrames.captured(.h264, width: 1920, height: 1080, frame: 2, bytes: [0, 0, 1, 0x65, 0x88]), forceKeyframe: false))
        #expect(bare.isKeyframe)
        #expect(AnnexB.nalUnits(in: bare.data).map(\.type) == [7, 8, 5])
        #expect(try encoder.encode(SyntheticFrames.captured(.h264, width: 1920, height: 1080, frame: 3, bytes: [1, 2, 3]), forceKeyframe: false) == nil)
        #expect(encoder.lastEncodeDuration != nil)
    }

    @Test("an IDR before any SPS and PPS is withheld like a P-frame; the next complete one goes out as a keyframe")
    func idrWithoutParameterSets() throws {
        let encoder = PassthroughEncoder(settings: EncoderSettings(width: 640, height: 480))
        let bareIDR: [UInt8] = [0, 0, 0, 1, 0x65, 0x88, 0x80]
        #expect(try encoder.encode(SyntheticFrames.captured(.h264, width: 640, height: 480, frame: 0, bytes: bareIDR), forceKeyframe: true) == nil)
        #expect(try encoder.encode(SyntheticFrames.captured(.h264, width: 640, height: 480, frame: 1, bytes: [0, 0, 1, 0x41, 0x9A]), forceKeyframe: false) == nil)
        let complete: [UInt8] = [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88, 0x84]
        let first = try #require(try encoder.encode(SyntheticFrames.captured(.h264, width: 640, height: 480, frame: 2, bytes: complete), forceKeyframe: false))
        #expect(first.isKeyframe && first.data == complete)
        let later = try #require(try encoder.encode(SyntheticFrames.captured(.h264, width: 640, height: 480, frame: 3, bytes: bareIDR), forceKeyframe: false))
        #expect(later.isKeyframe && AnnexB.nalUnits(in: later.data).map(\.type) == [7, 8, 5])
        #expect(encoder.chainBreaks == 0, "waiting for the first keyframe is not a loss")
    }

    @Test("an encoder primed with parameter sets the camera sent before it existed starts at the camera's next bare IDR")
    func primedWithEarlierParameterSets() throws {
        let complete: [UInt8] = [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88, 0x84]
        let bareIDR: [UInt8] = [0, 0, 0, 1, 0x65, 0x88, 0x80]
        var seen = ParameterSetRepeater()
        #expect(!seen.isComplete)
        seen.remember(complete)
        #expect(seen.isComplete)
        let encoder = PassthroughEncoder(settings: EncoderSettings(width: 640, height: 480))
        encoder.prime(with: seen)
        let first = try #require(try encoder.encode(SyntheticFrames.captured(.h264, width: 640, height: 480, frame: 7, bytes: bareIDR), forceKeyframe: false))
        #expect(first.isKeyframe && first.data == complete.prefix(14) + bareIDR)
        // Its own parameter sets are not replaced by older ones primed later.
        let newer: [UInt8] = [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x28, 0, 0, 0, 1, 0x68, 0xCF, 0, 0, 0, 1, 0x65, 0x88, 0x84]
        _ = try encoder.encode(SyntheticFrames.captured(.h264, width: 640, height: 480, frame: 8, bytes: newer), forceKeyframe: false)
        encoder.prime(with: seen)
        let later = try #require(try encoder.encode(SyntheticFrames.captured(.h264, width: 640, height: 480, frame: 9, bytes: bareIDR), forceKeyframe: false))
        #expect(later.data == newer.prefix(14) + bareIDR)
    }

    @Test("after a lost access unit (sequence gap, driver drop, torn buffer) P-frames are withheld until the next keyframe, and each loss is counted once")
    func lostAccessUnits() throws {
        let encoder = PassthroughEncoder(settings: EncoderSettings(width: 640, height: 480))
        let idr: [UInt8] = [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88, 0x84]
        let delta: [UInt8] = [0, 0, 0, 1, 0x41, 0x9A]
        func encode(_ sequence: Int, _ bytes: [UInt8], missedBefore: UInt32 = 0) throws -> EncodedFrame? {
            let frame = SyntheticFrames.captured(.h264, width: 640, height: 480, frame: sequence, bytes: bytes)
            return try encoder.encode(CapturedFrame(mode: frame.mode, sequence: frame.sequence, timestamp: frame.timestamp,
                                                    bytes: bytes, missedBefore: missedBefore), forceKeyframe: false)
        }
        #expect(try encode(0, idr)?.isKeyframe == true)
        #expect(try encode(1, delta) != nil)
        // Frame 2 never reached the encoder (the sender skipped it): 3 and 4 reference it.
        #expect(try encode(3, delta) == nil)
        #expect(try encode(4, delta) == nil)
        #expect(encoder.chainBreaks == 1)
        #expect(try encode(5, idr)?.isKeyframe == true)
        #expect(try encode(6, delta) != nil)
        // The driver dropped a buffer before this one.
        #expect(try encode(7, delta, missedBefore: 1) == nil)
        #expect(encoder.chainBreaks == 2)
        // A keyframe right after a loss needs nothing before it: no frame is withheld, no loss counted.
        #expect(try encode(9, idr)?.isKeyframe == true)
        #expect(try encode(10, delta) != nil)
        #expect(encoder.chainBreaks == 2)
        // A torn buffer with no NAL unit is a loss too.
        #expect(try encode(11, [1, 2, 3]) == nil)
        #expect(try encode(12, delta) == nil)
        #expect(encoder.chainBreaks == 3)
        #expect(try encode(13, idr)?.isKeyframe == true)
    }

    @Test("YUYV compresses to a JPEG of the frame's size; every frame is a keyframe")
    func jpegFromYUYV() throws {
        let encoder = try JPEGVideoEncoder(settings: EncoderSettings(width: 640, height: 480, bitrateKbps: 4000))
        let frame = SyntheticFrames.yuyv(width: 640, height: 480, frame: 0)
        let output = try #require(try encoder.encode(frame, forceKeyframe: false))
        #expect(output.codec == .jpeg && output.isKeyframe)
        #expect(Array(output.data.prefix(2)) == [0xFF, 0xD8])
        let size = try #require(jpegDimensions(output.data))
        #expect(size.width == 640 && size.height == 480)
        #expect((output.width, output.height) == (640, 480))

        encoder.update(EncoderSettings(width: 640, height: 480, bitrateKbps: 300))
        let smaller = try #require(try encoder.encode(frame, forceKeyframe: false))
        #expect(smaller.data.count < output.data.count, "a lower bitrate lowers the JPEG quality")
    }

    @Test("MJPEG passes through without its EXIF segment")
    func mjpegPassthrough() throws {
        let encoder = try JPEGVideoEncoder(settings: EncoderSettings(width: 640, height: 480))
        let compressed = try #require(try encoder.encode(SyntheticFrames.yuyv(width: 640, height: 480, frame: 0), forceKeyframe: false)).data
        // APP1 "Exif" segment inserted after SOI, as cameras add it.
        let exif: [UInt8] = [0xFF, 0xE1, 0x00, 0x08, 0x45, 0x78, 0x69, 0x66, 0x00, 0x00]
        let withExif = Array(compressed[0..<2]) + exif + Array(compressed[2...])
        let output = try #require(try encoder.encode(SyntheticFrames.captured(.mjpeg, width: 640, height: 480, frame: 1, bytes: withExif), forceKeyframe: false))
        #expect(output.data == compressed)
        #expect(throws: EncoderError.malformedFrame(.mjpeg, byteCount: 3, width: 640, height: 480)) {
            try encoder.encode(SyntheticFrames.captured(.mjpeg, width: 640, height: 480, frame: 2, bytes: [1, 2, 3]), forceKeyframe: false)
        }
    }

    @Test("JPEG quality rises with the bits each pixel may spend, within 20…95")
    func jpegQuality() {
        let qualities = [100, 300, 1000, 3000, 10_000, 100_000].map {
            JPEGVideoEncoder.quality(bitrateKbps: $0, width: 1280, height: 720, fps: 30)
        }
        #expect(qualities == qualities.sorted())
        #expect(qualities.first == 20 && qualities.last == 95)
        #expect(JPEGVideoEncoder.quality(bitrateKbps: 2765, width: 1280, height: 720, fps: 30) == 50)  // 0.1 bit/pixel
    }

    @Test("the factory passes camera H.264 through and picks software otherwise")
    func factory() throws {
        let settings = EncoderSettings(width: 640, height: 480)
        #expect(try VideoEncoders.make(for: .h264, preferred: .h264, settings: settings) is PassthroughEncoder)
        #expect(try VideoEncoders.make(for: .yuyv, preferred: .h264, settings: settings) is OpenH264Encoder)
        #expect(try VideoEncoders.make(for: .mjpeg, preferred: .h264, settings: settings) is OpenH264Encoder)
        #expect(try VideoEncoders.make(for: .nv12, preferred: .jpeg, settings: settings) is JPEGVideoEncoder)
        #expect(try VideoEncoders.make(for: .mjpeg, preferred: .jpeg, settings: settings).codec == .jpeg)
        #expect(throws: EncoderError.unsupportedInput(.h264, codec: .jpeg)) {
            try VideoEncoders.make(for: .h264, preferred: .jpeg, settings: settings)
        }
        #expect(VideoCodec.h264.rawValue == 1 && VideoCodec.jpeg.rawValue == 2)
    }
}
