import Foundation
import SightlineCamera
import SightlineCore
import SightlineTesting
import Testing

/// Camera capture against the real vivid driver, inside the kernel lab.
@Suite("Camera on vivid", .serialized, .enabled(if: KernelLab.insideGuest, Comment(rawValue: KernelLab.notInGuest)))
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

    @Test("mmap streaming delivers frames with increasing sequence numbers and monotonic timestamps")
    func capture() async throws {
        let camera = try V4L2Camera(path: try captureNode())
        defer { camera.close() }
        let session = try CaptureSession(camera: camera, request: Self.request, bufferCount: 4)
        #expect(session.mode.fourCC == .yuyv)
        #expect(session.mode.size == FrameSize(width: 640, height: 480))
        var frames: [CapturedFrame] = []
        for await frame in session.frames {
            frames.append(frame)
            if frames.count == 15 { break }
        }
        await session.stop()
        #expect(frames.count == 15)
        #expect(frames.allSatisfy { $0.bytes.count == 640 * 480 * 2 })
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

    @Test("20 open/stream/stop/close cycles leave no descriptor or mapping behind")
    func noLeaks() async throws {
        let node = try captureNode()
        let baseline = KernelLab.resourceCounts()
        for _ in 0..<20 {
            let camera = try V4L2Camera(path: node)
            let session = try CaptureSession(camera: camera, request: Self.request, bufferCount: 4)
            var iterator = session.frames.makeAsyncIterator()
            _ = await iterator.next()
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

        try KernelLab.writeSysfs("/sys/bus/platform/drivers/vivid/bind", "vivid.0")
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
}
