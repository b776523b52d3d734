import SightlineCore

/// What one V4L2 memory-to-memory node offers, as `M2MDevices.scan` reads it from the driver.
/// Plain data, so the choice of encoder is decided (and unit-tested) without hardware.
public struct M2MDeviceDescription: Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let driver: String
    /// The node's own name (vicodec: "stateful-encoder"), else the card.
    public let name: String
    /// `V4L2_CAP_VIDEO_M2M_MPLANE`; the single-planar `V4L2_CAP_VIDEO_M2M` otherwise.
    public let multiplanar: Bool
    /// Formats of the OUTPUT queue (what the application writes: raw pictures for an encoder).
    public let outputFormats: [FourCC]
    /// Formats of the CAPTURE queue (what the application reads: the coded stream for an encoder).
    public let captureFormats: [FourCC]

    public init(path: String, driver: String, name: String, multiplanar: Bool, outputFormats: [FourCC], captureFormats: [FourCC]) {
        self.path = path
        self.driver = driver
        self.name = name
        self.multiplanar = multiplanar
        self.outputFormats = outputFormats
        self.captureFormats = captureFormats
    }

    public var description: String {
        "\(path) (\(driver) \(name): \(outputFormats.map(\.description).joined(separator: ",")) -> "
            + "\(captureFormats.map(\.description).joined(separator: ",")))"
    }
}

/// The outcome of looking for a hardware encoder at start: which node to use, or why none fits,
/// in words for the log and the daemon's status.
public enum M2MProbeResult: Sendable, Equatable, CustomStringConvertible {
    case found(M2MDeviceDescription, rawFormat: FourCC)
    case none(reason: String)

    public var device: M2MDeviceDescription? {
        if case .found(let device, _) = self { return device }
        return nil
    }

    public var description: String {
        switch self {
        case let .found(device, rawFormat): "V4L2 M2M encoder \(device.path) (\(device.driver)), \(rawFormat) in"
        case let .none(reason): reason
        }
    }
}

/// Chooses a memory-to-memory encoder for a coded format among the nodes found.
public enum M2MProbe {
    /// Raw formats the encoder can feed, best first: I420 as the pictures are converted anyway,
    /// NV12 for encoders that take nothing else (Qualcomm Venus, many Hantro parts).
    public static let rawFormats: [FourCC] = [FourCC("YU12"), .nv12]

    /// The first multiplanar node that takes a raw format we write on OUTPUT and offers `coded` on
    /// CAPTURE. Single-planar M2M nodes are passed over: every current SoC encoder
    /// (Raspberry Pi, Rockchip/Hantro, Qualcomm, MediaTek) is multiplanar and only that API is
    /// implemented and tested here.
    public static func choose(from devices: [M2MDeviceDescription], coded: FourCC) -> M2MProbeResult {
        var rejected: [String] = []
        for device in devices {
            guard device.captureFormats.contains(coded) else {
                let offers = device.captureFormats.map(\.description).joined(separator: ", ")
                rejected.append("\(device.path) (\(device.driver)) codes \(offers.isEmpty ? "nothing" : offers), not \(coded)")
                continue
            }
            guard device.multiplanar else {
                rejected.append("\(device.path) (\(device.driver)) has only the single-planar M2M API")
                continue
            }
            guard let raw = rawFormats.first(where: device.outputFormats.contains) else {
                let offers = device.outputFormats.map(\.description).joined(separator: ", ")
                rejected.append("\(device.path) (\(device.driver)) takes \(offers), neither YU12 nor NV12")
                continue
            }
            return .found(device, rawFormat: raw)
        }
        let why = rejected.isEmpty ? "there is no V4L2 memory-to-memory device" : rejected.joined(separator: "; ")
        return .none(reason: "no V4L2 M2M \(coded) encoder: \(why)")
    }
}

extension FourCC {
    /// `V4L2_PIX_FMT_FWHT`: vicodec's codec, the kernel's virtual M2M encoder used in tests.
    public static let fwht = FourCC("FWHT")
}
