import Foundation

/// The 4 bytes in front of every SFrame frame on the wire. The relay reads them to find
/// keyframes; both ends pass them to SFrame as metadata, so they are authenticated.
public struct MediaEnvelope: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case video = 1, audio = 2, still = 3
    }

    public static let size = 4
    static let version: UInt8 = 1

    public var kind: Kind
    public var isKeyframe: Bool

    public init(kind: Kind, isKeyframe: Bool) {
        self.kind = kind
        self.isKeyframe = isKeyframe
    }

    public var bytes: [UInt8] { [Self.version, kind.rawValue, isKeyframe ? 1 : 0, 0] }

    /// Nil for a message too short, of another version, or of an unknown kind.
    public init?(_ message: some Collection<UInt8>) {
        guard message.count >= Self.size else { return nil }
        let header = Array(message.prefix(Self.size))
        guard header[0] == Self.version, let kind = Kind(rawValue: header[1]) else { return nil }
        self.kind = kind
        isKeyframe = header[2] & 1 == 1
    }
}

/// What the SFrame plaintext starts with: codec, size and the capture time, sealed so the
/// relay can neither read nor alter it (docs/PROTOCOL.md, "Sealed media payload").
public struct MediaPayloadHeader: Sendable, Equatable {
    public enum Codec: UInt8, Sendable {
        case h264 = 1, jpeg = 2
    }

    public static let size = 16
    static let version: UInt8 = 1

    public var codec: Codec
    public var width: UInt16
    public var height: UInt16
    /// Microseconds since the Unix epoch when the camera captured the frame.
    public var captureMicroseconds: UInt64

    public init(codec: Codec, width: UInt16, height: UInt16, captureMicroseconds: UInt64) {
        self.codec = codec
        self.width = width
        self.height = height
        self.captureMicroseconds = captureMicroseconds
    }

    public var bytes: [UInt8] {
        var bytes: [UInt8] = [Self.version, codec.rawValue]
        bytes += withUnsafeBytes(of: width.bigEndian, Array.init)
        bytes += withUnsafeBytes(of: height.bigEndian, Array.init)
        bytes += [0, 0]
        bytes += withUnsafeBytes(of: captureMicroseconds.bigEndian, Array.init)
        return bytes
    }

    /// Parses the header at the start of a plaintext; nil when it is not one.
    public init?(_ plaintext: some Collection<UInt8>) {
        guard plaintext.count >= Self.size else { return nil }
        let bytes = Array(plaintext.prefix(Self.size))
        guard bytes[0] == Self.version, let codec = Codec(rawValue: bytes[1]) else { return nil }
        func integer(_ range: Range<Int>) -> UInt64 { bytes[range].reduce(0) { $0 << 8 | UInt64($1) } }
        self.codec = codec
        width = UInt16(integer(2..<4))
        height = UInt16(integer(4..<6))
        captureMicroseconds = integer(8..<16)
    }
}
