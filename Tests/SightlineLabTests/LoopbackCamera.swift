import CV4L2
import Foundation
import SightlineCamera
import SightlineCore
import SightlineTesting
import Synchronization

/// A v4l2loopback camera for one test: the module the host built is inserted with one device
/// labelled `label` and removed again afterwards, so no other lab test ever sees it. What a
/// `LoopbackProducer` writes into the device's output side, its capture side delivers, in any
/// format the producer sets, compressed ones included (vivid has none).
struct LoopbackCamera {
    let node: String
    let label: String

    /// Inserts v4l2loopback, runs `body` with its camera and removes the module, which fails
    /// while anything still holds the device open.
    ///
    /// `exclusive_caps=0` announces capture and output from the start, so udev's `v4l_id`
    /// records `:capture:video_output:` at the add event; with `exclusive_caps=1` the node says
    /// output only until a producer streams, and udev would record it as an output node.
    static func with<T>(label: String, _ body: (LoopbackCamera) async throws -> T) async throws -> T {
        guard let module = LabModules.loopbackModule else { throw TestFailure(LabModules.noLoopback) }
        // videodev, its only dependency, is in the kernel's tree (vivid loads it too).
        try run("/usr/sbin/modprobe", ["videodev"])
        try run("/usr/sbin/insmod", [module, "devices=1", "exclusive_caps=0", "card_label=\(label)", "max_buffers=4"])
        let camera: LoopbackCamera
        do {
            try run("/usr/bin/udevadm", ["settle", "--timeout=30"])
            camera = LoopbackCamera(node: try videoNode(named: label), label: label)
        } catch {
            _ = try? CommandLineTool.run("/usr/sbin/rmmod", ["v4l2loopback"])
            throw error
        }
        let result: T
        do {
            result = try await body(camera)
        } catch {
            _ = try? CommandLineTool.run("/usr/sbin/rmmod", ["v4l2loopback"])
            throw error
        }
        try run("/usr/sbin/rmmod", ["v4l2loopback"])
        try run("/usr/bin/udevadm", ["settle", "--timeout=30"])
        return result
    }

    private static func run(_ tool: String, _ arguments: [String]) throws {
        let result = try CommandLineTool.run(tool, arguments)
        guard result.status == 0 else {
            throw TestFailure("\(tool) \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
        }
    }
}

/// The producer side of a v4l2loopback device, as a program feeding it would be: the format is
/// set on the OUTPUT queue (`VIDIOC_S_FMT`) and every `write` is one frame, which the capture
/// side dequeues with exactly the bytes written (`bytesused` is the write's length).
final class LoopbackProducer: Sendable {
    let node: String
    private let fd: Int32
    private let closed = Atomic<Bool>(false)

    init(node: String, fourCC: FourCC, width: Int, height: Int) throws {
        let fd = open(node, O_RDWR)
        guard fd >= 0 else { throw TestFailure("open \(node): \(String(cString: strerror(errno)))") }
        var format = v4l2_format()
        format.type = V4L2_BUF_TYPE_VIDEO_OUTPUT.rawValue
        format.fmt.pix.width = UInt32(width)
        format.fmt.pix.height = UInt32(height)
        format.fmt.pix.pixelformat = fourCC.rawValue
        format.fmt.pix.field = V4L2_FIELD_NONE.rawValue
        do {
            try V4L2.ioctl(fd, CV4L2_VIDIOC_S_FMT, &format, "VIDIOC_S_FMT", node)
        } catch {
            Foundation.close(fd)
            throw error
        }
        guard format.fmt.pix.pixelformat == fourCC.rawValue else {
            Foundation.close(fd)
            throw TestFailure("\(node) took \(FourCC(rawValue: format.fmt.pix.pixelformat)) instead of \(fourCC)")
        }
        self.node = node
        self.fd = fd
    }

    /// Closes the output side; the capture side keeps its format only while a producer has it open.
    func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Foundation.close(fd)
    }

    deinit { close() }

    /// Writes one frame; the loopback takes it whole or not at all.
    func write(_ frame: [UInt8]) throws {
        let written = frame.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard written == frame.count else {
            throw TestFailure("write \(frame.count) bytes to \(node): \(written < 0 ? String(cString: strerror(errno)) : "\(written) taken")")
        }
    }
}

/// Collects what a capture session delivers on a task of its own, so the test can write a frame
/// and wait, with a deadline, until it has come out.
final class CapturedFrames: Sendable {
    private let frames = Mutex<[CapturedFrame]>([])
    private let collector = Mutex<Task<Void, Never>?>(nil)

    init(_ session: CaptureSession) {
        let task = Task { [self] in
            for await frame in session.frames { frames.withLock { $0.append(frame) } }
        }
        collector.withLock { $0 = task }
    }

    var all: [CapturedFrame] { frames.withLock { $0 } }

    /// Waits until `count` frames have arrived, at most `timeout`.
    func wait(for count: Int, timeout: Duration = .seconds(10)) async throws {
        try await eventually(timeout: timeout) { all.count >= count }
    }

    /// Waits for the collecting task, which ends when the session stops.
    func finished() async { await collector.withLock { $0 }?.value }
}

/// Feeds a loopback like a camera: writes `frames` over and over at a steady rate on a thread of
/// its own until stopped.
final class LoopbackFeeder: Sendable {
    private let running = Atomic<Bool>(true)
    private let finished = Atomic<Bool>(false)
    private let written = Atomic<Int>(0)
    private let frames: Mutex<[[UInt8]]>

    init(_ producer: LoopbackProducer, frames: [[UInt8]], interval: Duration) {
        self.frames = Mutex(frames)
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        let thread = Thread { [self] in
            var index = 0
            while running.load(ordering: .acquiring) {
                let frame = self.frames.withLock { $0[index % $0.count] }
                if (try? producer.write(frame)) != nil { written.add(1, ordering: .relaxed) }
                index += 1
                Thread.sleep(forTimeInterval: seconds)
            }
            finished.store(true, ordering: .releasing)
        }
        thread.name = "loopback feeder"
        thread.start()
    }

    /// Loops `frames` from now on, at the same position in the loop.
    func replaceFrames(with frames: [[UInt8]]) {
        self.frames.withLock { $0 = frames }
    }

    /// Frames written so far.
    var count: Int { written.load(ordering: .relaxed) }

    func stop() async {
        running.store(false, ordering: .releasing)
        while !finished.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(10)) }
    }
}
