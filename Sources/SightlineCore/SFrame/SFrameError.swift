/// Why an SFrame operation refused a frame. Every rejection on the receive path is one of
/// these, so callers can count and log them without parsing messages.
public enum SFrameError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The frame ends inside the config byte, KID or CTR field.
    case truncatedHeader
    /// The header is complete but not in its single minimal form (RFC 9605 section 4.3).
    case invalidHeader
    /// The bytes after the header are shorter than the authentication tag.
    case truncatedCiphertext
    /// No key is installed for this KID.
    case unknownKeyID(UInt64)
    /// AES-GCM rejected the tag: the header, metadata or ciphertext was altered or the key is wrong.
    case authenticationFailed
    /// This KID and counter were already accepted once.
    case replayed(kid: UInt64, counter: UInt64)
    /// The counter is older than the replay window can vouch for.
    case counterTooOld(kid: UInt64, counter: UInt64)
    /// The payload is larger than the configured maximum.
    case frameTooLarge(size: Int, limit: Int)
    /// The sender has used every counter value; sealing again would reuse a nonce.
    case counterExhausted(kid: UInt64)

    public var description: String {
        switch self {
        case .truncatedHeader: "SFrame header is truncated"
        case .invalidHeader: "SFrame header is not minimally encoded"
        case .truncatedCiphertext: "SFrame ciphertext is shorter than its tag"
        case .unknownKeyID(let kid): "no SFrame key for KID \(kid)"
        case .authenticationFailed: "SFrame authentication failed"
        case .replayed(let kid, let counter): "SFrame KID \(kid) counter \(counter) was replayed"
        case .counterTooOld(let kid, let counter): "SFrame KID \(kid) counter \(counter) is older than the replay window"
        case .frameTooLarge(let size, let limit): "SFrame payload of \(size) bytes exceeds the \(limit)-byte limit"
        case .counterExhausted(let kid): "SFrame counter for KID \(kid) is exhausted"
        }
    }
}
