import Foundation
import SightlineCamera
import SightlineControlClient
import SightlineCore
@testable import SightlineDaemon
import SightlineDiscovery
import SightlineEncoding
import SightlineTesting
import Testing

/// Camera passthrough against a real V4L2 device: v4l2loopback (built by
/// scripts/build-lab-modules) delivers on its capture side what the test writes into its output
/// side, so the daemon's capture path meets a camera that offers only H.264 or only MJPEG.
extension DeviceLab {
    @Suite("Camera passthrough on v4l2loopback", .enabled(if: LabModules.loopbackModule != nil, Comment(rawValue: LabModules.noLoopback)))
    struct PassthroughLabTests {
        /// Annex-B with only the NAL units `keep` accepts, each behind a four-byte start code.
        static func filtered(_ accessUnit: [UInt8], keep: (UInt8) -> Bool) -> [UInt8] {
            AnnexB.nalUnits(in: accessUnit).filter { keep($0.type) }.flatMap { [0, 0, 0, 1] + accessUnit[$0.range] }
        }

        /// The NAL units' bytes without start codes, which say nothing about the content.
        static func payloads(_ accessUnit: [UInt8]) -> [[UInt8]] {
            AnnexB.nalUnits(in: accessUnit).map { Array(accessUnit[$0.range]) }
        }

        /// This process's open descriptors and what they point at.
        static func openDescriptors() -> Set<String> {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            return Set(entries.map { "\($0) -> \((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) ?? "?")" })
        }

        /// The indices where two lists of frames differ (all of them when the counts do), so a
        /// failure names frames instead of printing their bytes.
        static func differing(_ a: [[UInt8]], _ b: [[UInt8]]) -> [Int] {
            guard a.count == b.count else { return Array(0..<max(a.count, b.count)) }
            return a.indices.filter { a[$0] != b[$0] }
        }

        static func isIDR(_ accessUnit: [UInt8]) -> Bool {
            AnnexB.nalUnits(in: accessUnit).contains { $0.type == AnnexB.NALType.idrSlice }
        }

        /// Writes `written` one frame at a time into the loopback and waits for each to come out
        /// of a capture session on `node` negotiated from `preference`; returns the session's
        /// mode and the captured frames.
        ///
        /// v4l2loopback has no capture format until a producer wrote a frame, so `priming` is
        /// written before the capture side opens. The capture side's `VIDIOC_REQBUFS` resets
        /// every buffer's `bytesused` to the whole buffer, so that one frame comes out padded
        /// with zeros to the buffer's size; it is checked for that and left out.
        static func capture(_ written: [[UInt8]], priming: [UInt8], node: String, fourCC: FourCC, preference: [VideoFormat],
                            size: FrameSize) async throws -> (mode: CameraMode, frames: [CapturedFrame]) {
            let producer = try LoopbackProducer(node: node, fourCC: fourCC, width: size.width, height: size.height)
            defer { producer.close() }
            try producer.write(priming)
            let camera = try V4L2Camera(path: node)
            defer { camera.close() }
            #expect(camera.driver == "v4l2 loopback")
            // No encoder of its own, so no FORCE_KEY_FRAME button: keyframe requests cannot reach it.
            #expect(!camera.hasForceKeyFrameControl)
            let offers = try camera.formats()
            #expect(offers.map(\.fourCC) == [fourCC], "the loopback offers what its producer set, nothing else: \(offers)")
            let session = try CaptureSession(camera: camera, request: .init(preference: preference, size: size, fps: 25), bufferCount: 4)
            let collected = CapturedFrames(session)
            do {
                try await collected.wait(for: 1)
                for index in written.indices {
                    try producer.write(written[index])
                    try await collected.wait(for: index + 2)
                }
            } catch {
                await session.stop()
                throw error
            }
            await session.stop()
            await collected.finished()
            #expect(session.counters.failure == nil)
            let frames = collected.all
            let primed = try #require(frames.first)
            #expect(primed.bytes.starts(with: priming) && primed.bytes.dropFirst(priming.count).allSatisfy { $0 == 0 },
                    "the priming frame: \(primed.bytes.count) bytes for \(priming.count) written")
            return (session.mode, Array(frames.dropFirst()))
        }

