/// What a device is for the product.
public enum DeviceRole: String, Codable, Sendable, CaseIterable {
    case camera, microphone, speaker, buttons
}

/// A device as discovery reports it: where it is now (`devnode`, which changes between plugs)
/// and who it is (`identity`, which does not).
public struct DiscoveredDevice: Codable, Sendable, Equatable, Hashable {
    public var syspath: String
    public var devnode: String
    public var role: DeviceRole
    /// Stable identity: `serial:…` (USB serial), else `path:…` (udev ID_PATH, with the node name
    /// for cameras), else the syspath.
    public var identity: String
    public var name: String
    /// The udev properties used for matching preferences (ID_SERIAL, ID_VENDOR_ID, ID_MODEL_ID, ID_PATH …).
    public var properties: [String: String]
    /// The /dev/v4l/by-id or by-path link when there is one.
    public var stableLink: String?

    public init(syspath: String, devnode: String, role: DeviceRole, identity: String, name: String,
                properties: [String: String], stableLink: String?) {
        self.syspath = syspath
        self.devnode = devnode
        self.role = role
        self.identity = identity
        self.name = name
        self.properties = properties
        self.stableLink = stableLink
    }
}

/// Decides from a device's udev record what role it plays, if any. Pure, so it is tested with
/// property sets recorded from real devices.
public enum DeviceClassifier {
    /// Properties that matter for identity and matching; the rest of udev's record is dropped.
    static let keptProperties = ["NAME", "ID_SERIAL", "ID_SERIAL_SHORT", "ID_VENDOR_ID", "ID_MODEL_ID", "ID_PATH", "ID_V4L_PRODUCT",
                                 "ID_V4L_CAPABILITIES", "ID_MODEL", "ID_VENDOR", "ID_INPUT_KEY", "ID_BUS", "ID_ID", "SOUND_FORM_FACTOR"]

    /// - Parameters:
    ///   - captureCapable: for video4linux nodes without `ID_V4L_CAPABILITIES` (no udevd
    ///     running), whether the node answered VIDIOC_QUERYCAP with video capture.
    public static func classify(subsystem: String, sysname: String, syspath: String, devnode: String?,
                                properties: [String: String], links: [String], captureCapable: Bool? = nil) -> DiscoveredDevice? {
        guard let devnode else { return nil }
        let role: DeviceRole
        switch subsystem {
        case "video4linux":
            guard sysname.hasPrefix("video") else { return nil }
            if let capabilities = properties["ID_V4L_CAPABILITIES"] {
                guard capabilities.contains(":capture:") else { return nil }
            } else {
                guard captureCapable == true else { return nil }
            }
            role = .camera
        case "sound":
            guard sysname.hasPrefix("pcmC"), let last = sysname.last else { return nil }
            if last == "c" { role = .microphone } else if last == "p" { role = .speaker } else { return nil }
        case "input":
            guard sysname.hasPrefix("event"), properties["ID_INPUT_KEY"] == "1" else { return nil }
            role = .buttons
        default:
            return nil
        }
        let kept = properties.filter { keptProperties.contains($0.key) }
        let identity: String
        if let serial = properties["ID_SERIAL"], properties["ID_BUS"] == "usb" || properties["ID_SERIAL_SHORT"] != nil {
            identity = "serial:\(serial)"
        } else if let path = properties["ID_PATH"] {
            // Several cameras can share one platform device's path; the node name keeps them apart.
            identity = "path:\(path)" + (subsystem == "video4linux" ? properties["NAME"].map { "#\($0)" } ?? "" : "")
        } else {
            identity = "syspath:\(syspath)"
        }
        let stableLink = links.first { $0.hasPrefix("/dev/v4l/by-id/") } ?? links.first { $0.hasPrefix("/dev/v4l/by-path/") }
        // A sound card's nodes share its name: the node's own name keeps them apart.
        let name = subsystem == "sound" ? [properties["ID_MODEL"] ?? properties["NAME"], sysname].compactMap { $0 }.joined(separator: " ")
            : properties["ID_V4L_PRODUCT"] ?? properties["ID_MODEL"] ?? sysname
        return DiscoveredDevice(syspath: syspath, devnode: devnode, role: role, identity: identity + Self.suffix(sysname, subsystem),
                                name: name, properties: kept, stableLink: stableLink)
    }

    /// One sound card has several PCM nodes ("pcmC1D0c", "pcmC1D0p"): the device part of the
    /// name keeps their identities apart. A camera has one capture node, so needs none.
    private static func suffix(_ sysname: String, _ subsystem: String) -> String {
        guard subsystem == "sound", let device = sysname.firstIndex(of: "D") else { return "" }
        return "#" + sysname[device...]
    }
}
