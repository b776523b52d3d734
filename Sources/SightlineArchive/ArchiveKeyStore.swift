import Crypto
import Foundation
import SightlineCore
import SightlineSystem

/// The device archive key (AES-256) that wraps every case's data key. Preferred source: the
/// systemd credential `sightline-archive-key` (`LoadCredential=`/`SetCredentialEncrypted=`,
/// found in `$CREDENTIALS_DIRECTORY`), so the key can live in the TPM or outside the state
/// directory; otherwise a 0600 key file created on first use. A key that others can read is
/// refused: it would decrypt every case.
public struct ArchiveKeyStore: Sendable {
    public static let credentialName = "sightline-archive-key"
    public let keyFilePath: String
    public let credentialsDirectory: String?

    public init(keyFilePath: String, credentialsDirectory: String? = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"]) {
        self.keyFilePath = keyFilePath
        self.credentialsDirectory = credentialsDirectory
    }

    public enum Failure: Error, CustomStringConvertible, Sendable {
        case exposed(path: String, mode: UInt32)
        case malformed(path: String, size: Int)
        case system(SystemError)

        public var description: String {
            switch self {
            case .exposed(let path, let mode):
                "archive key \(path) has mode \(String(mode, radix: 8)) and is readable by others: every case it wraps must be "
                    + "treated as exposed. If it never left the device: chmod 600 \(path)"
            case .malformed(let path, let size):
                "archive key \(path) holds \(size) bytes; expected 32 raw bytes or 64 hex digits. Restore it from backup: "
                    + "without it no stored evidence can be decrypted"
            case .system(let error):
                "archive key: \(error)"
            }
        }
    }

    /// Where the key was read from, for the log.
    public func source() -> String {
        if let credential = credentialPath(), FileManager.default.fileExists(atPath: credential) { return "credential \(credential)" }
        return "key file \(keyFilePath)"
    }

    private func credentialPath() -> String? {
        credentialsDirectory.map { ($0 as NSString).appendingPathComponent(Self.credentialName) }
    }

    public func loadOrCreate() throws(Failure) -> SymmetricKey {
        if let credential = credentialPath(), FileManager.default.fileExists(atPath: credential) {
            // systemd makes credentials readable by the service alone; no mode check needed.
            return try parse(path: credential)
        }
        var info = stat()
        if stat(keyFilePath, &info) != 0 {
            guard errno == ENOENT else { throw .system(SystemError("stat", path: keyFilePath, errno: errno)) }
            let key = SymmetricKey(size: .bits256)
            do {
                try SecureFiles.ensurePrivateDirectory((keyFilePath as NSString).deletingLastPathComponent)
                try SecureFiles.writeAtomically(key.withUnsafeBytes { Data($0) }, to: keyFilePath)
            } catch {
                throw .system(error)
            }
            return key
        }
        let mode = UInt32(info.st_mode) & 0o777
        guard mode & 0o077 == 0 else { throw .exposed(path: keyFilePath, mode: mode) }
        return try parse(path: keyFilePath)
    }

    private func parse(path: String) throws(Failure) -> SymmetricKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .system(SystemError("read", path: path, errno: errno == 0 ? EIO : errno))
        }
        if data.count == 32 { return SymmetricKey(data: data) }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if let bytes = [UInt8](hex: text), bytes.count == 32 { return SymmetricKey(data: bytes) }
        throw .malformed(path: path, size: data.count)
    }
}
