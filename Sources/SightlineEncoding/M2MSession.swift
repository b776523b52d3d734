internal import CV4L2
internal import Foundation
public import SightlineCamera
import SightlineCore

/// Finds V4L2 memory-to-memory nodes and reads what they offer.
public enum M2MDevices {
    /// Every /dev/videoN that is a memory-to-memory device (`V4L2_CAP_VIDEO_M2M(_MPLANE)`), in
    /// node order, with the formats of both queues. Nodes that cannot be opened are left out:
    /// a busy or foreign node must not stop the daemon from starting.
    public static func scan(directory: String = "/dev") -> [M2MDeviceDescription] {
        let nodes = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix("video") && Int($0.dropFirst(5)) != nil }
            .sorted { (Int($0.dropFirst(5)) ?? 0) < (Int($1.dropFirst(5)) ?? 0) }
        return nodes.compactMap { try? describe("\(directory)/\($0)") }
    }

    /// One node's description; nil when it is not a memory-to-memory device.
    static func describe(_ path: String) throws(CameraError) -> M2MDeviceDescription? {
        let fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw CameraError.from(errno: errno, operation: "open", path: path) }
        defer { close(fd) }
        var capability = v4l2_capability()
        try V4L2.ioctl(fd, CV4L2_VIDIOC_QUERYCAP, &capability, "VIDIOC_QUERYCAP", path)
        let caps = capability.capabilities & UInt32(V4L2_CAP_DEVICE_CAPS) != 0 ? capability.device_caps : capability.capabilities
        let multiplanar = caps & UInt32(V4L2_CAP_VIDEO_M2M_MPLANE) != 0
        guard multiplanar || caps & UInt32(V4L2_CAP_VIDEO_M2M) != 0 else { return nil }
        let output = multiplanar ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT
        let capture = multiplanar ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE
        let sysfsName = (try? String(contentsOfFile: "/sys/class/video4linux/\((path as NSString).lastPathComponent)/name", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return M2MDeviceDescription(
            path: path, driver: V4L2.string(from: capability.driver),
            name: sysfsName ?? V4L2.string(from: capability.card), multiplanar: multiplanar,
            outputFormats: try formats(fd, output, path), captureFormats: try formats(fd, capture, path))
    }

    static func formats(_ fd: Int32, _ type: v4l2_buf_type, _ path: String) throws(CameraError) -> [FourCC] {
        var result: [FourCC] = []
        for index in 0..<128 {
            var description = v4l2_fmtdesc()
            description.index = UInt32(index)
            description.type = type.rawValue
            guard try V4L2.ioctlUnlessEnd(fd, CV4L2_VIDIOC_ENUM_FMT, &description, "VIDIOC_ENUM_FMT", path) else { break }
            result.append(FourCC(rawValue: description.pixelformat))
        }
        return result
    }
}

/// One open memory-to-memory context on a multiplanar V4L2 node: data written into OUTPUT
/// buffers comes back transformed in CAPTURE buffers (raw pictures in, coded frames out for an
/// encoder; the reverse for a decoder). Single-plane formats only (YU12, NV12, coded streams),
/// which is what encoders take and emit.
///
/// Buffers are mmap'd and never leave this type: `queue` copies in, `dequeue` copies out.
/// Talks to the kernel directly (no libv4l2, which has nothing to convert for M2M nodes).
/// Not thread-safe: one owner makes every call.
public final class M2MSession {
    public struct Format: Sendable, Equatable {
        public let fourCC: FourCC
        public let width: Int
        public let height: Int
        /// Bytes per row of the first plane, as the driver aligned it.
        public let bytesPerLine: Int
        /// The most one buffer of this format holds.
        public let sizeImage: Int
    }

    /// One buffer the driver handed back on CAPTURE.
    public struct Packet: Sendable {
        public let data: [UInt8]
        /// The timestamp of the OUTPUT buffer it came from (the framework copies it across).
        public let timestamp: Duration
        /// `V4L2_BUF_FLAG_KEYFRAME`.
        public let isKeyframe: Bool
        /// `V4L2_BUF_FLAG_LAST`: the last buffer after a stop command.
        public let isLast: Bool
        public let sequence: UInt32
    }

