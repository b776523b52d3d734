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
        PayloadHeaderLayout(codec: codec.rawValue, first: width, second: height, captureMicroseconds: captureMicroseconds).bytes
    }

    /// Parses the header at the start of a plaintext; nil when it is not one.
    public init?(_ plaintext: some Collection<UInt8>) {
        guard let layout = PayloadHeaderLayout(plaintext), let codec = Codec(rawValue: layout.codec) else { return nil }
        self.codec = codec
        width = layout.first
        height = layout.second
        captureMicroseconds = layout.captureMicroseconds
    }
}

/// The 16 bytes both payload headers share: version 1, codec, two 16-bit fields, 2 reserved
/// bytes, the 64-bit capture time; big-endian.
struct PayloadHeaderLayout {
    static let size = 16
    static let version: UInt8 = 1
    var codec: UInt8
    var first: UInt16
    var second: UInt16
    var captureMicroseconds: UInt64

    init(codec: UInt8, first: UInt16, second: UInt16, captureMicroseconds: UInt64) {
        self.codec = codec
        self.first = first
        self.second = second
        self.captureMicroseconds = captureMicroseconds
    }

    var bytes: [UInt8] {
        var bytes: [UInt8] = [Self.version, codec]
        bytes += withUnsafeBytes(of: first.bigEndian, Array.init)
        bytes += withUnsafeBytes(of: second.bigEndian, Array.init)
        bytes += [0, 0]
        bytes += withUnsafeBytes(of: captureMicroseconds.bigEndian, Array.init)
        return bytes
    }

    /// Nil for a plaintext too short or of another version.
    init?(_ plaintext: some Collection<UInt8>) {
        guard plaintext.count >= Self.size else { return nil }
        let bytes = Array(plaintext.prefix(Self.size))
        guard bytes[0] == Self.version else { return nil }
        func integer(_ range: Range<Int>) -> UInt64 { bytes[range].reduce(0) { $0 << 8 | UInt64($1) } }
        codec = bytes[1]
        first = UInt16(integer(2..<4))
        second = UInt16(integer(4..<6))
        captureMicroseconds = integer(8..<16)
    }
}

/// What an audio frame's SFrame plaintext starts with (envelope kind `audio`): one 20 ms Opus
/// packet at 48 kHz mono, its sequence number for the receiver's jitter buffer, and the capture
/// time, all sealed (docs/PROTOCOL.md, "Sealed audio payload"). Same size as the video header.
public struct AudioPayloadHeader: Sendable, Equatable {
    public static let size = PayloadHeaderLayout.size
    /// The codec byte, distinct from the video codecs so a misrouted frame cannot be confused.
    public static let opus: UInt8 = 3

    /// Counts 20 ms frames of one sender, wrapping at 2^16.
    public var sequence: UInt16
    /// Samples per channel at 48 kHz (960 for 20 ms).
    public var frameSamples: UInt16
    /// Microseconds since the Unix epoch when the frame's first sample was captured.
    public var captureMicroseconds: UInt64

    public init(sequence: UInt16, frameSamples: UInt16 = 960, captureMicroseconds: UInt64) {
        self.sequence = sequence
        self.frameSamples = frameSamples
        self.captureMicroseconds = captureMicroseconds
    }

    public var bytes: [UInt8] {
        PayloadHeaderLayout(codec: Self.opus, first: sequence, second: frameSamples, captureMicroseconds: captureMicroseconds).bytes
    }

    /// Parses the header at the start of a plaintext; nil when it is not an Opus audio header.
    public init?(_ plaintext: some Collection<UInt8>) {
        guard let layout = PayloadHeaderLayout(plaintext), layout.codec == Self.opus else { return nil }
        sequence = layout.first
        frameSamples = layout.second
        captureMicroseconds = layout.captureMicroseconds
    }
}
