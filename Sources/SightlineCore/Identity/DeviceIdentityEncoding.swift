import Crypto
import Foundation

/// The on-disk form of the device identity key: PKCS#8 (RFC 8410) in PEM, so `openssl pkey`
/// and every other tool can read it. Written by hand because swift-crypto has no PEM support
/// for Ed25519: the DER is a fixed 16-byte prefix followed by the 32-byte seed.
public enum DeviceIdentityEncoding {
    /// SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
    static let pkcs8Prefix: [UInt8] = [
        0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]
    static let pemHeader = "-----BEGIN PRIVATE KEY-----"
    static let pemFooter = "-----END PRIVATE KEY-----"

    public enum DecodingError: Error, Equatable, CustomStringConvertible {
        case notPEM
        case notBase64
        case notEd25519PKCS8

        public var description: String {
            switch self {
            case .notPEM: "it is not a PEM \"PRIVATE KEY\" block"
            case .notBase64: "its PEM body is not valid base64"
            case .notEd25519PKCS8: "it is not an Ed25519 PKCS#8 private key"
            }
        }
    }

    public static func pem(for key: Curve25519.Signing.PrivateKey) -> String {
        let der = pkcs8Prefix + Array(key.rawRepresentation)
        let body = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "\(pemHeader)\n\(body)\n\(pemFooter)\n"
    }

    public static func privateKey(fromPEM text: String) throws(DecodingError) -> Curve25519.Signing.PrivateKey {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let start = lines.firstIndex(of: pemHeader), let end = lines.firstIndex(of: pemFooter), start < end else {
            throw .notPEM
        }
        guard let der = Data(base64Encoded: lines[(start + 1)..<end].joined()) else { throw .notBase64 }
        guard der.count == pkcs8Prefix.count + 32, Array(der.prefix(pkcs8Prefix.count)) == pkcs8Prefix,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32))
        else { throw .notEd25519PKCS8 }
        return key
    }

    /// `SHA256:` + unpadded base64 of SHA-256 over the raw public key (the OpenSSH style
    /// operators recognise).
    public static func fingerprint(of publicKey: Curve25519.Signing.PublicKey) -> String {
        let digest = SHA256.hash(data: publicKey.rawRepresentation)
        let base64 = Data(digest).base64EncodedString().replacingOccurrences(of: "=", with: "")
        return "SHA256:" + base64
    }
}