        /// The producer's stream: the daemon's test pattern through OpenH264 with an IDR every
        /// `gop` frames; `original` as the encoder made it, `written` like many cameras send it,
        /// with SPS and PPS only in front of the first IDR.
        static func h264Stream(size: FrameSize, count: Int, gop: Int) throws -> (original: [[UInt8]], written: [[UInt8]]) {
            let encoder = try OpenH264Encoder(settings: EncoderSettings(width: size.width, height: size.height, fps: 25,
                                                                        bitrateKbps: 400, keyframeInterval: gop))
            var pattern = TestPattern(width: size.width, height: size.height, fps: 25)
            var original: [[UInt8]] = []
            for _ in 0..<(count * 4) where original.count < count {
                if let coded = try encoder.encode(pattern.nextFrame(), forceKeyframe: false) { original.append(coded.data) }
            }
            guard original.count == count else { throw TestFailure("OpenH264 gave \(original.count) of \(count) access units") }
            let written = original.indices.map { index in
                index == 0 ? original[0] : filtered(original[index]) { $0 != AnnexB.NALType.sps && $0 != AnnexB.NALType.pps }
            }
            return (original, written)
        }

        @Test("H.264 written into v4l2loopback: udev discovery calls it a camera, capture negotiates H.264, passthrough delivers every access unit intact with keyframes found and parameter sets completed, and OpenH264 decodes it, also from a later keyframe")
        func h264() async throws {
            let size = FrameSize(width: 320, height: 240), count = 24, gop = 8
            let (original, written) = try Self.h264Stream(size: size, count: count, gop: gop)
            let keyframes = original.indices.filter { Self.isIDR(original[$0]) }
            try #require(keyframes.count >= 3 && keyframes.first == 0, "IDRs at \(keyframes)")
            #expect(written.dropFirst().allSatisfy { !AnnexB.nalUnits(in: $0).contains { $0.type == AnnexB.NALType.sps } })

            try await LoopbackCamera.with(label: "sightline-loopback-h264") { loopback in
                // Discovery as the daemon runs it: udev's record of the node, classified.
                let discovery = try UdevDiscovery()
                let devices = discovery.enumerate()
                discovery.stop()
                let found = try #require(devices.first { $0.devnode == loopback.node }, "discovery did not list \(loopback.node): \(devices.map(\.devnode))")
                #expect(found.role == .camera && found.name == loopback.label)
                #expect(found.properties["ID_V4L_CAPABILITIES"] == ":capture:video_output:")
                // Pure output nodes stay out: vivid's video output.
                let vividOutput = try videoNode(named: "vivid-000-vid-out")
                #expect(!devices.contains { $0.devnode == vividOutput })

                // Dispatch opens its timer descriptor at the process's first sleep: not the capture's to count.
                try await Task.sleep(for: .milliseconds(10))
                let baseline = KernelLab.resourceCounts(), descriptors = Self.openDescriptors()
                let (mode, frames) = try await Self.capture(written, priming: written[0], node: loopback.node, fourCC: .h264,
                                                           preference: [.h264, .mjpeg, .yuyv], size: size)
                #expect(KernelLab.resourceCounts() == baseline,
                        "descriptors or mappings left behind: \(Self.openDescriptors().subtracting(descriptors))")
                #expect(mode.fourCC == .h264 && mode.size == size)
                try #require(frames.count == count, "captured \(frames.count) of \(count) frames")
                #expect(frames.map(\.bytes.count) == written.map(\.count))
                #expect(Self.differing(frames.map(\.bytes), written) == [], "the camera must deliver exactly the bytes written")
                #expect(frames.map(\.sequence) == frames.indices.map { frames[0].sequence + UInt32($0) })
                #expect(frames.allSatisfy { $0.missedBefore == 0 })

                let choice = try VideoEncoders.choose(for: try #require(VideoFormat(fourCC: mode.fourCC)), preferred: .h264,
                                                      settings: EncoderSettings(width: size.width, height: size.height))
                #expect(choice.encoder is PassthroughEncoder && choice.explanation == "passthrough of the camera's H.264")
                var encoded: [EncodedFrame] = []
                for frame in frames {
                    encoded.append(try #require(try choice.encoder.encode(frame, forceKeyframe: false)))
                }
                #expect(encoded.map(\.isKeyframe) == original.map(Self.isIDR))
                #expect(encoded.map(\.captureTimestamp) == frames.map(\.timestamp))
                #expect(encoded.allSatisfy { $0.codec == .h264 && $0.width == size.width && $0.height == size.height })
                // Every keyframe carries SPS and PPS again, and every NAL unit is the encoder's own.
                for index in keyframes {
                    #expect(AnnexB.nalUnits(in: encoded[index].data).map(\.type).prefix(2) == [AnnexB.NALType.sps, AnnexB.NALType.pps])
                }
                #expect(encoded.indices.filter { Set(Self.payloads(encoded[$0].data)) != Set(Self.payloads(original[$0])) } == [],
                        "frames whose NAL units are not the encoder's own")
                #expect(encoded.map { Self.payloads($0.data).count } == original.map { Self.payloads($0).count })

                // A decoder that sees everything shows every frame at the stream's size.
                let decoder = try H264TestDecoder()
                var pictures = 0
                for frame in encoded {
                    if let picture = try decoder.decode(frame.data) {
                        #expect(picture.width == size.width && picture.height == size.height)
                        pictures += 1
                    }
                }
                #expect(pictures == count)
                // A viewer joining at the second keyframe never saw the first SPS/PPS: the
                // completed keyframe alone starts its decoder.
                let joining = try H264TestDecoder()
                var joinedPictures = 0
                for frame in encoded[keyframes[1]...] where try joining.decode(frame.data) != nil { joinedPictures += 1 }
                #expect(joinedPictures == count - keyframes[1])
                print("v4l2loopback H.264 \(size.width)x\(size.height): \(count) access units, IDRs at \(keyframes), "
                      + "\(written.map(\.count).reduce(0, +)) bytes written, passthrough \(choice.encoder.lastEncodeDuration.map { "\($0)" } ?? "-") per frame")
            }
        }

        @Test("MJPEG written into v4l2loopback: capture negotiates MJPEG and the JPEG stream codec passes each libturbojpeg JPEG through without its EXIF segment")
        func mjpeg() async throws {
            let size = FrameSize(width: 320, height: 240), count = 6
            var pattern = TestPattern(width: size.width, height: size.height, fps: 25)
            let compressor = try JPEGEncoder()
            var original: [[UInt8]] = []
            for _ in 0..<count {
                let frame = pattern.nextFrame()
                let planes = try #require(PlanarYUV.fromYUYV(frame.bytes, width: size.width, height: size.height))
                original.append(try compressor.encode(planes, quality: 80))
            }
            // An APP1 "Exif" segment after SOI, as cameras add it (it can carry a location).
            let exif: [UInt8] = [0xFF, 0xE1, 0x00, 0x10] + Array("Exif".utf8) + [0, 0, 0x4D, 0x4D, 0, 0x2A, 0, 0, 0, 8]
            let written = original.map { Array($0[0..<2]) + exif + Array($0[2...]) }
            #expect(written.allSatisfy(JPEGMetadata.hasApplicationMetadata))

            try await LoopbackCamera.with(label: "sightline-loopback-mjpeg") { loopback in
                let (mode, frames) = try await Self.capture(written, priming: written[0], node: loopback.node, fourCC: .mjpeg,
                                                           preference: [.mjpeg, .yuyv], size: size)
                #expect(mode.fourCC == .mjpeg && mode.size == size)
                try #require(frames.count == count, "captured \(frames.count) of \(count) frames")
                #expect(Self.differing(frames.map(\.bytes), written) == [])

                let choice = try VideoEncoders.choose(for: try #require(VideoFormat(fourCC: mode.fourCC)), preferred: .jpeg,
                                                      settings: EncoderSettings(width: size.width, height: size.height))
                #expect(choice.encoder is JPEGVideoEncoder)
                var encoded: [EncodedFrame] = []
                for frame in frames {
                    encoded.append(try #require(try choice.encoder.encode(frame, forceKeyframe: false)))
                }
                #expect(Self.differing(encoded.map(\.data), original) == [], "passthrough must give back the JPEG without the EXIF segment, byte for byte")
                #expect(encoded.allSatisfy { $0.codec == .jpeg && $0.isKeyframe && !JPEGMetadata.hasApplicationMetadata($0.data) })
                #expect(encoded.map(\.captureTimestamp) == frames.map(\.timestamp))
            }
        }
    
        @Test("the real daemon streams the loopback's H.264 in a call that starts after the camera's only SPS/PPS: the expert starts at a keyframe and decodes every frame, each keyframe the camera's own IDR with those SPS/PPS in front, and the call status says a joining viewer waits for the camera's next IDR")
        func daemonCall() async throws {
            let size = FrameSize(width: 320, height: 240)
            let (original, written) = try Self.h264Stream(size: size, count: 24, gop: 8)
            let label = "sightline-loopback-call"
            try await LoopbackCamera.with(label: label) { loopback in
                let producer = try LoopbackProducer(node: loopback.node, fourCC: .h264, width: size.width, height: size.height)
                defer { producer.close() }
                try producer.write(written[0])
                let feeder = LoopbackFeeder(producer, frames: written, interval: .milliseconds(100))
                let relay = try RelayProcess()
                let daemon: DaemonProcess
                do {
                    try await relay.start(timeout: .seconds(60))
                    daemon = try DaemonProcess(configuration: """
                        camera:
                          device: \(loopback.node)
                          width: \(size.width)
                          height: \(size.height)
                          fps: 10
                          format_preference: [h264]
                        relay:
                          url: \(relay.webSocketURL)
                          token_file: \(relay.deviceTokenFile)
                        stream:
                          codec: h264
                          bitrate_kbps: 400

                        """)
                    try daemon.start()
                } catch {
                    relay.stop()
                    await feeder.stop()
                    throw error
                }
                func shutDown() async {
                    daemon.signal(SIGTERM)
                    _ = await daemon.waitForExit(timeout: .seconds(30))
                    relay.stop()
                    await feeder.stop()
                }
                do {
                    try await daemon.waitUntilServing(timeout: .seconds(60))
                    let client = ControlClient(socketPath: daemon.socketPath)
                    // The camera sends SPS and PPS while the daemon captures before the call, and
                    // never again: the call has only the camera service's memory of them.
                    func captured() async throws -> UInt64 {
                        try await client.get(ControlAPI.statusPath, as: DaemonStatus.self).camera?.framesCaptured ?? 0
                    }
                    let beforeCall = ContinuousClock.now + .seconds(90)
                    while try await captured() < 60, ContinuousClock.now < beforeCall { try await Task.sleep(for: .milliseconds(200)) }
                    try #require(try await captured() >= 60, "the daemon did not capture the loopback camera:\n\(daemon.log)")
                    feeder.replaceFrames(with: written.map { Self.filtered($0) { $0 != AnnexB.NALType.sps && $0 != AnnexB.NALType.pps } })
                    let switched = try await captured()
                    while try await captured() < switched + 10, ContinuousClock.now < beforeCall { try await Task.sleep(for: .milliseconds(200)) }
                    let call = try await startCallUntilInvited(client)
                    let link = try #require(call?.invite, "no invite: \(String(describing: call))\n\(daemon.log)\n\(relay.log)")
                    let invite = try #require(ExpertClient.Invite(link))
                    // An IDR every 8 frames: wait for two keyframes.
                    let report = try await ExpertClient.run(invite, frames: .max, timeout: .seconds(120)) {
                        $0.framesOpened >= 20 && $0.keyframes >= 2
                    }
                    #expect(report.framesOpened >= 20, "opened \(report.framesOpened) of \(report.framesReceived); daemon log:\n\(daemon.log)")
                    #expect(report.openFailures == 0)
                    // The camera's P-frames only decode after the frame before them: the expert
                    // starts at a keyframe and every frame it gets decodes, whatever the call
                    // skipped or the loaded guest dropped on the way (those wait for an IDR).
                    #expect(report.firstOpenedWasKeyframe == true)
                    let decoder = try H264TestDecoder()
                    var pictures = 0
                    for payload in report.videoPayloads where try decoder.decode(payload) != nil { pictures += 1 }
                    #expect(pictures == report.videoPayloads.count && pictures >= 20, "\(pictures) of \(report.videoPayloads.count) decoded")
                    let header = try #require(report.headers.first)
                    #expect((header.codec, Int(header.width), Int(header.height)) == (.h264, size.width, size.height))
                    // Every keyframe the expert opened is one of the camera's IDRs, completed
                    // with the SPS and PPS the camera sent before the call.
                    #expect(report.keyframes >= 2)
                    let cameraKeyframes = original.filter(Self.isIDR).map { Set(Self.payloads($0)) }
                    for keyframe in report.keyframePayloads {
                        #expect(AnnexB.nalUnits(in: keyframe).map(\.type).prefix(2) == [AnnexB.NALType.sps, AnnexB.NALType.pps])
                        let known = cameraKeyframes.contains(Set(Self.payloads(keyframe)))
                        #expect(known, "a keyframe that is not the camera's own: NAL types \(AnnexB.nalUnits(in: keyframe).map(\.type))")
                    }

                    let status = try await client.get(ControlAPI.callPath, as: CallStatus.self)
                    #expect(status.encoder == "passthrough of the camera's H.264; \(label) has no FORCE_KEY_FRAME control, "
                            + "so a viewer that joins waits for the camera's next IDR", "\(status)")
                    let said = daemon.log.components(separatedBy: "has no FORCE_KEY_FRAME control").count - 1
                    #expect(said == 1, "the missing control was logged \(said) times:\n\(daemon.log)")
                    _ = try await client.post(ControlAPI.callEndPath, json: [String: String](), as: CallStatus.self)
                    print("daemon call on v4l2loopback: \(report.framesOpened) frames opened and decoded, \(report.keyframes) keyframes, \(feeder.count) written")
                } catch {
                    await shutDown()
                    throw error
                }
                await shutDown()
            }
        }
}
}
