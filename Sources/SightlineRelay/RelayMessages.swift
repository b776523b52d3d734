import Crypto
import Foundation
import NIOCore

/// The close codes of docs/PROTOCOL.md, "Close codes".
public enum RelayCloseCode: UInt16, Sendable, CaseIterable {
    case malformed = 4400
    case unauthorized = 4401
    case unknownSession = 4404
    case timeout = 4408
    case deviceConflict = 4409
    case tooLarge = 4413
    case rateLimited = 4429
}

/// Why the relay closes a socket: the close code, and a sentence for the peer's operator that
/// goes into the `error` message sent just before the close frame.
struct RelayRefusal: Error, Sendable, CustomStringConvertible {
    let code: RelayCloseCode
    let message: String

    init(_ code: RelayCloseCode, _ message: String) {
        self.code = code
        self.message = message
    }

    var description: String { "\(code.rawValue): \(message)" }
}

/// Any JSON value. The relay forwards messages it does not understand, so it keeps every
/// field instead of decoding into the types it knows (`from` is the only field it writes).
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        // Order matters: Bool before numbers so `true` stays a Bool, Int64 before Double so
        // integers (KIDs, peer numbers) round-trip exactly.
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// A non-negative integer, also when written as `2.0`.
    var peerNumber: Int? {
        switch self {
        case .integer(let value) where value >= 0 && value <= Int64(UInt32.max): return Int(value)
        case .number(let value) where value >= 0 && value <= Double(UInt32.max) && value.rounded() == value: return Int(value)
        default: return nil
        }
    }
}

/// A text message as the relay sees it: a JSON object with a string `type`.
struct ControlMessage: Sendable {
    /// Nesting deeper than this is refused before decoding: decoders recurse once per level,
    /// and a 16 KiB message of brackets must not be able to exhaust a thread's stack.
    static let maxNesting = 32

    var fields: [String: JSONValue]
    var type: String

    init(fields: [String: JSONValue]) throws(RelayRefusal) {
        guard let type = fields["type"]?.stringValue else {
            throw RelayRefusal(.malformed, "a text message must be a JSON object with a string \"type\"")
        }
        self.fields = fields
        self.type = type
    }

    static func parse(_ text: String) throws(RelayRefusal) -> ControlMessage {
        let bytes = Array(text.utf8)
        guard nestingDepth(of: bytes) <= maxNesting else {
            throw RelayRefusal(.malformed, "JSON nested deeper than \(maxNesting) levels")
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw RelayRefusal(.malformed, "a text message must be JSON: \(text.prefix(40).debugDescription) is not")
        }
        guard case .object(let fields) = value else {
            throw RelayRefusal(.malformed, "a text message must be a JSON object with a string \"type\"")
        }
        return try ControlMessage(fields: fields)
    }

    /// Deepest `[`/`{` nesting outside strings. Malformed input gets some number; the decoder
    /// refuses it afterwards.
    static func nestingDepth(of bytes: [UInt8]) -> Int {
        var depth = 0, deepest = 0
        var inString = false, escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false }
                else if byte == UInt8(ascii: "\\") { escaped = true }
                else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }

    enum Target: Sendable, Equatable {
        case peer(Int)
        case experts
    }

    /// The `to` of a routed message (docs/PROTOCOL.md, "Peers and routing").
    func target(senderIsDevice: Bool) throws(RelayRefusal) -> Target {
        guard let to = fields["to"] else {
            throw RelayRefusal(.malformed, "message \"\(type)\" has no \"to\": every message after the hello names a peer number or \"experts\"")
        }
        if let peer = to.peerNumber { return .peer(peer) }
        if to.stringValue == "experts" {
            guard senderIsDevice else { throw RelayRefusal(.malformed, "only the device may send to \"experts\"; address the device as 0") }
            return .experts
        }
        throw RelayRefusal(.malformed, "message \"\(type)\" has \"to\" that is neither a peer number nor \"experts\"")
    }

    /// The message as forwarded: unchanged except `from`, which is always the relay's word.
    func forwarded(from peer: Int) -> String {
        var fields = fields
        fields["from"] = .integer(Int64(peer))
        return RelayMessages.encode(fields)
    }
}

/// The first message on each socket (docs/PROTOCOL.md, "Hello").
struct Hello: Sendable {
    enum Role: String, Sendable { case device, expert }

    var role: Role
    /// SHA-256 of the join token: the relay never keeps the token itself.
    var joinTokenDigest: SHA256Digest
    var session: String?

