import Crypto
import Foundation

/// The bytes both sides MAC and the device signs (docs/PROTOCOL.md, "Key exchange"). Binding
/// session, expert number and all three public keys means a relay cannot splice two
/// exchanges together or swap a key without the MAC failing.
public struct KeyExchangeTranscript: Sendable, Equatable {
    public static let label = Array("sightline kx v1".utf8)
    public let bytes: [UInt8]

    public init(session: String, expertPeer: UInt32, expertPublicKey: Data, devicePublicKey: Data, identityPublicKey: Data) {
        let sessionBytes = Array(session.utf8)
        var bytes = Self.label
        bytes += withUnsafeBytes(of: UInt16(sessionBytes.count).bigEndian, Array.init)
        bytes += sessionBytes
        bytes += withUnsafeBytes(of: expertPeer.bigEndian, Array.init)
        bytes += expertPublicKey + devicePublicKey + identityPublicKey
        self.bytes = bytes
    }

    func mac(role: String, key: SymmetricKey) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Array(role.utf8) + bytes, using: key))
    }

    /// Constant time (swift-crypto's `isValidAuthenticationCode`).
    func verify(mac: Data, role: String, key: SymmetricKey) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Array(role.utf8) + bytes, using: key)
    }

    /// `HKDF(IKM = shared, salt = secret, info = "sightline pair key v1" || SHA-256(transcript), 16)`.
    func pairKey(shared: SharedSecret, secret: CallSecret) -> SymmetricKey {
        let salt = secret.bytes.withUnsafeBytes { Array($0) }
        let info = Array("sightline pair key v1".utf8) + Array(SHA256.hash(data: bytes))
        return shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: salt, sharedInfo: info, outputByteCount: 16)
    }
}

/// Why an exchange was refused; each one means the peer does not hold the call secret or
/// something between us altered the messages.
public enum KeyExchangeError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformedKey(String)
    case macMismatch
    case badSignature
    case notStarted
    case keyUnwrapFailed
    case keyWrapFailed

    public var description: String {
        switch self {
        case .malformedKey(let field): "key exchange: '\(field)' is not a valid 32-byte key"
        case .macMismatch: "key exchange: transcript MAC does not verify (peer lacks the call secret, or the relay altered messages)"
        case .badSignature: "key exchange: the device identity signature does not verify"
        case .notStarted: "key exchange: confirmation without a preceding offer"
        case .keyUnwrapFailed: "media key: does not decrypt under the pair key"
        case .keyWrapFailed: "media key: AES-GCM refused to seal it (the pair key is not 16 bytes)"
        }
    }
}

/// The device's half of one exchange with one expert.
public struct DeviceKeyExchange: Sendable {
    public let transcript: KeyExchangeTranscript
    public let answer: KeyExchangeAnswer
    let pairKey: SymmetricKey
    let macKey: SymmetricKey

    /// Answers an expert's offer with a fresh ephemeral key, signed by the device identity.
    public init(offer expertPublicKey: Data, expertPeer: UInt32, session: String, secret: CallSecret,
                identity: Curve25519.Signing.PrivateKey) throws(KeyExchangeError) {
        guard let expertKey = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: expertPublicKey) else {
            throw .malformedKey("pub")
        }
        let ephemeral = Curve25519.KeyAgreement.PrivateKey()
        let devicePublic = ephemeral.publicKey.rawRepresentation
        let identityPublic = identity.publicKey.rawRepresentation
        let transcript = KeyExchangeTranscript(
            session: session, expertPeer: expertPeer, expertPublicKey: expertPublicKey,
            devicePublicKey: devicePublic, identityPublicKey: identityPublic)
        // A low-order expert key yields an all-zero secret; swift-crypto refuses it.
        guard let shared = try? ephemeral.sharedSecretFromKeyAgreement(with: expertKey),
              let signature = try? identity.signature(for: transcript.bytes)
        else { throw .malformedKey("pub") }
        self.transcript = transcript
        macKey = secret.macKey
        pairKey = transcript.pairKey(shared: shared, secret: secret)
        answer = KeyExchangeAnswer(
            devicePublicKey: devicePublic, identityPublicKey: identityPublic, signature: signature,
            mac: transcript.mac(role: "device", key: macKey))
    }

    /// True when the expert proved it holds the call secret for this very transcript.
    public func verifyConfirmation(mac: Data) -> Bool {
        transcript.verify(mac: mac, role: "expert", key: macKey)
    }

    /// Encrypts an SFrame base key for this expert.
    public func wrap(mediaKey: SymmetricKey, kid: UInt64) throws(KeyExchangeError) -> WrappedMediaKey {
        try MediaKeyWrapping.wrap(mediaKey, kid: kid, pairKey: pairKey)
    }

    /// Decrypts the base key this expert seals its microphone's audio with.
    public func unwrap(_ wrapped: WrappedMediaKey) throws(KeyExchangeError) -> SymmetricKey {
        try MediaKeyWrapping.unwrap(wrapped, pairKey: pairKey)
    }
}

/// The device's answer fields, raw bytes (b64u on the wire).
public struct KeyExchangeAnswer: Sendable, Equatable {
    public let devicePublicKey: Data
    public let identityPublicKey: Data
    public let signature: Data
    public let mac: Data

