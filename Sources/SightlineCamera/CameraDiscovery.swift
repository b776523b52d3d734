import Foundation

/// Finds capture devices by scanning /dev/videoN and keeping the nodes that open as cameras,
/// in node order. udev-based discovery with stable identities and hotplug replaces this scan.
public enum CameraDiscovery {
    public static func captureNodes() -> [String] {
        let nodes = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev")) ?? [])
            .filter { $0.hasPrefix("video") && Int($0.dropFirst(5)) != nil }
            .sorted { (Int($0.dropFirst(5)) ?? 0) < (Int($1.dropFirst(5)) ?? 0) }
        return nodes.map { "/dev/\($0)" }.filter { path in
            guard let camera = try? V4L2Camera(path: path) else { return false }
            camera.close()
            return true
        }
    }
}
