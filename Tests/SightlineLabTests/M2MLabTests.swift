import Foundation
@testable import SightlineDaemon
import SightlineCore
import SightlineEncoding
import SightlineTesting
import Testing

/// The V4L2 memory-to-memory encoder path against vicodec, the kernel's virtual FWHT codec,
/// which the host builds (scripts/build-lab-modules) and inserts (`scripts/kernel-lab --insmod`).
/// vicodec offers FWHT only, so the daemon's H.264 choice must fall back to OpenH264, while the
/// encoder itself is driven through vicodec's encoder and its output decoded by vicodec's decoder.
extension DeviceLab {
    @Suite("M2M encoder on vicodec", .enabled(if: LabModules.insertedInGuest, Comment(rawValue: LabModules.notInserted)))
    struct M2MLabTests {
        @Test("vicodec's stateful encoder appears: a multiplanar M2M node that codes FWHT on its capture queue")
        func encoderNodeAppears() throws {
            let encoder = try videoNode(named: "stateful-encoder")
            let listing = try CommandLineTool.run("/usr/bin/v4l2-ctl", ["-d", encoder, "--all", "--list-formats"])
            #expect(listing.status == 0, "v4l2-ctl: \(listing.stderr)")
            #expect(listing.stdout.contains("Driver name      : vicodec"))
            #expect(listing.stdout.contains("Video Memory-to-Memory Multiplanar"), "\(listing.stdout)")
            // --list-formats lists the capture queue, which on an encoder carries the coded stream.
            let capture = listing.stdout.components(separatedBy: "Type: Video Capture Multiplanar").last ?? ""
            #expect(capture.contains("'FWHT'"), "\(listing.stdout)")
        }

        @Test("the probe finds vicodec's encoder, reports FWHT not H.264, and the daemon's H.264 choice falls back to OpenH264")
        func probeFallsBack() throws {
            let encoderNode = try videoNode(named: "stateful-encoder")
            let devices = M2MDevices.scan()
            let vicodec = try #require(devices.first { $0.path == encoderNode }, "scan found \(devices)")
            #expect(vicodec.driver == "vicodec" && vicodec.multiplanar)
            #expect(vicodec.captureFormats == [.fwht], "\(vicodec)")
            #expect(vicodec.outputFormats.contains(FourCC("YU12")) && vicodec.outputFormats.contains(.nv12))
            // The decoders are M2M nodes too; they code nothing on CAPTURE.
            #expect(devices.contains { $0.path == (try? videoNode(named: "stateful-decoder")) && $0.captureFormats.contains(FourCC("YU12")) })

            let probe = VideoEncoders.hardwareProbe
            #expect(probe == M2MProbe.choose(from: devices, coded: .h264))
            #expect(probe.device == nil)
            #expect(probe.description.contains("no V4L2 M2M H264 encoder") && probe.description.contains("\(encoderNode) (vicodec) codes FWHT, not H264"),
                    "\(probe)")
            #expect(M2MProbe.choose(from: devices, coded: .fwht) == .found(vicodec, rawFormat: FourCC("YU12")))

            let choice = try VideoEncoders.choose(for: .yuyv, preferred: .h264, settings: EncoderSettings(width: 320, height: 240))
            #expect(choice.encoder is OpenH264Encoder)
            #expect(choice.explanation.hasPrefix("software H.264 (OpenH264): no V4L2 M2M H264 encoder"), "\(choice.explanation)")
        }

        @Test("the M2M encoder codes test-pattern frames to FWHT on vicodec, keyframes on demand, and vicodec's decoder gives the pictures back")
        func roundTrip() throws {
            let width = 640, height = 480, count = 8, forcedAt = 5
            let encoder = try M2MEncoder(device: try videoNode(named: "stateful-encoder"), rawFormat: FourCC("YU12"), coded: .fwht,
                                         settings: EncoderSettings(width: width, height: height, fps: 25, keyframeInterval: 16))
            var pattern = TestPattern(width: width, height: height, fps: 25)
            var inputs: [CapturedFrame] = []
            var coded: [M2MEncoder.Output] = []
            for index in 0..<count {
                let frame = pattern.nextFrame()
                inputs.append(frame)
                let output = try #require(try encoder.encode(frame, forceKeyframe: index == forcedAt), "no coded frame \(index)")
                coded.append(output)
            }
            #expect(coded.map(\.captureTimestamp) == inputs.map(\.timestamp), "capture times must survive the round trip")
            // The first frame and the forced one are keyframes; vicodec codes the rest as P frames (GOP 16).
            #expect(coded.map(\.isKeyframe) == (0..<count).map { $0 == 0 || $0 == forcedAt })
            let rawSize = width * height * 3 / 2
            #expect(coded.allSatisfy { $0.data.count > 100 && $0.data.count < rawSize }, "\(coded.map(\.data.count))")
            // Stop drains what is left: nothing, since every frame already came out.
            #expect(try encoder.drain().isEmpty)
            print("vicodec FWHT \(width)x\(height): \(coded.map(\.data.count)) bytes per frame; last encode \(encoder.lastEncodeDuration.map { "\($0)" } ?? "-")")

            let decoder = try M2MSession(path: try videoNode(named: "stateful-decoder"), output: .fwht, capture: FourCC("YU12"),
                                         width: width, height: height, codedSide: .output)
            defer { decoder.shutDown() }
            try decoder.start()
            for (index, output) in coded.enumerated() {
                try decoder.queue(timestamp: output.captureTimestamp, timeout: .seconds(5)) { buffer in
                    output.data.withUnsafeBytes { buffer.copyMemory(from: $0) }
                    return output.data.count
                }
                var decoded = try decoder.dequeue(timeout: .seconds(5))
                if let first = decoded, first.isLast, first.data.isEmpty {
                    // The stateful decoder's source change: it read the stream's format from the
                    // first header; restarting CAPTURE takes it on.
                    try decoder.restartCapture()
                    decoded = try decoder.dequeue(timeout: .seconds(5))
                }
                let picture = try #require(decoded, "vicodec did not decode frame \(index)")
                #expect(decoder.captureFormat.fourCC == FourCC("YU12") && decoder.captureFormat.width == width
                    && decoder.captureFormat.height == height && decoder.captureFormat.bytesPerLine == width)
                #expect(picture.data.count >= width * height * 3 / 2)
                let decodedLuma = Array(picture.data.prefix(width * height))
                let difference = Self.meanLumaDifference(decodedLuma, yuyv: inputs[index].bytes)
                #expect(difference < 2, "frame \(index): mean |decoded - input| = \(difference)")
                // The counter the pattern burned in reads back: this is frame `index`, not another.
                #expect(DigitFont.read(count: 7, luma: decodedLuma, width: width, frameHeight: height) == String(format: "%07u", index))
                print("frame \(index): \(output.data.count) bytes, keyframe \(output.isKeyframe), mean abs difference \(difference)")
            }
        }

        /// Mean absolute difference between a luma plane and the luma of a YUYV frame (every
        /// other byte). Through raw pointers: the test binary is a debug build and the guest's
        /// CPU is emulated, where checked array indexing over 300,000 pixels takes seconds.
        static func meanLumaDifference(_ luma: [UInt8], yuyv: [UInt8]) -> Double {
            guard !luma.isEmpty, yuyv.count >= 2 * luma.count else { return .infinity }
            let sum = luma.withUnsafeBufferPointer { plane in
                yuyv.withUnsafeBufferPointer { packed in
                    (0..<plane.count).reduce(0) { $0 + abs(Int(plane[$1]) - Int(packed[2 * $1])) }
                }
            }
            return Double(sum) / Double(luma.count)
        }
    }
}