    init(_ message: ControlMessage, expected: Role) throws(RelayRefusal) {
        guard message.type == "hello" else {
            throw RelayRefusal(.malformed, "the first message must be {\"type\":\"hello\",…}, not \"\(message.type)\"")
        }
        guard let roleText = message.fields["role"]?.stringValue, let role = Role(rawValue: roleText), role == expected else {
            throw RelayRefusal(.malformed, "this endpoint takes a hello with \"role\":\"\(expected.rawValue)\"")
        }
        guard let token = message.fields["joinToken"]?.stringValue, let bytes = Base64URL.decode(token), bytes.count == 32 else {
            throw RelayRefusal(.malformed, "\"joinToken\" must be the 32-byte join token in base64url (43 characters)")
        }
        var session: String?
        if let value = message.fields["session"] {
            guard role == .device, let text = value.stringValue else {
                throw RelayRefusal(.malformed, "\"session\" is a string and only a device's hello carries it")
            }
            session = text
        }
        self.role = role
        self.joinTokenDigest = SHA256.hash(data: bytes)
        self.session = session
    }
}

/// Reads the 4-byte media envelope (docs/PROTOCOL.md, "WebSocket framing") and nothing else:
/// the rest of a binary message is an SFrame frame the relay cannot open.
enum MediaEnvelope {
    static func kind(of message: ByteBuffer) throws(RelayRefusal) -> QueuedKind {
        guard let header = message.getBytes(at: message.readerIndex, length: 4) else {
            throw RelayRefusal(.malformed, "a binary message starts with a 4-byte envelope; got \(message.readableBytes) bytes")
        }
        guard header[0] == 1 else {
            throw RelayRefusal(.malformed, "media envelope version \(header[0]) is not supported (only 1)")
        }
        switch header[1] {
        case 1: return .video(keyframe: header[2] & 1 == 1)
        case 2: return .audio
        case 3: return .still
        default: throw RelayRefusal(.malformed, "media envelope kind \(header[1]) is unknown (1 video, 2 audio, 3 still)")
        }
    }
}

/// The messages the relay itself sends (docs/PROTOCOL.md, "Messages from the relay").
enum RelayMessages {
    static func session(_ id: String, peer: Int) -> String {
        encode(["type": .string("session"), "session": .string(id), "peer": .integer(Int64(peer))])
    }

    static func joined(_ id: String, peer: Int, device: Bool) -> String {
        encode(["type": .string("joined"), "session": .string(id), "peer": .integer(Int64(peer)), "device": .bool(device)])
    }

    static func peerJoined(_ peer: Int) -> String { encode(["type": .string("peer-joined"), "peer": .integer(Int64(peer))]) }
    static func peerLeft(_ peer: Int) -> String { encode(["type": .string("peer-left"), "peer": .integer(Int64(peer))]) }
    static let deviceLeft = encode(["type": .string("device-left")])
    static let deviceJoined = encode(["type": .string("device-joined")])

    static func congestion(peer: Int, _ report: CongestionReport) -> String {
        let delay = report.queueDelay.components
        let milliseconds = delay.seconds * 1000 + delay.attoseconds / 1_000_000_000_000_000
        return encode([
            "type": .string("congestion"), "peer": .integer(Int64(peer)),
            "droppedFrames": .integer(Int64(report.droppedFrames)), "droppedBytes": .integer(Int64(report.droppedBytes)),
            "queuedBytes": .integer(Int64(report.queuedBytes)), "queueDelayMs": .integer(milliseconds),
        ])
    }

    static func error(_ refusal: RelayRefusal) -> String {
        encode(["type": .string("error"), "code": .integer(Int64(refusal.code.rawValue)), "message": .string(refusal.message)])
    }

    static func encode(_ fields: [String: JSONValue]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding strings, integers and finite doubles cannot fail; decoded JSON has no NaN.
        guard let data = try? encoder.encode(JSONValue.object(fields)) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// base64url without padding (RFC 4648 section 5), as every binary field on the wire uses.
enum Base64URL {
    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> [UInt8]? {
        let alphabet = text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"): true
            default: false
            }
        }
        guard alphabet, text.utf8.count % 4 != 1 else { return nil }
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard += String(repeating: "=", count: (4 - standard.utf8.count % 4) % 4)
        return Data(base64Encoded: standard).map(Array.init)
    }
}
