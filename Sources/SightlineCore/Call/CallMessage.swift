import Foundation

/// Where a control message goes: a peer number, or every expert (docs/PROTOCOL.md, "Peers
/// and routing"). The device is peer 0.
public enum PeerAddress: Sendable, Equatable {
    case peer(UInt32)
    case experts
    public static let device = PeerAddress.peer(0)
}

/// The JSON control messages a device sends and receives. Unknown types decode as
/// `.unknown` so a newer peer never breaks an older one.
public enum CallMessage: Sendable, Equatable {
    // device ⇄ relay
    case deviceHello(joinToken: Data, resumeSession: String?)
    case session(id: String)
    case peerJoined(UInt32)
    case peerLeft(UInt32)
    case congestion(Congestion)
    case error(code: Int, message: String)
    // device ⇄ expert
    case keyExchangeOffer(from: UInt32, publicKey: Data)
    case keyExchangeAnswer(to: UInt32, KeyExchangeAnswer)
    case keyExchangeConfirm(from: UInt32, mac: Data)
    case keyExchangeFailed(to: UInt32)
    case mediaKey(to: UInt32, WrappedMediaKey)
    /// An expert's own base key for its microphone, sealed for the device (KID sender = `from`).
    case expertMediaKey(from: UInt32, WrappedMediaKey)
    case streamState(to: PeerAddress, StreamState)
    case keyframeRequest(from: UInt32, reason: String)
    case receiverReport(from: UInt32, ReceiverReport)
    case snapshotRequest(from: UInt32, id: String)
    case snapshotTaken(to: UInt32, id: String, evidence: String, width: Int, height: Int)
    case snapshotFailed(to: UInt32, id: String, reason: String)
    case unknown(type: String)

    public struct Congestion: Sendable, Equatable, Codable {
        public var peer: UInt32
        public var droppedFrames: Int
        public var droppedBytes: Int
        public var queuedBytes: Int
        public var queueDelayMs: Int
    }

    public struct StreamState: Sendable, Equatable, Codable {
        public var step: String
        public var codec: String
        public var width: Int
        public var height: Int
        public var fps: Int
        public var bitrateKbps: Int
        public var privacy: Bool
        /// The technician's microphone is muted (privacy mode for audio): no audio frames come.
        /// Nil from devices that predate the voice channel.
        public var audioMuted: Bool?
        /// The external reference (ticket, work order) of the case the call is filed in, so
        /// the expert knows which job they are looking at; nil when no case is open.
        public var caseReference: String?

        public init(step: String, codec: String, width: Int, height: Int, fps: Int, bitrateKbps: Int, privacy: Bool, audioMuted: Bool? = nil,
                    caseReference: String? = nil) {
            self.caseReference = caseReference
            self.step = step
            self.codec = codec
            self.width = width
            self.height = height
            self.fps = fps
            self.bitrateKbps = bitrateKbps
            self.privacy = privacy
            self.audioMuted = audioMuted
        }
    }

    public struct ReceiverReport: Sendable, Equatable, Codable {
        public var decodedFps: Double?
        public var latencyMsP50: Double?
        public var decryptFailures: Int?
        public var framesLost: Int?
    }
}

extension CallMessage {
    /// Every field any message uses, flat, as on the wire.
    private struct Wire: Codable {
        var type: String
        var to: AnyPeer?
        var from: UInt32?
        var role: String?
        var joinToken: String?
        var session: String?
        var peer: UInt32?
        var pub: String?
        var identity: String?
        var signature: String?
        var mac: String?
        var kid: UInt64?
        var nonce: String?
        var key: String?
        var reason: String?
        var id: String?
        var evidence: String?
        var width: Int?
        var height: Int?
        var code: Int?
        var message: String?
    }

