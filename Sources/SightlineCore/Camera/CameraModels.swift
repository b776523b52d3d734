import Foundation

/// A V4L2 pixel format code (`v4l2_fourcc`), shown as its four characters.
public struct FourCC: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `FourCC("YUYV")`; characters beyond four are ignored, missing ones are spaces.
    public init(_ code: String) {
        var bytes = Array(code.utf8.prefix(4))
        while bytes.count < 4 { bytes.append(0x20) }
        rawValue = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
    }

    /// Bit 31 marks the big-endian variant of a format (`v4l2_fourcc_be`).
    public static let bigEndianFlag: UInt32 = 1 << 31

    public var description: String {
        let code = rawValue & ~Self.bigEndianFlag
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: code >> ($0 * 8)) }
        let text = String(decoding: bytes.map { (0x20...0x7E).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
            .trimmingCharacters(in: " ")
        return rawValue & Self.bigEndianFlag != 0 ? text + "-BE" : text
    }

    public static let h264 = FourCC("H264")
    public static let mjpeg = FourCC("MJPG")
    public static let jpeg = FourCC("JPEG")
    public static let yuyv = FourCC("YUYV")
    public static let nv12 = FourCC("NV12")
}

private extension String {
    func trimmingCharacters(in character: Character) -> String {
        var text = Substring(self)
        while text.last == character { text = text.dropLast() }
        return String(text)
    }
}

/// The formats the product can use, in the words of the configuration (`camera.format_preference`).
public enum VideoFormat: String, Sendable, CaseIterable {
    case h264, mjpeg, yuyv, nv12

    /// The V4L2 codes that deliver this format (some cameras say JPEG for MJPEG).
    public var fourCCs: [FourCC] {
        switch self {
        case .h264: [.h264]
        case .mjpeg: [.mjpeg, .jpeg]
        case .yuyv: [.yuyv]
        case .nv12: [.nv12]
        }
    }

    public init?(fourCC: FourCC) {
        guard let match = Self.allCases.first(where: { $0.fourCCs.contains(fourCC) }) else { return nil }
        self = match
    }
}

/// A frame interval as V4L2 reports it: `numerator / denominator` seconds per frame.
public struct FrameInterval: Hashable, Sendable, CustomStringConvertible {
    public let numerator: UInt32
    public let denominator: UInt32

    public init(numerator: UInt32, denominator: UInt32) {
        self.numerator = numerator
        self.denominator = denominator
    }

    public var framesPerSecond: Double {
        numerator == 0 ? 0 : Double(denominator) / Double(numerator)
    }

    public var description: String { "\(numerator)/\(denominator) s" }
}

/// The frame sizes a format offers: a list, or a stepwise/continuous range.
public enum FrameSizes: Hashable, Sendable {
    case discrete([FrameSize])
    case stepwise(minWidth: Int, maxWidth: Int, stepWidth: Int, minHeight: Int, maxHeight: Int, stepHeight: Int)
}

public struct FrameSize: Hashable, Sendable, CustomStringConvertible {
    public let width: Int
    public let height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    public var description: String { "\(width)x\(height)" }
}

/// One format a camera offers, with its sizes and, per size, its frame intervals.
public struct FormatOffer: Hashable, Sendable {
    public let fourCC: FourCC
    public let name: String
    public let compressed: Bool
    public let sizes: FrameSizes
    /// Intervals per discrete size; for stepwise sizes the caller fills this for the size it probes.
    public let intervals: [FrameSize: [FrameInterval]]

    public init(fourCC: FourCC, name: String, compressed: Bool, sizes: FrameSizes, intervals: [FrameSize: [FrameInterval]]) {
        self.fourCC = fourCC
        self.name = name
        self.compressed = compressed
        self.sizes = sizes
        self.intervals = intervals
    }
}

/// What a capture session runs with.
public struct CameraMode: Hashable, Sendable, CustomStringConvertible {
    public let fourCC: FourCC
    public let size: FrameSize
    public let interval: FrameInterval?

    public init(fourCC: FourCC, size: FrameSize, interval: FrameInterval?) {
        self.fourCC = fourCC
        self.size = size
        self.interval = interval
    }

    public var description: String {
        let rate = interval.map { String(format: " at %.2f fps", $0.framesPerSecond) } ?? ""
        return "\(fourCC) \(size)\(rate)"
    }
}
