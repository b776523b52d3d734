import Crypto
import Foundation

/// One KID's keys under cipher suite AES_128_GCM_SHA256_128 (0x0004), the only suite
/// implemented: AES-GCM keeps the frame overhead to the 16-byte tag and runs on AES-NI.
/// Stateless; counters and replay protection live in `SFrameSealer` and `SFrameOpener`.
public struct SFrameCipher: Sendable {
    public static let suite: UInt16 = 0x0004
    static let keyLength = 16  // Nk
    static let nonceLength = 12  // Nn
    static let tagLength = 16  // Nt
    /// Largest plaintext accepted by default: far above any encoded video frame we send,
    /// small enough that a hostile peer cannot make us buffer or decrypt unbounded data.
    public static let defaultMaximumFrameSize = 1 << 20

    public let kid: UInt64
    let key: SymmetricKey
    let salt: [UInt8]

    /// Derives `sframe_key` and `sframe_salt` from `baseKey` (RFC 9605 section 4.4.2).
    public init(kid: UInt64, baseKey: SymmetricKey) {
        let secret = Self.secret(baseKey: baseKey)
        self.kid = kid
        key = HKDF<SHA256>.expand(pseudoRandomKey: secret, info: Self.label("key", kid: kid), outputByteCount: Self.keyLength)
        salt = HKDF<SHA256>.expand(pseudoRandomKey: secret, info: Self.label("salt", kid: kid), outputByteCount: Self.nonceLength)
            .withUnsafeBytes { Array($0) }
    }

    /// `sframe_secret = HKDF-Extract("", base_key)`.
    static func secret(baseKey: SymmetricKey) -> HashedAuthenticationCode<SHA256> {
        HKDF<SHA256>.extract(inputKeyMaterial: baseKey, salt: [UInt8]())
    }

    /// `"SFrame 1.0 Secret " + purpose + " " || KID (8 bytes) || suite (2 bytes)`, all big-endian;
    /// binding the KID and suite keeps keys distinct even when base keys are shared.
    static func label(_ purpose: String, kid: UInt64) -> [UInt8] {
        Array("SFrame 1.0 Secret \(purpose) ".utf8) + bigEndian(kid, count: 8) + bigEndian(UInt64(suite), count: 2)
    }

    /// `sframe_salt XOR CTR`, the counter left-padded to Nn bytes, so each counter gets its own nonce.
    func nonce(counter: UInt64) -> [UInt8] {
        zip(salt, Self.bigEndian(counter, count: Self.nonceLength)).map { $0 ^ $1 }
    }

    /// The header is authenticated with the metadata so neither can be swapped between frames.
    static func aad(header: some DataProtocol, metadata: some DataProtocol) -> Data {
        var aad = Data(header)
        aad.append(contentsOf: metadata)
        return aad
    }

    /// `header || ciphertext || tag` for `counter`. The caller guarantees each counter is used once.
    func seal(counter: UInt64, plaintext: some DataProtocol, metadata: some DataProtocol) -> Data {
        let header = SFrameHeader(kid: kid, counter: counter).encoded
        let box: AES.GCM.SealedBox
        do {
            box = try AES.GCM.seal(
                plaintext, using: key, nonce: AES.GCM.Nonce(data: nonce(counter: counter)),
                authenticating: Self.aad(header: header, metadata: metadata))
        } catch {
            // Only a wrong key or nonce size can fail here, and both are fixed above.
            preconditionFailure("AES-GCM refused a fixed-size key or nonce: \(error)")
        }
        var frame = Data(capacity: header.count + box.ciphertext.count + Self.tagLength)
        frame.append(contentsOf: header)
        frame.append(box.ciphertext)
        frame.append(box.tag)
        return frame
    }

    /// Authenticates and decrypts a frame whose header was already decoded to `counter`.
    func open(counter: UInt64, headerLength: Int, frame: some DataProtocol, metadata: some DataProtocol) throws(SFrameError) -> Data {
        let body = frame.dropFirst(headerLength)
        guard body.count >= Self.tagLength else { throw .truncatedCiphertext }
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: nonce(counter: counter)),
                ciphertext: body.dropLast(Self.tagLength), tag: body.suffix(Self.tagLength))
            return try AES.GCM.open(
                box, using: key, authenticating: Self.aad(header: frame.prefix(headerLength), metadata: metadata))
        } catch {
            throw .authenticationFailed
        }
    }

    /// The low `count` bytes of `value`, most significant first, zero-padded on the left.
    static func bigEndian(_ value: UInt64, count: Int) -> [UInt8] {
        (0..<count).reversed().map { $0 < 8 ? UInt8(truncatingIfNeeded: value >> (8 * $0)) : 0 }
    }
}
