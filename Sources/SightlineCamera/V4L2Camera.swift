import CV4L2
import Foundation
import SightlineCore
import Synchronization

/// A V4L2 camera opened through libv4l2 (`v4l2_open`). One instance owns one file descriptor;
/// `close()` releases it, and a capture session must be stopped first.
public final class V4L2Camera: Sendable {
    public let path: String
    public let driver: String
    public let card: String
    public let busInfo: String
    let fd: Int32
    private let closed = Atomic<Bool>(false)

    /// Opens `path` (a /dev/videoN node or a /dev/v4l/by-id link) and checks that it captures.
    public init(path: String) throws(CameraError) {
        let fd = cv4l2_open(path, O_RDWR | O_NONBLOCK)
        guard fd >= 0 else { throw CameraError.from(errno: errno, operation: "open", path: path) }
        var capability = v4l2_capability()
        do {
            try V4L2.ioctl(fd, CV4L2_VIDIOC_QUERYCAP, &capability, "VIDIOC_QUERYCAP", path)
        } catch {
            cv4l2_close(fd)
            throw error
        }
        let capabilities = capability.capabilities & UInt32(V4L2_CAP_DEVICE_CAPS) != 0
            ? capability.device_caps : capability.capabilities
        let card = V4L2.string(from: capability.card)
        guard capabilities & UInt32(V4L2_CAP_VIDEO_CAPTURE) != 0, capabilities & UInt32(V4L2_CAP_STREAMING) != 0 else {
            cv4l2_close(fd)
            throw CameraError.notACaptureDevice(path: path, card: card)
        }
        self.path = path
        self.fd = fd
        self.card = card
        self.driver = V4L2.string(from: capability.driver)
        self.busInfo = V4L2.string(from: capability.bus_info)
    }

