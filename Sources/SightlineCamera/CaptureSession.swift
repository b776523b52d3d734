import CV4L2
import Foundation
import SightlineCore
import Synchronization

/// Streams frames from a `V4L2Camera` with mmap buffers on a dedicated thread that blocks in
/// `poll` on the device and an eventfd (written to stop it), never on the cooperative pool.
/// Frames leave as copies through a newest-frame-wins stream; the mmap'd buffers are re-queued
/// at once and never leave this type.
public final class CaptureSession: Sendable {
    public let mode: CameraMode
    public let frames = NewestFrameStream<CapturedFrame>()
    private let camera: V4L2Camera
    private let wakeFD: Int32
    private let buffers: [MappedBuffer]
    private let counterState = Mutex(Counters())
    private let threadDone = Mutex<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    /// When each setup step ended (negotiation, format set, buffers queued, streaming), in order.
    public let setupMarks: [(name: String, at: ContinuousClock.Instant)]
    private let firstDequeueInstant = Mutex<ContinuousClock.Instant?>(nil)

    public struct Counters: Sendable, Equatable {
        public var captured: UInt64 = 0
        public var missed: UInt64 = 0
        public var failure: CameraError?
    }

    struct MappedBuffer: @unchecked Sendable {
        let address: UnsafeMutableRawPointer
        let length: Int
    }

    /// Negotiates a mode from `request`, sets it (`VIDIOC_S_FMT`, `VIDIOC_S_PARM`), maps
    /// `bufferCount` buffers and starts streaming.
    public init(camera: V4L2Camera, request: ModeNegotiation.Request, bufferCount: Int) throws(CameraError) {
        var marks: [(name: String, at: ContinuousClock.Instant)] = []
        let wanted = try camera.negotiate(request)
        marks.append(("formats", .now))
        let fd = camera.fd
        let path = camera.path

        var format = v4l2_format()
        format.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        format.fmt.pix.width = UInt32(wanted.size.width)
        format.fmt.pix.height = UInt32(wanted.size.height)
        format.fmt.pix.pixelformat = wanted.fourCC.rawValue
        format.fmt.pix.field = V4L2_FIELD_NONE.rawValue
        try V4L2.ioctl(fd, CV4L2_VIDIOC_S_FMT, &format, "VIDIOC_S_FMT", path)
        var interval = wanted.interval
        if let requested = wanted.interval {
            var parameters = v4l2_streamparm()
            parameters.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            parameters.parm.capture.timeperframe.numerator = requested.numerator
            parameters.parm.capture.timeperframe.denominator = requested.denominator
            // Not every driver can set a rate; the one it reports back is the truth.
            if (try? V4L2.ioctl(fd, CV4L2_VIDIOC_S_PARM, &parameters, "VIDIOC_S_PARM", path)) != nil {
                let actual = parameters.parm.capture.timeperframe
                interval = actual.denominator > 0 ? FrameInterval(numerator: actual.numerator, denominator: actual.denominator) : requested
            }
        }
        mode = CameraMode(fourCC: FourCC(rawValue: format.fmt.pix.pixelformat),
                          size: FrameSize(width: Int(format.fmt.pix.width), height: Int(format.fmt.pix.height)),
                          interval: interval)
        marks.append(("set format", .now))

        var requestBuffers = v4l2_requestbuffers()
        requestBuffers.count = UInt32(bufferCount)
        requestBuffers.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        requestBuffers.memory = V4L2_MEMORY_MMAP.rawValue
        try V4L2.ioctl(fd, CV4L2_VIDIOC_REQBUFS, &requestBuffers, "VIDIOC_REQBUFS", path)
        var mapped: [MappedBuffer] = []
        do throws(CameraError) {
            guard requestBuffers.count >= 2 else {
                throw CameraError.system(operation: "VIDIOC_REQBUFS (got \(requestBuffers.count) buffers)", path: path, errno: ENOMEM)
            }
            for index in 0..<requestBuffers.count {
                var buffer = v4l2_buffer()
                buffer.index = index
                buffer.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
                buffer.memory = V4L2_MEMORY_MMAP.rawValue
                try V4L2.ioctl(fd, CV4L2_VIDIOC_QUERYBUF, &buffer, "VIDIOC_QUERYBUF", path)
                guard let address = cv4l2_mmap(fd, Int(buffer.length), Int64(buffer.m.offset)), cv4l2_map_failed(address) == 0 else {
                    throw CameraError.system(operation: "mmap", path: path, errno: errno)
                }
                mapped.append(MappedBuffer(address: address, length: Int(buffer.length)))
                try V4L2.ioctl(fd, CV4L2_VIDIOC_QBUF, &buffer, "VIDIOC_QBUF", path)
            }
            marks.append(("buffers", .now))
            var type = Int32(V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue)
            try V4L2.ioctl(fd, CV4L2_VIDIOC_STREAMON, &type, "VIDIOC_STREAMON", path)
            marks.append(("stream on", .now))
        } catch {
            Self.release(fd: fd, buffers: mapped)
            throw error
        }
        let wake = cv4l2_eventfd()
        guard wake >= 0 else {
            let code = errno
            Self.release(fd: fd, buffers: mapped)
            throw .system(operation: "eventfd", path: path, errno: code)
        }
        self.camera = camera
        self.buffers = mapped
        self.wakeFD = wake
        self.setupMarks = marks
        let thread = Thread { [self] in self.captureLoop() }
        thread.name = "capture \(path)"
        thread.start()
    }

