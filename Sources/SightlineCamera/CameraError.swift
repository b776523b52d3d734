import Foundation

/// Why a camera could not be used, with what the operator can do about it. The classes follow
/// what field service needs to tell apart: no device, no permission, busy, unplugged mid-stream.
public enum CameraError: Error, Sendable, CustomStringConvertible, Equatable {
    case noDevice(path: String)
    case permissionDenied(path: String)
    case busy(path: String)
    case notACaptureDevice(path: String, card: String)
    case disconnected(path: String)
    case noUsableFormat(path: String, offered: [String])
    case invalidControl(name: String, reason: String)
    case system(operation: String, path: String, errno: Int32)

    public var description: String {
        switch self {
        case .noDevice(let path):
            "camera \(path) is not there: check the cable, or list cameras with v4l2-ctl --list-devices"
        case .permissionDenied(let path):
            "no permission to open \(path): the daemon's user needs group video (SupplementaryGroups=video)"
        case .busy(let path):
            "camera \(path) is busy: another program is streaming from it (find it with fuser \(path))"
        case .notACaptureDevice(let path, let card):
            "\(path) (\(card)) cannot capture video: it is a metadata or output node; use the camera's capture node"
        case .disconnected(let path):
            "camera \(path) was disconnected while streaming"
        case .noUsableFormat(let path, let offered):
            "camera \(path) offers none of the configured formats (it offers \(offered.joined(separator: ", "))): "
                + "extend camera.format_preference"
        case .invalidControl(let name, let reason):
            "camera control \(name): \(reason)"
        case .system(let operation, let path, let code):
            "\(operation) on \(path) failed: \(String(cString: strerror(code))) (errno \(code))"
        }
    }

    /// Maps an errno from opening or driving `path` to the error an operator understands.
    package static func from(errno code: Int32, operation: String, path: String) -> CameraError {
        switch code {
        case ENOENT, ENXIO: .noDevice(path: path)
        case ENODEV: .disconnected(path: path)
        case EACCES, EPERM: .permissionDenied(path: path)
        case EBUSY: .busy(path: path)
        default: .system(operation: operation, path: path, errno: code)
        }
    }
}
