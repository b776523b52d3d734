/// The SFrame header (RFC 9605 section 4.3): a config byte `X K K K Y C C C` followed by
/// the KID and CTR. A value below 8 rides in its 3 bits with the flag clear; a larger one
/// sets the flag, puts its length minus one in the 3 bits and follows in big-endian bytes.
public struct SFrameHeader: Hashable, Sendable {
    public var kid: UInt64
    public var counter: UInt64

    public init(kid: UInt64, counter: UInt64) {
        self.kid = kid
        self.counter = counter
    }

    /// The longest header: config byte plus an 8-byte KID and an 8-byte CTR.
    public static let maximumLength = 17

    /// The minimal encoding, the only one this implementation writes or reads.
    public var encoded: [UInt8] {
        var bytes: [UInt8] = [0]
        for (value, shift) in [(kid, 4), (counter, 0)] {
            if value < 8 {
                bytes[0] |= UInt8(value) << shift
            } else {
                let length = Self.minimalLength(of: value)
                bytes[0] |= (0x08 | UInt8(length - 1)) << shift
                bytes += (0..<length).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
            }
        }
        return bytes
    }

    /// Reads a header from the start of `bytes`, returning it and how many bytes it took.
    /// Non-minimal encodings are refused so every (KID, CTR) has exactly one wire form.
    public static func decode(from bytes: some Collection<UInt8>) throws(SFrameError) -> (header: SFrameHeader, length: Int) {
        var iterator = bytes.makeIterator()
        guard let config = iterator.next() else { throw .truncatedHeader }
        var length = 1
        func field(_ bits: UInt8) throws(SFrameError) -> UInt64 {
            guard bits & 0x08 != 0 else { return UInt64(bits) }
            let count = Int(bits & 0x07) + 1
            var value: UInt64 = 0
            for _ in 0..<count {
                guard let byte = iterator.next() else { throw .truncatedHeader }
                value = value << 8 | UInt64(byte)
            }
            length += count
            guard value >= 8, minimalLength(of: value) == count else { throw .invalidHeader }
            return value
        }
        let kid = try field(config >> 4)
        let counter = try field(config & 0x0F)
        return (SFrameHeader(kid: kid, counter: counter), length)
    }

    static func minimalLength(of value: UInt64) -> Int {
        max(1, (UInt64.bitWidth - value.leadingZeroBitCount + 7) / 8)
    }
}