    public init(devicePublicKey: Data, identityPublicKey: Data, signature: Data, mac: Data) {
        self.devicePublicKey = devicePublicKey
        self.identityPublicKey = identityPublicKey
        self.signature = signature
        self.mac = mac
    }
}

/// The expert's half, as the viewer runs it; in Swift for tests, benchmarks and a future
/// native viewer.
public struct ExpertKeyExchange: Sendable {
    public let expertPeer: UInt32
    public let publicKey: Data
    private let ephemeral: Curve25519.KeyAgreement.PrivateKey
    private let secret: CallSecret
    private let session: String

    public init(expertPeer: UInt32, session: String, secret: CallSecret) {
        ephemeral = Curve25519.KeyAgreement.PrivateKey()
        publicKey = ephemeral.publicKey.rawRepresentation
        self.expertPeer = expertPeer
        self.session = session
        self.secret = secret
    }

    /// Verifies the device's answer; returns the confirmation MAC, the pair key and the
    /// device fingerprint to show.
    public func accept(_ answer: KeyExchangeAnswer) throws(KeyExchangeError) -> (confirmation: Data, pairKey: SymmetricKey, fingerprint: String) {
        guard let deviceKey = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: answer.devicePublicKey) else {
            throw .malformedKey("pub")
        }
        guard let identity = try? Curve25519.Signing.PublicKey(rawRepresentation: answer.identityPublicKey) else {
            throw .malformedKey("identity")
        }
        let transcript = KeyExchangeTranscript(
            session: session, expertPeer: expertPeer, expertPublicKey: publicKey,
            devicePublicKey: answer.devicePublicKey, identityPublicKey: answer.identityPublicKey)
        guard transcript.verify(mac: answer.mac, role: "device", key: secret.macKey) else { throw .macMismatch }
        guard identity.isValidSignature(answer.signature, for: transcript.bytes) else { throw .badSignature }
        guard let shared = try? ephemeral.sharedSecretFromKeyAgreement(with: deviceKey) else { throw .malformedKey("pub") }
        return (transcript.mac(role: "expert", key: secret.macKey), transcript.pairKey(shared: shared, secret: secret),
                DeviceIdentityEncoding.fingerprint(of: identity))
    }
}

/// A media key sealed for one expert (the `media-key` message).
public struct WrappedMediaKey: Sendable, Equatable {
    public let kid: UInt64
    public let nonce: Data
    /// Ciphertext || tag, 32 bytes.
    public let sealedKey: Data

    public init(kid: UInt64, nonce: Data, sealedKey: Data) {
        self.kid = kid
        self.nonce = nonce
        self.sealedKey = sealedKey
    }
}

/// AES-128-GCM under the pair key with the KID in the AAD, so a relay cannot move a key to
/// another KID.
public enum MediaKeyWrapping {
    static func aad(kid: UInt64) -> [UInt8] {
        Array("sightline media key v1".utf8) + withUnsafeBytes(of: kid.bigEndian, Array.init)
    }

    public static func wrap(_ key: SymmetricKey, kid: UInt64, pairKey: SymmetricKey) throws(KeyExchangeError) -> WrappedMediaKey {
        let nonce = AES.GCM.Nonce()
        guard let box = try? AES.GCM.seal(key.withUnsafeBytes { Data($0) }, using: pairKey, nonce: nonce, authenticating: aad(kid: kid))
        else { throw .keyWrapFailed }
        return WrappedMediaKey(kid: kid, nonce: Data(nonce), sealedKey: Data(Array(box.ciphertext) + Array(box.tag)))
    }

    public static func unwrap(_ wrapped: WrappedMediaKey, pairKey: SymmetricKey) throws(KeyExchangeError) -> SymmetricKey {
        guard wrapped.sealedKey.count == 32,
              let nonce = try? AES.GCM.Nonce(data: wrapped.nonce),
              let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: wrapped.sealedKey.prefix(16), tag: wrapped.sealedKey.suffix(16)),
              let key = try? AES.GCM.open(box, using: pairKey, authenticating: aad(kid: wrapped.kid))
        else { throw .keyUnwrapFailed }
        return SymmetricKey(data: key)
    }
}

/// KIDs name a sender and an epoch: `epoch × 65536 + sender`, the device being sender 0.
public struct MediaKeyID: Sendable, Hashable {
    public let epoch: UInt32
    public let sender: UInt16

    public init(epoch: UInt32, sender: UInt16) {
        self.epoch = epoch
        self.sender = sender
    }

    public init(_ kid: UInt64) {
        epoch = UInt32(truncatingIfNeeded: kid >> 16)
        sender = UInt16(truncatingIfNeeded: kid)
    }

    public var kid: UInt64 { UInt64(epoch) << 16 | UInt64(sender) }

    /// The device seals its audio under the epoch's base key with this sender number (experts
    /// are numbered from 1 up, so it is never theirs): SFrame derives a separate key and salt
    /// per KID, and audio keeps a counter of its own beside video's.
    public static let deviceAudioSender: UInt16 = 0xFFFF

    /// The KID of the device's audio in the same epoch as this (video) KID.
    public var deviceAudio: MediaKeyID { MediaKeyID(epoch: epoch, sender: Self.deviceAudioSender) }
}
