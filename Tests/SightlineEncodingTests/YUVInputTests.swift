import SightlineCore
import SightlineTesting
import Testing
@testable import SightlineEncoding

@Suite("YUYV and NV12 input to H.264")
struct YUVInputTests {
    static let width = 1280, height = 720

    /// Wall time of the input conversion alone (`I420Picture.from`), in a debug build like the tests'.
    private func conversionTime(_ frame: CapturedFrame) throws -> Duration {
        let start = ContinuousClock.now
        _ = try I420Picture.from(frame) { () throws(EncoderError) -> JPEGPlaneDecoder in throw .jpeg("no MJPEG here") }
        return ContinuousClock.now - start
    }

    @Test("720p packed input encodes and decodes back to its luma and 4:2:0 chroma; encode time is logged",
          arguments: [FourCC.yuyv, .nv12])
    func packedInputRoundTrip(_ fourCC: FourCC) throws {
        let frameCount = 20
        let inputs = (0..<frameCount).map { index in
            fourCC == .yuyv ? SyntheticFrames.yuyv(width: Self.width, height: Self.height, frame: index)
                            : SyntheticFrames.nv12(width: Self.width, height: Self.height, frame: index)
        }
        let encoder = try OpenH264Encoder(settings: EncoderSettings(width: Self.width, height: Self.height, bitrateKbps: 3000))
        let decoder = try H264TestDecoder()
        var encodeTimes: [Duration] = [], conversionTimes: [Duration] = []
        var worstLuma = 0.0, worstChroma = 0.0, decodedCount = 0
        for (index, input) in inputs.enumerated() {
            conversionTimes.append(try conversionTime(input))
            let output = try encoder.encode(input, forceKeyframe: false)
            encodeTimes.append(try #require(encoder.lastEncodeDuration))
            guard let output, let picture = try decoder.decode(output.data) else { continue }
            decodedCount += 1
            #expect((picture.width, picture.height) == (Self.width, Self.height))
            let expectedU = fourCC == .yuyv
                ? SyntheticFrames.yuyvChroma420(width: Self.width, height: Self.height, frame: index, phase: 0)
                : SyntheticFrames.chroma420(width: Self.width, height: Self.height, frame: index, phase: 0)
            let expectedV = fourCC == .yuyv
                ? SyntheticFrames.yuyvChroma420(width: Self.width, height: Self.height, frame: index, phase: 64)
                : SyntheticFrames.chroma420(width: Self.width, height: Self.height, frame: index, phase: 64)
            worstLuma = max(worstLuma, meanAbsoluteDifference(picture.luma, SyntheticFrames.lumaPlane(width: Self.width, height: Self.height, frame: index)))
            worstChroma = max(worstChroma, meanAbsoluteDifference(picture.u, expectedU), meanAbsoluteDifference(picture.v, expectedV))
        }
        print("OpenH264 720p \(fourCC): encode p50 \(medianMilliseconds(encodeTimes)) ms, input conversion p50 "
              + "\(medianMilliseconds(conversionTimes)) ms over \(frameCount) frames (debug build); "
              + "worst luma MAD \(worstLuma), worst chroma MAD \(worstChroma)")
        #expect(decodedCount >= frameCount - 2, "rate control skipped \(frameCount - decodedCount) of \(frameCount) frames")
        #expect(worstLuma < 6, "decoded luma is \(worstLuma) levels off on average")
        // U and V differ by about 4 levels in the fixture, so swapped planes fail this.
        #expect(worstChroma < 2.5, "decoded chroma is \(worstChroma) levels off on average")
    }

    private func planes(_ picture: I420Picture) -> (y: [UInt8], u: [UInt8], v: [UInt8]) {
        let lumaEnd = picture.lumaByteCount, uEnd = lumaEnd + picture.chromaByteCount
        return (Array(picture.bytes[..<lumaEnd]), Array(picture.bytes[lumaEnd..<uEnd]), Array(picture.bytes[uEnd..<(uEnd + picture.chromaByteCount)]))
    }

    private func noJPEG() throws(EncoderError) -> JPEGPlaneDecoder { throw .jpeg("no MJPEG here") }

    @Test("libyuv converts YUYV and NV12 exactly: luma as is, YUYV chroma averaged over row pairs, U before V")
    func exactConversion() throws {
        let width = 96, height = 54
        let yuyv = planes(try I420Picture.from(SyntheticFrames.yuyv(width: width, height: height, frame: 3), jpegDecoder: noJPEG))
        #expect(yuyv.y == SyntheticFrames.lumaPlane(width: width, height: height, frame: 3))
        #expect(yuyv.u == SyntheticFrames.yuyvChroma420(width: width, height: height, frame: 3, phase: 0))
        #expect(yuyv.v == SyntheticFrames.yuyvChroma420(width: width, height: height, frame: 3, phase: 64))

        let nv12 = planes(try I420Picture.from(SyntheticFrames.nv12(width: width, height: height, frame: 3), jpegDecoder: noJPEG))
        #expect(nv12.y == SyntheticFrames.lumaPlane(width: width, height: height, frame: 3))
        #expect(nv12.u == SyntheticFrames.chroma420(width: width, height: height, frame: 3, phase: 0))
        #expect(nv12.v == SyntheticFrames.chroma420(width: width, height: height, frame: 3, phase: 64))

        let i420Frame = SyntheticFrames.i420(width: width, height: height, frame: 3)
        let i420 = try I420Picture.from(i420Frame, jpegDecoder: noJPEG)
        #expect(i420.bytes == i420Frame.bytes)
    }

    @Test("an odd height keeps its last row: YUYV's last chroma row comes from that row alone")
    func oddHeight() throws {
        let width = 32, height = 17
        let frame = SyntheticFrames.yuyv(width: width, height: height, frame: 1)
        let picture = try I420Picture.from(frame, jpegDecoder: noJPEG)
        #expect((picture.chromaWidth, picture.chromaHeight) == (16, 9))
        let converted = planes(picture)
        #expect(converted.y == SyntheticFrames.lumaPlane(width: width, height: height, frame: 1))
        let lastRow = (0..<(width / 2)).map { SyntheticFrames.chroma(x: 2 * $0, y: height - 1, frame: 1, phase: 0) }
        #expect(Array(converted.u[(8 * 16)...]) == lastRow)
    }

    @Test("frames too short for their size, and NV12 of odd width, are malformed")
    func malformedInput() throws {
        let shortYUYV = SyntheticFrames.captured(.yuyv, width: 64, height: 36, frame: 0, bytes: [UInt8](repeating: 0, count: 64 * 36 * 2 - 1))
        #expect(throws: EncoderError.malformedFrame(.yuyv, byteCount: 64 * 36 * 2 - 1, width: 64, height: 36)) {
            try I420Picture.from(shortYUYV, jpegDecoder: noJPEG)
        }
        let shortNV12 = SyntheticFrames.captured(.nv12, width: 64, height: 36, frame: 0, bytes: [UInt8](repeating: 0, count: 64 * 54 - 1))
        #expect(throws: EncoderError.malformedFrame(.nv12, byteCount: 64 * 54 - 1, width: 64, height: 36)) {
            try I420Picture.from(shortNV12, jpegDecoder: noJPEG)
        }
        let oddNV12 = SyntheticFrames.captured(.nv12, width: 63, height: 36, frame: 0, bytes: [UInt8](repeating: 0, count: 64 * 54))
        #expect(throws: EncoderError.malformedFrame(.nv12, byteCount: 64 * 54, width: 63, height: 36)) {
            try I420Picture.from(oddNV12, jpegDecoder: noJPEG)
        }
        let hugeYUYV = SyntheticFrames.captured(.yuyv, width: 1 << 20, height: 2, frame: 0, bytes: [])
        #expect(throws: EncoderError.malformedFrame(.yuyv, byteCount: 0, width: 1 << 20, height: 2)) {
            try I420Picture.from(hugeYUYV, jpegDecoder: noJPEG)
        }
        let shortI420 = SyntheticFrames.captured(.i420, width: 64, height: 36, frame: 0, bytes: [UInt8](repeating: 0, count: 64 * 54 - 1))
        #expect(throws: EncoderError.malformedFrame(.i420, byteCount: 64 * 54 - 1, width: 64, height: 36)) {
            try I420Picture.from(shortI420, jpegDecoder: noJPEG)
        }
    }

    @Test("MJPEG 4:2:2 chroma is box-resampled to 4:2:0 close to the source; encode time is logged")
    func mjpegChroma() throws {
        let jpeg = try JPEGVideoEncoder(settings: EncoderSettings(width: Self.width, height: Self.height, bitrateKbps: 50_000))
        let decoder = try JPEGPlaneDecoder()
        let encoder = try OpenH264Encoder(settings: EncoderSettings(width: Self.width, height: Self.height, bitrateKbps: 3000))
        var encodeTimes: [Duration] = []
        for index in 0..<6 {
            let yuyv = SyntheticFrames.yuyv(width: Self.width, height: Self.height, frame: index)
            let compressed = try #require(try jpeg.encode(yuyv, forceKeyframe: false))
            let mjpeg = SyntheticFrames.captured(.mjpeg, width: Self.width, height: Self.height, frame: index, bytes: compressed.data)
            let converted = planes(try I420Picture.from(mjpeg) { () throws(EncoderError) -> JPEGPlaneDecoder in decoder })
            let uDifference = meanAbsoluteDifference(converted.u, SyntheticFrames.yuyvChroma420(width: Self.width, height: Self.height, frame: index, phase: 0))
            let vDifference = meanAbsoluteDifference(converted.v, SyntheticFrames.yuyvChroma420(width: Self.width, height: Self.height, frame: index, phase: 64))
            #expect(uDifference < 1.5 && vDifference < 1.5, "MJPEG chroma is \(uDifference) (U) and \(vDifference) (V) levels off")
            _ = try encoder.encode(mjpeg, forceKeyframe: false)
            encodeTimes.append(try #require(encoder.lastEncodeDuration))
        }
        print("OpenH264 720p MJPEG 4:2:2: encode p50 \(medianMilliseconds(encodeTimes)) ms, turbojpeg decode included (debug build)")
    }
}