    /// `to` is a number or the string "experts".
    private enum AnyPeer: Codable {
        case peer(UInt32), experts

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let number = try? container.decode(UInt32.self) {
                self = .peer(number)
            } else if try container.decode(String.self) == "experts" {
                self = .experts
            } else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "'to' must be a peer number or \"experts\"")
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .peer(let number): try container.encode(number)
            case .experts: try container.encode("experts")
            }
        }

        var address: PeerAddress {
            switch self {
            case .peer(let number): .peer(number)
            case .experts: .experts
            }
        }

        init(_ address: PeerAddress) {
            switch address {
            case .peer(let number): self = .peer(number)
            case .experts: self = .experts
            }
        }
    }

    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case notJSON
        case missingField(type: String, field: String)

        public var description: String {
            switch self {
            case .notJSON: "control message is not a JSON object with a string 'type'"
            case let .missingField(type, field): "control message '\(type)' lacks a valid '\(field)'"
            }
        }
    }

    public static func decode(_ text: some DataProtocol) throws(DecodeError) -> CallMessage {
        guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(text)) else { throw .notJSON }
        func need<T>(_ value: T?, _ field: String) throws(DecodeError) -> T {
            guard let value else { throw .missingField(type: wire.type, field: field) }
            return value
        }
        func bytes(_ value: String?, _ field: String) throws(DecodeError) -> Data {
            guard let value, let data = Base64URL.decode(value) else { throw .missingField(type: wire.type, field: field) }
            return data
        }
        switch wire.type {
        case "session": return .session(id: try need(wire.session, "session"))
        case "peer-joined": return .peerJoined(try need(wire.peer, "peer"))
        case "peer-left": return .peerLeft(try need(wire.peer, "peer"))
        case "congestion":
            guard let congestion = try? JSONDecoder().decode(Congestion.self, from: Data(text)) else {
                throw .missingField(type: wire.type, field: "droppedFrames")
            }
            return .congestion(congestion)
        case "error": return .error(code: wire.code ?? 0, message: wire.message ?? "")
        case "stream-state":
            guard let to = wire.to, let state = try? JSONDecoder().decode(StreamState.self, from: Data(text)) else {
                throw .missingField(type: wire.type, field: "step")
            }
            return .streamState(to: to.address, state)
        case "kx-offer": return .keyExchangeOffer(from: try need(wire.from, "from"), publicKey: try bytes(wire.pub, "pub"))
        case "kx-confirm": return .keyExchangeConfirm(from: try need(wire.from, "from"), mac: try bytes(wire.mac, "mac"))
        case "keyframe-request": return .keyframeRequest(from: try need(wire.from, "from"), reason: wire.reason ?? "")
        case "receiver-report":
            let report = (try? JSONDecoder().decode(ReceiverReport.self, from: Data(text))) ?? ReceiverReport()
            return .receiverReport(from: try need(wire.from, "from"), report)
        case "snapshot-request": return .snapshotRequest(from: try need(wire.from, "from"), id: try need(wire.id, "id"))
        case "kx-answer":
            guard case .peer(let to)? = wire.to else { throw .missingField(type: wire.type, field: "to") }
            return .keyExchangeAnswer(to: to, KeyExchangeAnswer(
                devicePublicKey: try bytes(wire.pub, "pub"), identityPublicKey: try bytes(wire.identity, "identity"),
                signature: try bytes(wire.signature, "signature"), mac: try bytes(wire.mac, "mac")))
        case "media-key":
            guard case .peer(let to)? = wire.to else { throw .missingField(type: wire.type, field: "to") }
            let key = WrappedMediaKey(kid: try need(wire.kid, "kid"), nonce: try bytes(wire.nonce, "nonce"), sealedKey: try bytes(wire.key, "key"))
            // The relay stamps `from`: an expert's key for its microphone comes from a peer above 0.
            if let from = wire.from, from != 0 { return .expertMediaKey(from: from, key) }
            return .mediaKey(to: to, key)
        default: return .unknown(type: wire.type)
        }
    }

    /// The JSON text to send.
    public var encoded: Data {
        var wire = Wire(type: "")
        switch self {
        case let .deviceHello(joinToken, resumeSession):
            wire.type = "hello"; wire.role = "device"; wire.joinToken = Base64URL.encode(joinToken); wire.session = resumeSession
        case let .session(id): wire.type = "session"; wire.session = id; wire.peer = 0
        case let .peerJoined(peer): wire.type = "peer-joined"; wire.peer = peer
        case let .peerLeft(peer): wire.type = "peer-left"; wire.peer = peer
        case let .congestion(congestion):
            return (try? JSONEncoder().encode(Tagged(type: "congestion", body: congestion))) ?? Data()
        case let .error(code, message): wire.type = "error"; wire.code = code; wire.message = message
        case let .keyExchangeOffer(from, publicKey):
            wire.type = "kx-offer"; wire.to = .peer(0); wire.from = from; wire.pub = Base64URL.encode(publicKey)
        case let .keyExchangeAnswer(to, answer):
            wire.type = "kx-answer"; wire.to = .peer(to)
            wire.pub = Base64URL.encode(answer.devicePublicKey); wire.identity = Base64URL.encode(answer.identityPublicKey)
            wire.signature = Base64URL.encode(answer.signature); wire.mac = Base64URL.encode(answer.mac)
        case let .keyExchangeConfirm(from, mac):
            wire.type = "kx-confirm"; wire.to = .peer(0); wire.from = from; wire.mac = Base64URL.encode(mac)
        case let .keyExchangeFailed(to): wire.type = "kx-failed"; wire.to = .peer(to)
        case let .mediaKey(to, key):
            wire.type = "media-key"; wire.to = .peer(to); wire.kid = key.kid
            wire.nonce = Base64URL.encode(key.nonce); wire.key = Base64URL.encode(key.sealedKey)
        case let .expertMediaKey(from, key):
            wire.type = "media-key"; wire.to = .peer(0); wire.from = from; wire.kid = key.kid
            wire.nonce = Base64URL.encode(key.nonce); wire.key = Base64URL.encode(key.sealedKey)
        case let .streamState(to, state):
            return (try? JSONEncoder().encode(Tagged(type: "stream-state", to: AnyPeer(to), body: state))) ?? Data()
        case let .keyframeRequest(from, reason): wire.type = "keyframe-request"; wire.to = .peer(0); wire.from = from; wire.reason = reason
        case let .receiverReport(from, report):
            return (try? JSONEncoder().encode(Tagged(type: "receiver-report", to: .peer(0), from: from, body: report))) ?? Data()
        case let .snapshotRequest(from, id): wire.type = "snapshot-request"; wire.to = .peer(0); wire.from = from; wire.id = id
        case let .snapshotTaken(to, id, evidence, width, height):
            wire.type = "snapshot-taken"; wire.to = .peer(to); wire.id = id; wire.evidence = evidence; wire.width = width; wire.height = height
        case let .snapshotFailed(to, id, reason): wire.type = "snapshot-failed"; wire.to = .peer(to); wire.id = id; wire.reason = reason
        case let .unknown(type): wire.type = type
        }
        // Encoding a struct of strings and integers cannot fail.
        return (try? JSONEncoder().encode(wire)) ?? Data()
    }

    /// A message whose fields come from a Codable body, flattened beside `type`, `to` and `from`.
    private struct Tagged<Body: Encodable>: Encodable {
        var type: String
        var to: AnyPeer?
        var from: UInt32?
        var body: Body

        private enum Keys: String, CodingKey { case type, to, from }

        func encode(to encoder: any Encoder) throws {
            try body.encode(to: encoder)
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(type, forKey: .type)
            try container.encodeIfPresent(to, forKey: .to)
            try container.encodeIfPresent(from, forKey: .from)
        }
    }
}
