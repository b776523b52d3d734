import Foundation
import SightlineCamera
import SightlineControlClient
import SightlineCore
import SightlineTesting
import Testing

/// Camera capture against the real vivid driver, inside the kernel lab.
extension DeviceLab {
    @Suite("Camera on vivid")
    struct CameraLabTests {
        static let request = ModeNegotiation.Request(preference: [.mjpeg, .yuyv], size: FrameSize(width: 640, height: 480), fps: 25)

        func captureNode() throws -> String {
            try #require(CameraDiscovery.captureNodes().first, "vivid loaded but no capture node found")
        }

        @Test("vivid's capture node is found; its other nodes are refused as not capturing")
        func discovery() throws {
            let nodes = CameraDiscovery.captureNodes()
            #expect(!nodes.isEmpty)
            let camera = try V4L2Camera(path: try captureNode())
            defer { camera.close() }
            #expect(camera.driver == "vivid")
            let others = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev")) ?? [])
                .filter { $0.hasPrefix("video") }.map { "/dev/\($0)" }.filter { !nodes.contains($0) }
            for node in others {
                #expect(throws: CameraError.self) { try V4L2Camera(path: node) }
            }
        }

        @Test("the enumeration matches v4l2-ctl --list-formats-ext")
        func matchesV4L2Ctl() throws {
            let node = try captureNode()
            let camera = try V4L2Camera(path: node)
            defer { camera.close() }
            let offers = try camera.formats()
            let listing = try CommandLineTool.run("/usr/bin/v4l2-ctl", ["-d", node, "--list-formats-ext"])
            #expect(listing.status == 0)
            // Lines: "[0]: 'YUYV' (YUYV 4:2:2)" then "Size: Discrete 640x480" per size; big-endian
            // variants read "'Y16 -BE'".
            var theirs: [(FourCC, [FrameSize])] = []
            for line in listing.stdout.split(separator: "\n") {
                let text = line.trimmingCharacters(in: .whitespaces)
                if text.hasPrefix("["), let open = text.firstIndex(of: "'") {
                    let quoted = text[text.index(after: open)...].prefix { $0 != "'" }
                    let code = FourCC(String(quoted.prefix(4)))
                    theirs.append((quoted.hasSuffix("-BE") ? FourCC(rawValue: code.rawValue | FourCC.bigEndianFlag) : code, []))
                } else if text.hasPrefix("Size: Discrete "), !theirs.isEmpty {
                    let numbers = text.dropFirst("Size: Discrete ".count).split(separator: "x").compactMap { Int($0) }
                    if numbers.count == 2 { theirs[theirs.count - 1].1.append(FrameSize(width: numbers[0], height: numbers[1])) }
                }
            }
            #expect(theirs.map(\.0) == offers.map(\.fourCC))
            for (offer, listed) in zip(offers, theirs) {
                guard case .discrete(let sizes) = offer.sizes else { continue }
                #expect(sizes == listed.1, "sizes of \(offer.fourCC)")
            }
        }

        @Test("formats, sizes and frame intervals are enumerated; YUYV 640x480 is offered")
        func formats() throws {
            let camera = try V4L2Camera(path: try captureNode())
            defer { camera.close() }
            let offers = try camera.formats()
            let yuyv = try #require(offers.first { $0.fourCC == .yuyv })
            guard case .discrete(let sizes) = yuyv.sizes else { Issue.record("vivid sizes not discrete"); return }
            #expect(sizes.contains(FrameSize(width: 640, height: 480)))
            #expect(yuyv.intervals[FrameSize(width: 640, height: 480)]?.isEmpty == false)
            #expect(ModeNegotiation.choose(from: offers, for: Self.request)?.fourCC == .yuyv)
        }