    /// Releases the file descriptor (`v4l2_close`). Idempotent.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        cv4l2_close(fd)
    }

    deinit { close() }

    // MARK: Formats

    /// The camera's native formats with their sizes and frame intervals (`VIDIOC_ENUM_FMT`,
    /// `VIDIOC_ENUM_FRAMESIZES`, `VIDIOC_ENUM_FRAMEINTERVALS`), for listing; opening a capture
    /// session uses `negotiate(_:)`.
    public func formats() throws(CameraError) -> [FormatOffer] {
        var offers: [FormatOffer] = []
        for description in try nativeFormats() {
            let fourCC = FourCC(rawValue: description.pixelformat)
            let sizes = try frameSizes(fourCC)
            var intervals: [FrameSize: [FrameInterval]] = [:]
            if case .discrete(let list) = sizes {
                for size in list { intervals[size] = try frameIntervals(fourCC, size) }
            }
            offers.append(FormatOffer(
                fourCC: fourCC, name: V4L2.string(from: description.description),
                compressed: description.flags & UInt32(V4L2_FMT_FLAG_COMPRESSED) != 0,
                sizes: sizes, intervals: intervals))
        }
        return offers
    }

    /// The mode `ModeNegotiation` would choose from `formats()`, asking the driver for sizes
    /// and rates only of the formats it tries: opening a camera (a re-plugged one too) does not
    /// wait for the whole list.
    public func negotiate(_ request: ModeNegotiation.Request) throws(CameraError) -> CameraMode {
        let fourCCs = try nativeFormats().map { FourCC(rawValue: $0.pixelformat) }
        let mode = try ModeNegotiation.choose(
            formats: fourCCs, for: request,
            sizes: { fourCC throws(CameraError) in try frameSizes(fourCC) },
            intervals: { fourCC, size throws(CameraError) in try frameIntervals(fourCC, size) })
        guard let mode else { throw .noUsableFormat(path: path, offered: fourCCs.map(\.description)) }
        return mode
    }

    /// The formats the device itself delivers (`VIDIOC_ENUM_FMT`), without those libv4l2 only
    /// emulates by converting in software: they cost CPU the device does not have.
    private func nativeFormats() throws(CameraError) -> [v4l2_fmtdesc] {
        var found: [v4l2_fmtdesc] = []
        for index in 0..<256 {
            var description = v4l2_fmtdesc()
            description.index = UInt32(index)
            description.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            guard try V4L2.ioctlUnlessEnd(fd, CV4L2_VIDIOC_ENUM_FMT, &description, "VIDIOC_ENUM_FMT", path) else { break }
            if description.flags & UInt32(V4L2_FMT_FLAG_EMULATED) == 0 { found.append(description) }
        }
        return found
    }

    private func frameSizes(_ fourCC: FourCC) throws(CameraError) -> FrameSizes {
        var list: [FrameSize] = []
        for index in 0..<256 {
            var size = v4l2_frmsizeenum()
            size.index = UInt32(index)
            size.pixel_format = fourCC.rawValue
            guard try V4L2.ioctlUnlessEnd(fd, CV4L2_VIDIOC_ENUM_FRAMESIZES, &size, "VIDIOC_ENUM_FRAMESIZES", path) else { break }
            if size.type == V4L2_FRMSIZE_TYPE_DISCRETE.rawValue {
                list.append(FrameSize(width: Int(size.discrete.width), height: Int(size.discrete.height)))
            } else {
                let range = size.stepwise
                return .stepwise(minWidth: Int(range.min_width), maxWidth: Int(range.max_width), stepWidth: Int(range.step_width),
                                 minHeight: Int(range.min_height), maxHeight: Int(range.max_height), stepHeight: Int(range.step_height))
            }
        }
        return .discrete(list)
    }

    func frameIntervals(_ fourCC: FourCC, _ frameSize: FrameSize) throws(CameraError) -> [FrameInterval] {
        var intervals: [FrameInterval] = []
        for index in 0..<64 {
            var interval = v4l2_frmivalenum()
            interval.index = UInt32(index)
            interval.pixel_format = fourCC.rawValue
            interval.width = UInt32(frameSize.width)
            interval.height = UInt32(frameSize.height)
            guard try V4L2.ioctlUnlessEnd(fd, CV4L2_VIDIOC_ENUM_FRAMEINTERVALS, &interval, "VIDIOC_ENUM_FRAMEINTERVALS", path) else { break }
            if interval.type == V4L2_FRMIVAL_TYPE_DISCRETE.rawValue {
                intervals.append(FrameInterval(numerator: interval.discrete.numerator, denominator: interval.discrete.denominator))
            } else {
                // Stepwise/continuous: offer the fastest rate; negotiation picks from what is listed.
                intervals.append(FrameInterval(numerator: interval.stepwise.min.numerator, denominator: interval.stepwise.min.denominator))
                break
            }
        }
        return intervals
    }

    // MARK: Controls

    /// All user-facing controls (`VIDIOC_QUERY_EXT_CTRL` with `V4L2_CTRL_FLAG_NEXT_CTRL`),
    /// without class headings and disabled ones.
    public func controls() throws(CameraError) -> [CameraControl] {
        var controls: [CameraControl] = []
        var nextID = UInt32(V4L2_CTRL_FLAG_NEXT_CTRL)
        for _ in 0..<1024 {
            var query = v4l2_query_ext_ctrl()
            query.id = nextID
            guard try V4L2.ioctlUnlessEnd(fd, CV4L2_VIDIOC_QUERY_EXT_CTRL, &query, "VIDIOC_QUERY_EXT_CTRL", path) else { break }
            nextID = query.id | UInt32(V4L2_CTRL_FLAG_NEXT_CTRL)
            if query.flags & UInt32(V4L2_CTRL_FLAG_DISABLED) != 0 || query.type == V4L2_CTRL_TYPE_CTRL_CLASS.rawValue { continue }
            let kind: CameraControl.Kind = switch query.type {
            case V4L2_CTRL_TYPE_INTEGER.rawValue: .integer
            case V4L2_CTRL_TYPE_BOOLEAN.rawValue: .boolean
            case V4L2_CTRL_TYPE_MENU.rawValue, V4L2_CTRL_TYPE_INTEGER_MENU.rawValue: .menu
            case V4L2_CTRL_TYPE_BUTTON.rawValue: .button
            case V4L2_CTRL_TYPE_INTEGER64.rawValue: .integer64
            default: .other
            }
            if kind == .other { continue }
            let writeOnly = query.flags & UInt32(V4L2_CTRL_FLAG_WRITE_ONLY) != 0
            let value = (kind == .button || writeOnly) ? nil : try? readControl(query.id)
            let name = V4L2.string(from: query.name)
            controls.append(CameraControl(
                id: query.id, key: CameraControl.key(forName: name), name: name, kind: kind,
                minimum: query.minimum, maximum: query.maximum, step: query.step, defaultValue: query.default_value,
                value: value, menu: kind == .menu ? menuEntries(query) : nil,
                inactive: query.flags & UInt32(V4L2_CTRL_FLAG_INACTIVE) != 0,
                readOnly: query.flags & UInt32(V4L2_CTRL_FLAG_READ_ONLY) != 0))
        }
        return controls
    }

    private func menuEntries(_ query: v4l2_query_ext_ctrl) -> [String] {
        guard query.maximum >= query.minimum, query.maximum - query.minimum < 256 else { return [] }
        return (query.minimum...query.maximum).map { index in
            var item = v4l2_querymenu()
            item.id = query.id
            item.index = UInt32(clamping: index)
            guard (try? V4L2.ioctl(fd, CV4L2_VIDIOC_QUERYMENU, &item, "VIDIOC_QUERYMENU", path)) != nil else { return "" }
            return query.type == V4L2_CTRL_TYPE_INTEGER_MENU.rawValue ? String(item.value) : V4L2.string(from: item.name)
        }
    }

    /// Whether the camera has `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` (`VIDIOC_QUERYCTRL`), the
    /// button a camera that encodes H.264 itself offers for "make the next frame an IDR".
    public var hasForceKeyFrameControl: Bool {
        var query = v4l2_queryctrl()
        query.id = CV4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME
        guard (try? V4L2.ioctl(fd, CV4L2_VIDIOC_QUERYCTRL, &query, "VIDIOC_QUERYCTRL", path)) != nil else { return false }
        return query.flags & UInt32(V4L2_CTRL_FLAG_DISABLED) == 0
    }

    /// Presses `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` (`VIDIOC_S_CTRL`): the camera's encoder
    /// starts its next frame as an IDR, which a viewer that joins a passthrough stream waits for.
    public func forceKeyFrame() throws(CameraError) {
        var request = v4l2_control()
        request.id = CV4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME
        request.value = 1
        try V4L2.ioctl(fd, CV4L2_VIDIOC_S_CTRL, &request, "VIDIOC_S_CTRL (FORCE_KEY_FRAME)", path)
    }

    private func readControl(_ id: UInt32) throws(CameraError) -> Int64 {
        var control = v4l2_control()
        control.id = id
        try V4L2.ioctl(fd, CV4L2_VIDIOC_G_CTRL, &control, "VIDIOC_G_CTRL", path)
        return Int64(control.value)
    }

    /// Sets a control by its key (e.g. "zoom_absolute") after checking range and step, and
    /// returns the value the driver reports back.
    @discardableResult
    public func setControl(_ key: String, to value: Int64) throws(CameraError) -> Int64 {
        let all = try controls()
        guard let control = all.first(where: { $0.key == key }) else {
            throw .invalidControl(name: key, reason: "this camera has no such control; it has \(all.map(\.key).joined(separator: ", "))")
        }
        if let problem = control.validate(value) { throw .invalidControl(name: key, reason: problem) }
        var request = v4l2_control()
        request.id = control.id
        request.value = Int32(clamping: value)
        try V4L2.ioctl(fd, CV4L2_VIDIOC_S_CTRL, &request, "VIDIOC_S_CTRL", path)
        return try readControl(control.id)
    }
}

/// The one place V4L2 requests are issued: retries EINTR, captures errno at once, and maps it
/// to a `CameraError`. Package-wide: the M2M encoder in SightlineEncoding issues its requests here too.
package enum V4L2 {
    package static func ioctl<Argument>(_ fd: Int32, _ request: UInt, _ argument: inout Argument, _ name: String, _ path: String) throws(CameraError) {
        while true {
            let result = withUnsafeMutablePointer(to: &argument) { cv4l2_ioctl(fd, request, $0) }
            if result >= 0 { return }
            let code = errno
            if code == EINTR { continue }
            throw CameraError.from(errno: code, operation: name, path: path)
        }
    }

    /// For enumerations, which end with EINVAL: returns false at the end instead of throwing.
    package static func ioctlUnlessEnd<Argument>(_ fd: Int32, _ request: UInt, _ argument: inout Argument, _ name: String, _ path: String) throws(CameraError) -> Bool {
        do {
            try ioctl(fd, request, &argument, name, path)
            return true
        } catch {
            if case .system(_, _, let code) = error, code == EINVAL { return false }
            throw error
        }
    }

    /// A fixed-size, NUL-terminated C char array (a tuple in Swift) as a String.
    package static func string<T>(from tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