    public let path: String
    public let driver: String
    public private(set) var outputFormat: Format
    public private(set) var captureFormat: Format
    private let fd: Int32
    private var output: [MappedPlane] = []
    private var capture: [MappedPlane] = []
    /// OUTPUT buffers the application may fill: not queued, or dequeued back.
    private var freeOutput: [Int] = []
    private var streaming = false
    private var closed = false

    private struct MappedPlane {
        let address: UnsafeMutableRawPointer
        let length: Int
    }

    private static let outputType = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE
    private static let captureType = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE

    /// Opens `path` and sets both formats, the coded one first as the stateful codec interfaces
    /// ask (an encoder's CAPTURE, a decoder's OUTPUT): the driver derives the other side from it.
    /// Sizes and strides the driver adjusted are in `outputFormat`/`captureFormat`.
    public init(path: String, output: FourCC, capture: FourCC, width: Int, height: Int, codedSide: CodedSide) throws(CameraError) {
        let fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw CameraError.from(errno: errno, operation: "open", path: path) }
        self.fd = fd
        self.path = path
        var capability = v4l2_capability()
        do throws(CameraError) {
            try V4L2.ioctl(fd, CV4L2_VIDIOC_QUERYCAP, &capability, "VIDIOC_QUERYCAP", path)
            let caps = capability.capabilities & UInt32(V4L2_CAP_DEVICE_CAPS) != 0 ? capability.device_caps : capability.capabilities
            guard caps & UInt32(V4L2_CAP_VIDEO_M2M_MPLANE) != 0, caps & UInt32(V4L2_CAP_STREAMING) != 0 else {
                throw CameraError.system(operation: "VIDIOC_QUERYCAP (not a multiplanar memory-to-memory device)", path: path, errno: ENOTTY)
            }
            let order: [(v4l2_buf_type, FourCC)] = codedSide == .capture
                ? [(Self.captureType, capture), (Self.outputType, output)]
                : [(Self.outputType, output), (Self.captureType, capture)]
            var formats: [UInt32: Format] = [:]
            for (type, fourCC) in order {
                formats[type.rawValue] = try Self.setFormat(fd, path, type, fourCC, width: width, height: height)
            }
            // Setting the second side may have changed the first (sizes follow each other).
            outputFormat = try Self.getFormat(fd, path, Self.outputType)
            captureFormat = try Self.getFormat(fd, path, Self.captureType)
        } catch {
            close(fd)
            throw error
        }
        driver = V4L2.string(from: capability.driver)
    }

    /// Which queue carries the coded stream.
    public enum CodedSide: Sendable { case output, capture }

    deinit { shutDown() }

    /// Stops streaming, unmaps and closes. Idempotent.
    public func shutDown() {
        guard !closed else { return }
        closed = true
        if streaming {
            for type in [Self.outputType, Self.captureType] {
                var raw = type.rawValue
                _ = try? V4L2.ioctl(fd, CV4L2_VIDIOC_STREAMOFF, &raw, "VIDIOC_STREAMOFF", path)
            }
        }
        for plane in output + capture { munmap(plane.address, plane.length) }
        output = []
        capture = []
        close(fd)
    }

    // MARK: Controls

    /// The range of a control, nil when the driver does not have it.
    public func controlRange(_ id: UInt32) -> ClosedRange<Int64>? {
        var query = v4l2_query_ext_ctrl()
        query.id = id
        guard (try? V4L2.ioctl(fd, CV4L2_VIDIOC_QUERY_EXT_CTRL, &query, "VIDIOC_QUERY_EXT_CTRL", path)) != nil,
              query.flags & UInt32(V4L2_CTRL_FLAG_DISABLED) == 0, query.minimum <= query.maximum else { return nil }
        return query.minimum...query.maximum
    }

    /// Sets a control if the driver has it, clamped to its range. Returns the value set, nil
    /// when the driver has no such control.
    @discardableResult
    public func setControl(_ id: UInt32, _ value: Int64) throws(CameraError) -> Int64? {
        guard let range = controlRange(id) else { return nil }
        var control = v4l2_control()
        control.id = id
        control.value = Int32(clamping: min(max(value, range.lowerBound), range.upperBound))
        try V4L2.ioctl(fd, CV4L2_VIDIOC_S_CTRL, &control, "VIDIOC_S_CTRL", path)
        return Int64(control.value)
    }

    /// The frame rate the application will feed (`VIDIOC_S_PARM` on OUTPUT); encoders use it for
    /// rate control. Drivers without it are left alone.
    public func setFrameRate(_ fps: Double) {
        var parameters = v4l2_streamparm()
        parameters.type = Self.outputType.rawValue
        parameters.parm.output.timeperframe.numerator = 1000
        parameters.parm.output.timeperframe.denominator = UInt32(max(1, (fps * 1000).rounded()))
        _ = try? V4L2.ioctl(fd, CV4L2_VIDIOC_S_PARM, &parameters, "VIDIOC_S_PARM", path)
    }

    // MARK: Streaming

    /// Allocates and maps the buffers of both queues, queues every CAPTURE buffer and starts
    /// both queues.
    public func start(outputBuffers: Int = 4, captureBuffers: Int = 4) throws(CameraError) {
        output = try map(Self.outputType, count: outputBuffers)
        freeOutput = Array(output.indices)
        capture = try map(Self.captureType, count: captureBuffers)
        for index in capture.indices { try queueCapture(index) }
        for type in [Self.outputType, Self.captureType] {
            var raw = type.rawValue
            try V4L2.ioctl(fd, CV4L2_VIDIOC_STREAMON, &raw, "VIDIOC_STREAMON", path)
        }
        streaming = true
    }

    /// Restarts the CAPTURE queue and rereads its format. On a stateful encoder this resets the
    /// stream: the next frame is a keyframe (the interface's way to get one where there is no
    /// FORCE_KEY_FRAME control). A stateful decoder needs it after a source change (an empty
    /// buffer marked last), to go on in the format the stream has.
    public func restartCapture() throws(CameraError) {
        var raw = Self.captureType.rawValue
        try V4L2.ioctl(fd, CV4L2_VIDIOC_STREAMOFF, &raw, "VIDIOC_STREAMOFF", path)
        captureFormat = try Self.getFormat(fd, path, Self.captureType)
        for index in capture.indices { try queueCapture(index) }
        try V4L2.ioctl(fd, CV4L2_VIDIOC_STREAMON, &raw, "VIDIOC_STREAMON", path)
    }

    /// Fills a free OUTPUT buffer and queues it. `fill` gets the whole mapped plane and returns
    /// how many bytes it wrote. Waits up to `timeout` for the driver to give a buffer back.
    public func queue(timestamp: Duration, timeout: Duration,
                      fill: (UnsafeMutableRawBufferPointer) throws(CameraError) -> Int) throws(CameraError) {
        try reclaimOutput(wait: freeOutput.isEmpty ? timeout : .zero)
        guard let index = freeOutput.popLast() else {
            throw CameraError.system(operation: "waiting for a free OUTPUT buffer (the device stopped taking frames)", path: path, errno: ETIMEDOUT)
        }
        let plane = output[index]
        let used = try fill(UnsafeMutableRawBufferPointer(start: plane.address, count: plane.length))
        var planes = v4l2_plane()
        planes.bytesused = UInt32(min(used, plane.length))
        planes.length = UInt32(plane.length)
        var buffer = v4l2_buffer()
        buffer.index = UInt32(index)
        buffer.type = Self.outputType.rawValue
        buffer.memory = V4L2_MEMORY_MMAP.rawValue
        buffer.length = 1
        let (seconds, attoseconds) = timestamp.components
        buffer.timestamp.tv_sec = Int(seconds)
        buffer.timestamp.tv_usec = Int(attoseconds / 1_000_000_000_000)
        do throws(CameraError) {
            try withUnsafeMutablePointer(to: &planes) { (pointer) throws(CameraError) in
                buffer.m.planes = pointer
                try V4L2.ioctl(fd, CV4L2_VIDIOC_QBUF, &buffer, "VIDIOC_QBUF (OUTPUT)", path)
            }
        } catch {
            freeOutput.append(index)
            throw error
        }
    }

    /// The next CAPTURE buffer, waiting up to `timeout`; nil when none came in time or the
    /// stream already ended (after the last buffer of a stop command).
    public func dequeue(timeout: Duration) throws(CameraError) -> Packet? {
        guard try wait(for: Int16(POLLIN), timeout: timeout),
              let (buffer, planes) = try dequeueBuffer(Self.captureType, "VIDIOC_DQBUF (CAPTURE)") else { return nil }
        let index = Int(buffer.index)
        guard capture.indices.contains(index) else {
            throw CameraError.system(operation: "VIDIOC_DQBUF (CAPTURE returned buffer \(index))", path: path, errno: EINVAL)
        }
        let plane = capture[index]
        let start = min(Int(planes.data_offset), plane.length)
        let end = min(max(Int(planes.bytesused), start), plane.length)
        let data = [UInt8](UnsafeRawBufferPointer(start: plane.address + start, count: end - start))
        let flags = buffer.flags
        let packet = Packet(
            data: data,
            timestamp: .seconds(Int64(buffer.timestamp.tv_sec)) + .microseconds(Int64(buffer.timestamp.tv_usec)),
            isKeyframe: flags & UInt32(V4L2_BUF_FLAG_KEYFRAME) != 0,
            isLast: flags & UInt32(V4L2_BUF_FLAG_LAST) != 0,
            sequence: buffer.sequence)
        if !packet.isLast { try queueCapture(index) }
        try reclaimOutput(wait: .zero)
        return packet
    }

    /// `V4L2_ENC_CMD_STOP`: the encoder finishes every queued frame and marks its last buffer.
    public func stopEncoder() throws(CameraError) {
        var command = v4l2_encoder_cmd()
        command.cmd = UInt32(V4L2_ENC_CMD_STOP)
        try V4L2.ioctl(fd, CV4L2_VIDIOC_ENCODER_CMD, &command, "VIDIOC_ENCODER_CMD (stop)", path)
    }

    // MARK: Internals

    private static func setFormat(_ fd: Int32, _ path: String, _ type: v4l2_buf_type, _ fourCC: FourCC,
                                  width: Int, height: Int) throws(CameraError) -> Format {
        var format = v4l2_format()
        format.type = type.rawValue
        format.fmt.pix_mp.width = UInt32(width)
        format.fmt.pix_mp.height = UInt32(height)
        format.fmt.pix_mp.pixelformat = fourCC.rawValue
        format.fmt.pix_mp.field = V4L2_FIELD_NONE.rawValue
        format.fmt.pix_mp.num_planes = 1
        try V4L2.ioctl(fd, CV4L2_VIDIOC_S_FMT, &format, "VIDIOC_S_FMT", path)
        guard format.fmt.pix_mp.pixelformat == fourCC.rawValue else {
            throw CameraError.system(operation: "VIDIOC_S_FMT (\(fourCC) refused, driver chose \(FourCC(rawValue: format.fmt.pix_mp.pixelformat)))",
                                     path: path, errno: EINVAL)
        }
        guard format.fmt.pix_mp.num_planes == 1 else {
            throw CameraError.system(operation: "VIDIOC_S_FMT (\(fourCC) needs \(format.fmt.pix_mp.num_planes) planes; only one is supported)",
                                     path: path, errno: EINVAL)
        }
        return Self.format(of: format)
    }

    private static func getFormat(_ fd: Int32, _ path: String, _ type: v4l2_buf_type) throws(CameraError) -> Format {
        var format = v4l2_format()
        format.type = type.rawValue
        try V4L2.ioctl(fd, CV4L2_VIDIOC_G_FMT, &format, "VIDIOC_G_FMT", path)
        return Self.format(of: format)
    }

    private static func format(of format: v4l2_format) -> Format {
        let pix = format.fmt.pix_mp
        return Format(fourCC: FourCC(rawValue: pix.pixelformat), width: Int(pix.width), height: Int(pix.height),
                      bytesPerLine: Int(pix.plane_fmt.0.bytesperline), sizeImage: Int(pix.plane_fmt.0.sizeimage))
    }

    private func map(_ type: v4l2_buf_type, count: Int) throws(CameraError) -> [MappedPlane] {
        var request = v4l2_requestbuffers()
        request.count = UInt32(count)
        request.type = type.rawValue
        request.memory = V4L2_MEMORY_MMAP.rawValue
        try V4L2.ioctl(fd, CV4L2_VIDIOC_REQBUFS, &request, "VIDIOC_REQBUFS", path)
        guard request.count >= 1 else {
            throw CameraError.system(operation: "VIDIOC_REQBUFS (no buffers)", path: path, errno: ENOMEM)
        }
        var mapped: [MappedPlane] = []
        for index in 0..<request.count {
            var planes = v4l2_plane()
            var buffer = v4l2_buffer()
            buffer.index = index
            buffer.type = type.rawValue
            buffer.memory = V4L2_MEMORY_MMAP.rawValue
            buffer.length = 1
            try withUnsafeMutablePointer(to: &planes) { (pointer) throws(CameraError) in
                buffer.m.planes = pointer
                try V4L2.ioctl(fd, CV4L2_VIDIOC_QUERYBUF, &buffer, "VIDIOC_QUERYBUF", path)
            }
            let length = Int(planes.length)
            let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(planes.m.mem_offset))
            guard let address, address != MAP_FAILED else {
                let code = errno
                for plane in mapped { munmap(plane.address, plane.length) }
                throw CameraError.system(operation: "mmap", path: path, errno: code)
            }
            mapped.append(MappedPlane(address: address, length: length))
        }
        return mapped
    }

    private func queueCapture(_ index: Int) throws(CameraError) {
        var planes = v4l2_plane()
        planes.length = UInt32(capture[index].length)
        var buffer = v4l2_buffer()
        buffer.index = UInt32(index)
        buffer.type = Self.captureType.rawValue
        buffer.memory = V4L2_MEMORY_MMAP.rawValue
        buffer.length = 1
        try withUnsafeMutablePointer(to: &planes) { (pointer) throws(CameraError) in
            buffer.m.planes = pointer
            try V4L2.ioctl(fd, CV4L2_VIDIOC_QBUF, &buffer, "VIDIOC_QBUF (CAPTURE)", path)
        }
    }

    /// Takes back OUTPUT buffers the driver is done with, waiting up to `wait` for the first.
    private func reclaimOutput(wait: Duration) throws(CameraError) {
        if wait > .zero { _ = try self.wait(for: Int16(POLLOUT), timeout: wait) }
        while let (buffer, _) = try dequeueBuffer(Self.outputType, "VIDIOC_DQBUF (OUTPUT)") {
            if output.indices.contains(Int(buffer.index)) { freeOutput.append(Int(buffer.index)) }
        }
    }

    /// One `VIDIOC_DQBUF` on a queue, without blocking; nil when it has nothing (EAGAIN) or
    /// its stream ended (EPIPE: the last buffer was already dequeued).
    private func dequeueBuffer(_ type: v4l2_buf_type, _ name: String) throws(CameraError) -> (v4l2_buffer, v4l2_plane)? {
        var planes = v4l2_plane()
        var buffer = v4l2_buffer()
        buffer.type = type.rawValue
        buffer.memory = V4L2_MEMORY_MMAP.rawValue
        buffer.length = 1
        let dequeued = try withUnsafeMutablePointer(to: &planes) { (pointer) throws(CameraError) -> Bool in
            buffer.m.planes = pointer
            do throws(CameraError) {
                try V4L2.ioctl(fd, CV4L2_VIDIOC_DQBUF, &buffer, name, path)
                return true
            } catch {
                if case .system(_, _, let code) = error, code == EAGAIN || code == EPIPE { return false }
                throw error
            }
        }
        buffer.m.planes = nil
        return dequeued ? (buffer, planes) : nil
    }

    /// Polls for `events` (POLLIN: a CAPTURE buffer is done; POLLOUT: an OUTPUT one). False on
    /// timeout. POLLERR (a queue not streaming or without buffers) counts as ready: the
    /// following DQBUF reports what is wrong.
    private func wait(for events: Int16, timeout: Duration) throws(CameraError) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            var descriptor = pollfd(fd: fd, events: events, revents: 0)
            let remaining = max(.zero, deadline - .now)
            let milliseconds = Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000)
            let result = poll(&descriptor, 1, milliseconds)
            if result > 0 { return true }
            if result == 0 { return false }
            let code = errno
            if code != EINTR { throw CameraError.from(errno: code, operation: "poll", path: path) }
        }
    }
}