        @Test("mmap streaming delivers frames with increasing sequence numbers and monotonic timestamps", arguments: [
            (VideoFormat.yuyv, 640, 480), (.yuyv, 1280, 720), (.nv12, 640, 480), (.nv12, 1280, 720),
        ])
        func capture(format: VideoFormat, width: Int, height: Int) async throws {
            let camera = try V4L2Camera(path: try captureNode())
            defer { camera.close() }
            let size = FrameSize(width: width, height: height)
            let session = try CaptureSession(
                camera: camera, request: .init(preference: [format], size: size, fps: width > 640 ? 12 : 25), bufferCount: 4)
            #expect(session.mode.fourCC == format.fourCCs[0])
            #expect(session.mode.size == size)
            var frames: [CapturedFrame] = []
            for await frame in session.frames {
                frames.append(frame)
                if frames.count == 8 { break }
            }
            await session.stop()
            #expect(frames.count == 8)
            let frameBytes = format == .yuyv ? width * height * 2 : width * height * 3 / 2
            #expect(frames.allSatisfy { $0.bytes.count == frameBytes })
            let jpeg = try SnapshotEncoder.jpeg(from: try #require(frames.last), encoder: JPEGEncoder())
            #expect(jpeg.prefix(2) == [0xFF, 0xD8])
            for (earlier, later) in zip(frames, frames.dropFirst()) {
                #expect(later.sequence > earlier.sequence)
                #expect(later.timestamp > earlier.timestamp)
            }
            // The driver's clock is CLOCK_MONOTONIC: the last frame is within seconds of "now" on
            // that clock (vivid stamps frames from its own cadence, which may run slightly ahead).
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let age = Duration.seconds(Int64(now.tv_sec)) + .nanoseconds(Int64(now.tv_nsec)) - (frames.last?.timestamp ?? .zero)
            #expect(age > .seconds(-2) && age < .seconds(10), "frame age on CLOCK_MONOTONIC: \(age)")
            #expect(session.counters.failure == nil)
        }

        @Test("a YUYV frame from vivid becomes a full-resolution JPEG")
        func snapshot() async throws {
            let camera = try V4L2Camera(path: try captureNode())
            defer { camera.close() }
            let session = try CaptureSession(camera: camera, request: Self.request, bufferCount: 4)
            var iterator = session.frames.makeAsyncIterator()
            let frame = try #require(await iterator.next())
            await session.stop()
            let jpeg = try SnapshotEncoder.jpeg(from: frame, encoder: JPEGEncoder())
            #expect(jpeg.prefix(2) == [0xFF, 0xD8])
            #expect(jpeg.count > 1_000)
        }

        @Test("controls are listed and set; a bad value is refused with the range")
        func controls() throws {
            let camera = try V4L2Camera(path: try captureNode())
            defer { camera.close() }
            let controls = try camera.controls()
            let brightness = try #require(controls.first { $0.key == "brightness" })
            #expect(brightness.kind == .integer)
            let target = brightness.minimum + (brightness.maximum - brightness.minimum) / 4
            #expect(try camera.setControl("brightness", to: target) == target)
            #expect(try camera.controls().first { $0.key == "brightness" }?.value == target)
            do {
                try camera.setControl("brightness", to: brightness.maximum + 1)
                Issue.record("out-of-range value accepted")
            } catch {
                #expect(error.description.contains("outside"))
            }
            #expect(throws: CameraError.self) { try camera.setControl("warp_drive", to: 1) }
        }

        @Test("1,000 open/stream/stop/close cycles leave no descriptor or mapping behind")
        func noLeaks() async throws {
            let node = try captureNode()
            let baseline = KernelLab.resourceCounts()
            for cycle in 0..<1_000 {
                let camera = try V4L2Camera(path: node)
                let session = try CaptureSession(camera: camera, request: Self.request, bufferCount: 4)
                if cycle % 100 == 0 {
                    // Every hundredth cycle also waits for a frame, so buffers are really in flight.
                    var iterator = session.frames.makeAsyncIterator()
                    _ = await iterator.next()
                }
                await session.stop()
                camera.close()
            }
            let after = KernelLab.resourceCounts()
            #expect(after.descriptors == baseline.descriptors)
            #expect(after.mappings == baseline.mappings)
            #expect(after.mappings == 0)
        }

        @Test("unbinding vivid mid-stream ends the stream as disconnected; after bind it streams again")
        func unplugMidStream() async throws {
            let node = try captureNode()
            let baseline = KernelLab.resourceCounts()
            let camera = try V4L2Camera(path: node)
            let session = try CaptureSession(camera: camera, request: Self.request, bufferCount: 4)
            var iterator = session.frames.makeAsyncIterator()
            _ = try #require(await iterator.next())
            try KernelLab.writeSysfs("/sys/bus/platform/drivers/vivid/unbind", "vivid.0")
            var drained = 0
            while await iterator.next() != nil { drained += 1 }
            #expect(session.counters.failure == .disconnected(path: node))
            await session.stop()
            camera.close()
            #expect(KernelLab.resourceCounts().descriptors == baseline.descriptors)
            #expect(KernelLab.resourceCounts().mappings == 0)

            // Nothing holds the driver any more, so the module can be removed and loaded again.
            #expect(try CommandLineTool.run("/usr/sbin/rmmod", ["vivid"]).status == 0, "vivid still in use after the disconnect")
            #expect(try CommandLineTool.run("/usr/sbin/modprobe", ["vivid", "n_devs=2"]).status == 0)
            var reopened: String?
            for _ in 0..<100 where reopened == nil {
                reopened = CameraDiscovery.captureNodes().first
                if reopened == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let again = try V4L2Camera(path: try #require(reopened))
            defer { again.close() }
            let second = try CaptureSession(camera: again, request: Self.request, bufferCount: 4)
            var secondIterator = second.frames.makeAsyncIterator()
            #expect(await secondIterator.next() != nil)
            await second.stop()
        }

        @Test("the daemon streams from vivid, snapshots and sets controls, and survives an unplug")
        func daemonSurvivesUnplug() async throws {
            let daemon = try DaemonProcess(
                configuration: "camera:\n  device: /dev/v4l/by-path/platform-vivid.0-video-index0\n  width: 640\n  height: 480\n  fps: 25\n")
            try daemon.start()
            try await daemon.waitUntilServing()
            let client = ControlClient(socketPath: daemon.socketPath)
            func cameraService() async throws -> ServiceStatus? {
                try await client.get(ControlAPI.statusPath, as: DaemonStatus.self).services.first { $0.name == "camera" }
            }
            try await eventually { try await cameraService()?.state == .running }
            #expect(try await cameraService()?.detail.contains("YUYV 640x480") == true)

            let snapshot = try await client.post(ControlAPI.snapshotPath, json: [String: String](), as: SnapshotInfo.self)
            #expect(snapshot.width == 640 && snapshot.height == 480 && snapshot.sourceFormat == "YUYV")
            // Filed in the archive only: no plaintext copy, and the export carries a JPEG.
            let caseID = try #require(snapshot.caseId, "the snapshot was not filed: \(daemon.log)")
            #expect(snapshot.path == nil && snapshot.itemId != nil)
            let export = daemon.directory.file("snapshot.zip")
            #expect(try CommandLineTool.run("sightctl", ["case", "export", caseID, "--out", export, "--socket", daemon.socketPath]).status == 0)
            let magic = try CommandLineTool.run("/usr/bin/python3", ["-c", """
                import sys, zipfile
                z = zipfile.ZipFile(sys.argv[1]); print(z.read("evidence/" + sys.argv[2] + ".jpg")[:2].hex())
                """, export, try #require(snapshot.itemId)])
            #expect(magic.stdout.hasPrefix("ffd8"), "\(magic.stdout)\(magic.stderr)")
            let set = try CommandLineTool.run("sightctl", ["camera", "set", "brightness", "100", "--socket", daemon.socketPath])
            #expect(set.status == 0, "\(set.stderr)")
            #expect(set.stdout.contains("brightness = 100"))

            try KernelLab.writeSysfs("/sys/bus/platform/drivers/vivid/unbind", "vivid.0")
            // The capture's own error may say first that the camera failed; the remove event's
            // placeholder follows.
            try await eventually {
                let service = try await cameraService()
                return service?.state == .degraded && service?.detail.contains("disconnected") == true
            }
            #expect(daemon.process.isRunning)
            try await Task.sleep(for: .seconds(3))
            #expect(daemon.log.components(separatedBy: "camera unavailable").count - 1 == 1, "the loss was not logged exactly once")

            try KernelLab.writeSysfs("/sys/bus/platform/drivers/vivid/bind", "vivid.0")
            try await eventually { try await cameraService()?.state == .running }
            #expect(daemon.process.isRunning)
        }
    }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestFailure("condition not met within \(timeout)") }
        try await Task.sleep(for: .milliseconds(100))
    }
}