    public var counters: Counters { counterState.withLock { $0 } }
    public var dropped: UInt64 { frames.droppedCount }
    /// When the capture thread got its first buffer back from the driver (`VIDIOC_DQBUF`).
    public var firstDequeue: ContinuousClock.Instant? { firstDequeueInstant.withLock { $0 } }

    /// Stops streaming, joins the capture thread, unmaps the buffers and frees them in the
    /// driver (`VIDIOC_STREAMOFF`, `munmap`, `VIDIOC_REQBUFS` 0). Idempotent: every call returns
    /// only once that is done, so the camera can be closed after any of them. Works after the
    /// device was unplugged.
    public func stop() async {
        let first = !stopped.exchange(true, ordering: .acquiringAndReleasing)
        if first {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, MemoryLayout<UInt64>.size)
        }
        // The capture thread releases the buffers on its way out (`captureLoop`).
        while !threadDone.withLock({ $0 }) {
            try? await Task.sleep(for: .milliseconds(2))
        }
        guard first else { return }
        Foundation.close(wakeFD)
        frames.finish()
    }

    private static func release(fd: Int32, buffers: [MappedBuffer]) {
        var type = Int32(V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue)
        _ = withUnsafeMutablePointer(to: &type) { cv4l2_ioctl(fd, CV4L2_VIDIOC_STREAMOFF, $0) }
        for buffer in buffers { _ = cv4l2_munmap(buffer.address, buffer.length) }
        var zero = v4l2_requestbuffers()
        zero.count = 0
        zero.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        zero.memory = V4L2_MEMORY_MMAP.rawValue
        _ = withUnsafeMutablePointer(to: &zero) { cv4l2_ioctl(fd, CV4L2_VIDIOC_REQBUFS, $0) }
    }

    private func captureLoop() {
        defer {
            // Here rather than in `stop()`: on a camera being unplugged these requests wait for
            // the driver's teardown (a second and more under emulation), which must not hold the
            // caller's thread, on a one-core device the whole cooperative pool.
            Self.release(fd: camera.fd, buffers: buffers)
            threadDone.withLock { $0 = true }
        }
        var gaps = SequenceGapDetector()
        var dequeuedBefore = false
        var descriptors = [pollfd(fd: camera.fd, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        while true {
            descriptors[0].revents = 0
            descriptors[1].revents = 0
            let ready = poll(&descriptors, 2, 2_000)
            if ready < 0 {
                if errno == EINTR { continue }
                return fail(.system(operation: "poll", path: camera.path, errno: errno))
            }
            if descriptors[1].revents != 0 { return }
            if ready == 0 { continue }
            if descriptors[0].revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0, descriptors[0].revents & Int16(POLLIN) == 0 {
                return fail(.disconnected(path: camera.path))
            }
            var buffer = v4l2_buffer()
            buffer.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            buffer.memory = V4L2_MEMORY_MMAP.rawValue
            do {
                try V4L2.ioctl(camera.fd, CV4L2_VIDIOC_DQBUF, &buffer, "VIDIOC_DQBUF", camera.path)
            } catch {
                if case .system(_, _, let code) = error, code == EAGAIN { continue }
                return fail(error)
            }
            if !dequeuedBefore {
                dequeuedBefore = true
                firstDequeueInstant.withLock { $0 = .now }
            }
            // Check what the kernel says against what was mapped before touching memory.
            guard Int(buffer.index) < buffers.count else {
                return fail(.system(operation: "VIDIOC_DQBUF returned buffer \(buffer.index)", path: camera.path, errno: EIO))
            }
            let mapped = buffers[Int(buffer.index)]
            let used = min(Int(buffer.bytesused), mapped.length)
            let bytes = [UInt8](UnsafeRawBufferPointer(start: mapped.address, count: used))
            let corrupted = buffer.flags & UInt32(V4L2_BUF_FLAG_ERROR) != 0
            // QBUF rewrites the struct: take what the driver said about this frame first.
            let sequence = buffer.sequence
            let timestamp = Duration.seconds(Int64(buffer.timestamp.tv_sec)) + .microseconds(Int64(buffer.timestamp.tv_usec))
            do {
                try V4L2.ioctl(camera.fd, CV4L2_VIDIOC_QBUF, &buffer, "VIDIOC_QBUF", camera.path)
            } catch {
                return fail(error)
            }
            let missed = gaps.observe(sequence)
            counterState.withLock {
                $0.captured += 1
                $0.missed += UInt64(missed)
            }
            if corrupted || used == 0 { continue }
            frames.offer(CapturedFrame(mode: mode, sequence: sequence, timestamp: timestamp, bytes: bytes, missedBefore: missed))
        }
    }

    private func fail(_ error: CameraError) {
        counterState.withLock { $0.failure = error }
        frames.finish()
    }
}
