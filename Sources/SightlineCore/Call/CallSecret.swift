import Crypto
import Foundation

/// The 256-bit secret of one call. It leaves the device only inside the invite link's URL
/// fragment, which browsers never send to a server; everything the relay learns is derived
/// one-way from it (docs/PROTOCOL.md, "Calls, invite links and secrets").
public struct CallSecret: Sendable {
    public static let byteCount = 32
    let bytes: SymmetricKey

    /// A fresh secret from the system's CSPRNG.
    public init() {
        bytes = SymmetricKey(size: .bits256)
    }

    /// The secret from an invite link's fragment (b64u, 43 characters).
    public init?(base64URL text: some StringProtocol) {
        guard let data = Base64URL.decode(text), data.count == Self.byteCount else { return nil }
        bytes = SymmetricKey(data: data)
    }

    /// The b64u text that goes after the `#` of the invite link.
    public var base64URL: String { bytes.withUnsafeBytes { Base64URL.encode(Data($0)) } }

    /// What the relay compares an expert's hello against; it keeps only its SHA-256.
    public var joinToken: Data { derive("sightline join token v1") }

    /// Authenticates the key-exchange transcript: known to device and experts, never the relay.
    public var macKey: SymmetricKey { SymmetricKey(data: derive("sightline kx mac v1")) }

    /// `HKDF(IKM = secret, salt = "", info, 32)`.
    private func derive(_ info: String) -> Data {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: bytes, info: Array(info.utf8), outputByteCount: 32)
            .withUnsafeBytes { Data($0) }
    }

    /// `https://relay/v/SESSION#SECRET`: `relayURL` is the relay's public base URL.
    public func inviteLink(relayURL: String, session: String) -> String {
        let base = relayURL.hasSuffix("/") ? String(relayURL.dropLast()) : relayURL
        return "\(base)/v/\(session)#\(base64URL)"
    }
}

/// base64url without padding (RFC 4648 section 5), the encoding of every binary field in the
/// protocol's JSON. Foundation only knows the standard alphabet, so this maps between the two.
public enum Base64URL {
    public static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Nil for anything that is not unpadded base64url.
    public static func decode(_ text: some StringProtocol) -> Data? {
        guard !text.contains("="), !text.contains("+"), !text.contains("/") else { return nil }
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard += String(repeating: "=", count: (4 - standard.count % 4) % 4)
        return Data(base64Encoded: standard)
    }
}
