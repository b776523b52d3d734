import Foundation
import SightlineCamera
import SightlineCore
import SightlineTesting
import Testing

/// What colour a decoded pixel is, with room for BT.601 or BT.709 and limited-range rounding.
func colorName(_ pixel: WebDriverValue?) -> String {
    guard let rgb = pixel?.array?.compactMap(\.int), rgb.count == 3 else { return "missing" }
    let (r, g, b) = (rgb[0], rgb[1], rgb[2])
    if r > 220, g > 220, b > 220 { return "white" }
    if r < 35, g < 35, b < 35 { return "black" }
    if r > 200, g < 80, b < 80 { return "red" }
    if g > 180, r < 80, b < 80 { return "green" }
    if b > 200, r < 80, g < 80 { return "blue" }
    return "rgb(\(r),\(g),\(b))"
}

let palette: [(name: String, color: H264Fixture.Color)] = [
    ("white", .white), ("red", .red), ("green", .green), ("blue", .blue), ("black", .black),
]

/// A JPEG from the project's own snapshot encoder (libturbojpeg): left half red, right half blue.
func labJPEG(width: Int, height: Int) throws -> [UInt8] {
    var nv12 = [UInt8](repeating: 0, count: width * height * 3 / 2)
    for y in 0..<height {
        for x in 0..<width { nv12[y * width + x] = x < width / 2 ? H264Fixture.Color.red.y : H264Fixture.Color.blue.y }
    }
    for y in 0..<(height / 2) {
        for x in stride(from: 0, to: width, by: 2) {
            let color = x < width / 2 ? H264Fixture.Color.red : H264Fixture.Color.blue
            nv12[width * height + y * width + x] = color.cb
            nv12[width * height + y * width + x + 1] = color.cr
        }
    }
    guard let image = PlanarYUV.fromNV12(nv12, width: width, height: height) else {
        throw HeadlessChromium.Failure("NV12 test image rejected")
    }
    return try JPEGEncoder().encode(image, quality: 90)
}

extension ViewerBrowserTests {
    /// The viewer's decoder module on Chromium's WebCodecs, fed a stream written bit by bit
    /// (H264Fixture): no ffmpeg needed. Pixels are checked, not just frame counts.
    @Suite("viewer WebCodecs in Chromium")
    struct WebCodecsBrowserTests {
        /// Page-side: a VideoStreamDecoder drawing into an OffscreenCanvas and sampling the centre
        /// of every macroblock; frames are fed as `[hex, keyframe]` pairs.
        static let decodeScript = """
            const { decoder, protocol, bytes } = lab;
            const [frames, width, height, mbCols, mbRows, expected] = arguments;
            const canvas = new OffscreenCanvas(width, height);
            const context = canvas.getContext('2d', { willReadFrequently: true });
            const pictures = [];
            const keyframeRequests = [];
            const errors = [];
            const stream = new decoder.VideoStreamDecoder({
                onFrame: (frame, info) => {
                    context.drawImage(frame, 0, 0);
                    const samples = [];
                    for (let y = 0; y < mbRows; y += 1) for (let x = 0; x < mbCols; x += 1) {
                        samples.push(Array.from(context.getImageData(x * 16 + 8, y * 16 + 8, 1, 1).data.slice(0, 3)));
                    }
                    pictures.push({ width: frame.displayWidth ?? frame.width, height: frame.displayHeight ?? frame.height,
                                    captureTimeUs: info.captureTimeUs, samples });
                    frame.close();
                },
                onKeyframeNeeded: (reason) => keyframeRequests.push(reason),
                onError: (error) => errors.push(String(error.message ?? error)),
            });
            let t = 1_700_000_000_000_000;
            for (const [hex, keyframe] of frames) {
                t += 33_333;
                stream.decode({ codec: protocol.Codec.h264, width, height, captureTimeUs: t, data: bytes.fromHex(hex) }, keyframe);
                await new Promise((r) => setTimeout(r, 5));
            }
            for (let i = 0; i < 400 && pictures.length < expected; i += 1) await new Promise((r) => setTimeout(r, 10));
            return { pictures, keyframeRequests, errors, stats: stream.stats, waiting: stream.waitingForKeyframe };
            """

