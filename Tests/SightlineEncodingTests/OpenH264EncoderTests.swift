import SightlineCore
import SightlineTesting
import Testing
@testable import SightlineEncoding

@Suite("OpenH264 encoder")
struct OpenH264EncoderTests {
    static let width = 1280, height = 720

    private func nalTypes(_ frame: EncodedFrame) -> [UInt8] {
        AnnexB.nalUnits(in: frame.data).map(\.type).filter { $0 != AnnexB.NALType.sei }
    }

    private func lumaOf(_ frame: CapturedFrame) -> [UInt8] {
        SyntheticFrames.lumaPlane(width: frame.mode.size.width, height: frame.mode.size.height, frame: Int(frame.sequence))
    }

    @Test("IDRs carry SPS and PPS, P frames follow until a keyframe is forced, and the stream decodes")
    func groupOfPictures() throws {
        let encoder = try OpenH264Encoder(settings: EncoderSettings(width: Self.width, height: Self.height, bitrateKbps: 2000))
        let decoder = try H264TestDecoder()
        var outputs: [EncodedFrame?] = []
        var durations: [Duration] = []
        var worstDifference = 0.0, decodedCount = 0
        for index in 0..<60 {
            let input = SyntheticFrames.i420(width: Self.width, height: Self.height, frame: index)
            let output = try encoder.encode(input, forceKeyframe: index == 40)
            durations.append(try #require(encoder.lastEncodeDuration))
            outputs.append(output)
            guard let output else { continue }
            #expect(output.codec == .h264)
            #expect(output.width == Self.width && output.height == Self.height)
            #expect(output.captureTimestamp == input.timestamp)
            if let picture = try decoder.decode(output.data) {
                #expect(picture.width == Self.width && picture.height == Self.height)
                worstDifference = max(worstDifference, meanAbsoluteDifference(picture.luma, lumaOf(input)))
                decodedCount += 1
            }
        }
        print("OpenH264 720p I420: encode p50 \(medianMilliseconds(durations)) ms over \(durations.count) frames, "
              + "\(outputs.compactMap { $0 }.count) emitted, worst luma MAD \(worstDifference)")

        let first = try #require(outputs[0])
        #expect(first.isKeyframe)
        #expect(nalTypes(first) == [7, 8, 5])
        let spsUnit = try #require(AnnexB.nalUnits(in: first.data).first { $0.type == AnnexB.NALType.sps })
        let profile = try #require(SPSProfile(nalUnit: first.data[spsUnit.range]))
        #expect(profile.profileIdc == 66)
        #expect(profile.constraintFlags & 0x40 != 0, "constraint_set1_flag marks constrained baseline")
        #expect(profile.levelIdc <= 31, "720p30 fits level 3.1, which every browser decodes")

        let between = outputs[1..<40].compactMap { $0 }
        #expect(between.count >= 30, "rate control skipped \(39 - between.count) of 39 frames at 2000 kbps")
        for frame in between {
            #expect(!frame.isKeyframe)
            #expect(nalTypes(frame) == [1])
        }
        let forcedIndex = try #require(outputs.indices.first { $0 >= 40 && outputs[$0] != nil })
        let forced = try #require(outputs[forcedIndex])
        #expect(forced.isKeyframe)
        #expect(nalTypes(forced) == [7, 8, 5])
        for frame in outputs[(forcedIndex + 1)...].compactMap({ $0 }) {
            #expect(nalTypes(frame) == [1])
        }
        #expect(decodedCount == outputs.compactMap { $0 }.count)
        #expect(worstDifference < 6, "decoded luma is \(worstDifference) levels off on average")
    }

    @Test("lowering the bitrate at runtime shrinks the frames")
    func runtimeBitrate() throws {
        var settings = EncoderSettings(width: Self.width, height: Self.height, bitrateKbps: 2000)
        let encoder = try OpenH264Encoder(settings: settings)
        var bytes: [Int] = []
        for index in 0..<60 {
            if index == 30 {
                settings.bitrateKbps = 300
                encoder.update(settings)
            }
            let output = try encoder.encode(SyntheticFrames.i420(width: Self.width, height: Self.height, frame: index), forceKeyframe: false)
            bytes.append(output?.data.count ?? 0)  // A skipped frame sends nothing.
        }
        #expect(encoder.settings.bitrateKbps == 300)
        // Leave out the first IDR and the frames rate control needs to settle.
        let high = Double(bytes[5..<30].reduce(0, +)) / 25, low = Double(bytes[35..<60].reduce(0, +)) / 25
        print("OpenH264 720p bytes per frame: \(Int(high)) at 2000 kbps, \(Int(low)) at 300 kbps")
        #expect(low < high * 0.5)
        #expect(low * 8 * 30 < 300_000 * 1.5, "300 kbps at 30 fps allows about 1250 bytes per frame")
    }

    @Test("the keyframe interval holds and changes at runtime, as does the frame rate; no other IDRs")
    func runtimeRateAndInterval() throws {
        var settings = EncoderSettings(width: 320, height: 240, fps: 30, bitrateKbps: 500, keyframeInterval: 10)
        let encoder = try OpenH264Encoder(settings: settings)
        var keyframes: [Int] = []
        for index in 0..<60 {
            if index == 25 {
                settings.keyframeInterval = 300
                encoder.update(settings)
            }
            if index == 40 {
                settings.fps = 15
                encoder.update(settings)
            }
            let output = try encoder.encode(SyntheticFrames.i420(width: 320, height: 240, frame: index), forceKeyframe: false)
            if output?.isKeyframe == true { keyframes.append(index) }
        }
        #expect(keyframes == [0, 10, 20], "no IDR after 25 with an interval of 300, nor from scene-change detection")
        #expect(encoder.settings == settings)
    }

    @Test("a new size restarts the stream with an IDR; larger pictures are scaled down")
    func sizeChange() throws {
        let encoder = try OpenH264Encoder(settings: EncoderSettings(width: Self.width, height: Self.height))
        let decoder = try H264TestDecoder()
        for index in 0..<5 {
            let output = try encoder.encode(SyntheticFrames.i420(width: Self.width, height: Self.height, frame: index), forceKeyframe: false)
            _ = try decoder.decode(try #require(output).data)
        }
        encoder.update(EncoderSettings(width: 640, height: 360))
        // The camera still delivers 1280x720: OpenH264 scales it.
        let scaled = try #require(try encoder.encode(SyntheticFrames.i420(width: Self.width, height: Self.height, frame: 5), forceKeyframe: false))
        #expect(scaled.isKeyframe)
        #expect(nalTypes(scaled) == [7, 8, 5])
        #expect((scaled.width, scaled.height) == (640, 360))
        let picture = try #require(try decoder.decode(scaled.data))
        #expect((picture.width, picture.height) == (640, 360))
        let source = SyntheticFrames.lumaPlane(width: Self.width, height: Self.height, frame: 5)
        #expect(meanAbsoluteDifference(picture.luma, halved(source, width: Self.width, height: Self.height)) < 8)
        // A camera that switches to a smaller mode restarts the encoder at that size.
        let small = try #require(try encoder.encode(SyntheticFrames.i420(width: 320, height: 240, frame: 6), forceKeyframe: false))
        #expect(small.isKeyframe)
        #expect((small.width, small.height) == (320, 240))
        let smallPicture = try #require(try decoder.decode(small.data))
        #expect((smallPicture.width, smallPicture.height) == (320, 240))
        #expect(meanAbsoluteDifference(smallPicture.luma, SyntheticFrames.lumaPlane(width: 320, height: 240, frame: 6)) < 10)
    }

    /// 2x2 box downscale, close to what OpenH264's own scaler does.
    private func halved(_ plane: [UInt8], width: Int, height: Int) -> [UInt8] {
        var output: [UInt8] = []
        for y in stride(from: 0, to: height, by: 2) {
            for x in stride(from: 0, to: width, by: 2) {
                let sum = Int(plane[y * width + x]) + Int(plane[y * width + x + 1]) + Int(plane[(y + 1) * width + x]) + Int(plane[(y + 1) * width + x + 1])
                output.append(UInt8((sum + 2) / 4))
            }
        }
        return output
    }

    @Test("YUYV and MJPEG input convert to I420 and decode close to the source")
    func packedAndJPEGInput() throws {
        let settings = EncoderSettings(width: Self.width, height: Self.height, bitrateKbps: 3000)
        let encoder = try OpenH264Encoder(settings: settings)
        let jpeg = try JPEGVideoEncoder(settings: EncoderSettings(width: Self.width, height: Self.height, bitrateKbps: 50_000))
        let decoder = try H264TestDecoder()
        var durations: [Duration] = []
        for index in 0..<4 {
            let yuyv = SyntheticFrames.yuyv(width: Self.width, height: Self.height, frame: index)
            let input: CapturedFrame
            if index < 2 {
                input = yuyv
            } else {
                let compressed = try #require(try jpeg.encode(yuyv, forceKeyframe: false))
                input = SyntheticFrames.captured(.mjpeg, width: Self.width, height: Self.height, frame: index, bytes: compressed.data)
            }
            let output = try #require(try encoder.encode(input, forceKeyframe: false))
            durations.append(try #require(encoder.lastEncodeDuration))
            let picture = try #require(try decoder.decode(output.data))
            let difference = meanAbsoluteDifference(picture.luma, SyntheticFrames.lumaPlane(width: Self.width, height: Self.height, frame: index))
            #expect(difference < 6, "\(input.mode.fourCC) frame \(index) decoded \(difference) levels off on average")
        }
        print("OpenH264 720p YUYV/MJPEG (debug build conversion): encode \(durations.map { medianMilliseconds([$0]) }) ms")
    }

    @Test("bad input and bad settings fail with errors that say what to do")
    func errors() throws {
        #expect(throws: EncoderError.invalidSettings("size 1281x720 must be even and between 16x16 and 4096x4096")) {
            try OpenH264Encoder(settings: EncoderSettings(width: 1281, height: 720))
        }
        let encoder = try OpenH264Encoder(settings: EncoderSettings(width: 320, height: 240))
        let rgb = SyntheticFrames.captured(FourCC("RGB3"), width: 320, height: 240, frame: 0, bytes: [UInt8](repeating: 0, count: 320 * 240 * 3))
        #expect(throws: EncoderError.unsupportedInput(FourCC("RGB3"), codec: .h264)) { try encoder.encode(rgb, forceKeyframe: false) }
        let short = SyntheticFrames.captured(.yuyv, width: 320, height: 240, frame: 0, bytes: [1, 2, 3])
        #expect(throws: EncoderError.malformedFrame(.yuyv, byteCount: 3, width: 320, height: 240)) {
            try encoder.encode(short, forceKeyframe: false)
        }
        let torn = SyntheticFrames.captured(.mjpeg, width: 320, height: 240, frame: 0, bytes: [0xFF, 0xD8, 0xFF, 0xE0, 0, 4])
        #expect(throws: EncoderError.self) { try encoder.encode(torn, forceKeyframe: false) }

        // Invalid runtime settings are reported once, then the encoder carries on with what ran.
        encoder.update(EncoderSettings(width: 320, height: 240, fps: 500))
        #expect(throws: EncoderError.invalidSettings("frame rate 500.0 must be between 1 and 60 fps")) {
            try encoder.encode(SyntheticFrames.i420(width: 320, height: 240, frame: 0), forceKeyframe: false)
        }
        #expect(encoder.settings.fps == 30)
        #expect(try encoder.encode(SyntheticFrames.i420(width: 320, height: 240, frame: 1), forceKeyframe: false) != nil)
        #expect(EncoderError.unsupportedInput(.h264, codec: .jpeg).description.contains("format_preference"))
    }
}
