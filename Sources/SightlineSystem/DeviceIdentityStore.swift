import Crypto
import Foundation
import SightlineCore

/// The device's Ed25519 identity: created once on first start, 0600, reused ever after. Its
/// fingerprint is what an organisation registers, so a key that others could read, or one that
/// is damaged, is refused rather than silently replaced.
public struct DeviceIdentityStore: Sendable {
    public let keyPath: String

    public init(stateDirectory: String) {
        self.keyPath = (stateDirectory as NSString).appendingPathComponent("identity/device-ed25519.pem")
    }

    public enum Failure: Error, CustomStringConvertible, Sendable {
        case exposed(path: String, mode: UInt32)
        case wrongOwner(path: String, owner: UInt32)
        case corrupt(path: String, reason: String)
        case system(SystemError)

        public var description: String {
            switch self {
            case .exposed(let path, let mode):
                "identity key \(path) has mode \(String(mode, radix: 8)) and is readable by others: "
                    + "treat it as leaked. Move it away and restart to create a new identity (then re-register the "
                    + "device), or if you are sure it never left the device: chmod 600 \(path)"
            case .wrongOwner(let path, let owner):
                "identity key \(path) belongs to uid \(owner), not to the daemon's user (uid \(geteuid())): "
                    + "fix it with chown, or point state_directory at the daemon's own directory"
            case .corrupt(let path, let reason):
                "identity key \(path) is unusable: \(reason). Restore it from backup, or move it away and restart "
                    + "to create a new identity (the device must then be registered again)"
            case .system(let error):
                "identity key: \(error)"
            }
        }
    }

    /// Loads the identity key, creating it on first start.
    public func loadOrCreate() throws(Failure) -> Curve25519.Signing.PrivateKey {
        var info = stat()
        if stat(keyPath, &info) != 0 {
            guard errno == ENOENT else { throw .system(SystemError("stat", path: keyPath, errno: errno)) }
            return try create()
        }
        let mode = UInt32(info.st_mode) & 0o777
        guard mode & 0o077 == 0 else { throw .exposed(path: keyPath, mode: mode) }
        guard info.st_uid == geteuid() else { throw .wrongOwner(path: keyPath, owner: info.st_uid) }
        guard let data = FileManager.default.contents(atPath: keyPath), let text = String(data: data, encoding: .utf8) else {
            throw .corrupt(path: keyPath, reason: "it cannot be read as text")
        }
        do {
            return try DeviceIdentityEncoding.privateKey(fromPEM: text)
        } catch {
            throw .corrupt(path: keyPath, reason: error.description)
        }
    }

    private func create() throws(Failure) -> Curve25519.Signing.PrivateKey {
        let key = Curve25519.Signing.PrivateKey()
        do {
            try SecureFiles.ensurePrivateDirectory((keyPath as NSString).deletingLastPathComponent)
            try SecureFiles.writeAtomically(Data(DeviceIdentityEncoding.pem(for: key).utf8), to: keyPath)
        } catch {
            throw .system(error)
        }
        return key
    }

    public static func info(for key: Curve25519.Signing.PrivateKey, keyPath: String) -> IdentityInfo {
        IdentityInfo(
            algorithm: "ed25519",
            fingerprint: DeviceIdentityEncoding.fingerprint(of: key.publicKey),
            publicKey: key.publicKey.rawRepresentation.base64EncodedString(),
            keyPath: keyPath)
    }
}