        @Test("H.264 (avc1.42E01F, Annex B): starts at the keyframe, decodes IDR and P frames to the right pixels")
        func h264Decode() async throws {
            let fixture = H264Fixture(widthInMacroblocks: 4, heightInMacroblocks: 3)
            let patternA = { (x: Int, y: Int) in palette[(x + y) % palette.count].color }
            let patternB = { (x: Int, y: Int) in palette[(x + 2 * y + 1) % palette.count].color }
            var frames: [WebDriverValue] = [[.hex(fixture.skippedFrame(frameNum: 1)), false]]  // before any keyframe: skipped
            frames.append([.hex(fixture.keyframe(idrPicID: 0, color: patternA)), true])
            for n in 1...4 { frames.append([.hex(fixture.skippedFrame(frameNum: UInt32(n))), false]) }
            frames.append([.hex(fixture.keyframe(idrPicID: 1, color: patternB)), true])
            for n in 1...3 { frames.append([.hex(fixture.skippedFrame(frameNum: UInt32(n))), false]) }

            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let result = try await lab.run(Self.decodeScript, .array(frames), 64, 48, 4, 3, 9)
                #expect(result["errors"] == [], "\(result["errors"] ?? .null)")
                #expect(result["stats"]?["skipped"] == 1)
                #expect(result["stats"]?["errors"] == 0)
                let pictures = try #require(result["pictures"]?.array)
                #expect(pictures.count == 9)
                for (index, picture) in pictures.enumerated() {
                    #expect(picture["width"] == 64 && picture["height"] == 48)
                    let pattern = index < 5 ? patternA : patternB
                    let samples = picture["samples"]?.array ?? []
                    let seen = samples.map(colorName)
                    let wanted = (0..<3).flatMap { y in (0..<4).map { x in palette.first { $0.color == pattern(x, y) }?.name ?? "?" } }
                    #expect(seen == wanted, "picture \(index)")
                }
                // Output keeps the capture time the payload carried (the latency measurement needs it).
                #expect(pictures.first?["captureTimeUs"] == .number(1_700_000_000_000_000 + 2 * 33_333))
            }
        }

        @Test("a broken keyframe is a decode error: the decoder asks for a keyframe and recovers at the next one")
        func decodeErrorRecovery() async throws {
            let fixture = H264Fixture(widthInMacroblocks: 2, heightInMacroblocks: 2)
            let green = { (_: Int, _: Int) in H264Fixture.Color.green }
            let garbage = [UInt8](repeating: 0xA7, count: 200)
            let frames: [WebDriverValue] = [
                [.hex(fixture.keyframe(idrPicID: 0, color: green)), true],
                [.hex(garbage), true],  // flagged key, not decodable
                [.hex(fixture.skippedFrame(frameNum: 1)), false],  // must be skipped: waiting for a keyframe
                [.hex(fixture.keyframe(idrPicID: 1, color: green)), true],
                [.hex(fixture.skippedFrame(frameNum: 1)), false],
            ]
            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let result = try await lab.run(Self.decodeScript, .array(frames), 32, 32, 2, 2, 3)
                #expect((result["stats"]?["errors"]?.int ?? 0) >= 1)
                #expect(result["keyframeRequests"]?.array?.contains("decode-error") == true)
                let pictures = try #require(result["pictures"]?.array)
                #expect(pictures.count == 3)
                #expect(pictures.allSatisfy { $0["samples"]?.array?.map(colorName) == ["green", "green", "green", "green"] })
                #expect(result["waiting"] == false)
            }
        }

        @Test("JPEG frames from the project's turbojpeg encoder decode through ImageDecoder")
        func jpegDecode() async throws {
            let jpeg = try labJPEG(width: 320, height: 180)
            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let result = try await lab.run("""
                    const { decoder, bytes } = lab;
                    const image = await decoder.decodeJpeg(bytes.fromHex(arguments[0]));
                    const size = decoder.frameSize(image);
                    const canvas = new OffscreenCanvas(size.width, size.height);
                    const context = canvas.getContext('2d');
                    context.drawImage(image, 0, 0);
                    image.close();
                    const px = (x, y) => Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3));
                    return { ...size, left: px(40, 90), right: px(280, 90), imageDecoder: typeof ImageDecoder === 'function' };
                    """, .hex(jpeg))
                #expect(result["width"] == 320 && result["height"] == 180)
                #expect(colorName(result["left"]) == "red")
                #expect(colorName(result["right"]) == "blue")
                #expect(result["imageDecoder"] == true)
            }
        }
    }
}
