import Foundation
import SightlineCore
import SightlineTesting
import Testing
@testable import SightlineSystem

@Suite("Device identity store")
struct DeviceIdentityStoreTests {
    func mode(of path: String) -> UInt32 {
        var info = stat()
        stat(path, &info)
        return UInt32(info.st_mode) & 0o777
    }

    @Test("first start creates a 0600 key in a 0700 directory; later starts reuse it")
    func createThenReuse() throws {
        let directory = try TemporaryDirectory()
        let store = DeviceIdentityStore(stateDirectory: directory.file("state"))
        let first = try store.loadOrCreate()
        #expect(mode(of: store.keyPath) == 0o600)
        #expect(mode(of: (store.keyPath as NSString).deletingLastPathComponent) == 0o700)
        #expect(mode(of: directory.file("state")) == 0o700)
        let second = try store.loadOrCreate()
        #expect(first.publicKey.rawRepresentation == second.publicKey.rawRepresentation)
    }

    @Test("a key readable by others is refused, not replaced", arguments: [0o644, 0o640, 0o604])
    func exposedKeyRefused(mode: Int) throws {
        let directory = try TemporaryDirectory()
        let store = DeviceIdentityStore(stateDirectory: directory.file("state"))
        let original = try String(contentsOfFile: { _ = try store.loadOrCreate(); return store.keyPath }(), encoding: .utf8)
        chmod(store.keyPath, mode_t(mode))
        do {
            _ = try store.loadOrCreate()
            Issue.record("an exposed key was accepted")
        } catch {
            guard case .exposed = error else { Issue.record("wrong error: \(error)"); return }
            #expect(error.description.contains("chmod 600"))
        }
        #expect(try String(contentsOfFile: store.keyPath, encoding: .utf8) == original)
    }

    @Test("a corrupt key is refused with the reason")
    func corruptKeyRefused() throws {
        let directory = try TemporaryDirectory()
        let store = DeviceIdentityStore(stateDirectory: directory.file("state"))
        _ = try store.loadOrCreate()
        try SecureFiles.writeAtomically(Data("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".utf8), to: store.keyPath)
        #expect(throws: DeviceIdentityStore.Failure.self) { try store.loadOrCreate() }
        do {
            _ = try store.loadOrCreate()
        } catch {
            #expect(error.description.contains("not an Ed25519 PKCS#8 private key"))
        }
    }

    @Test("OpenSSL reads the key file and derives the same public key")
    func opensslAgrees() throws {
        let directory = try TemporaryDirectory()
        let store = DeviceIdentityStore(stateDirectory: directory.file("state"))
        let key = try store.loadOrCreate()
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["pkey", "-in", store.keyPath, "-pubout", "-outform", "DER"]
        let pipe = Pipe()
        openssl.standardOutput = pipe
        try openssl.run()
        let der = pipe.fileHandleForReading.readDataToEndOfFile()
        openssl.waitUntilExit()
        #expect(openssl.terminationStatus == 0)
        // SubjectPublicKeyInfo for Ed25519 is a 12-byte header and the 32-byte key.
        #expect(der.suffix(32) == key.publicKey.rawRepresentation)
    }
}

@Suite("Secure files")
struct SecureFilesTests {
    @Test("atomic writes are 0600 and leave no temporary file")
    func atomicWrite() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("secret")
        try SecureFiles.writeAtomically(Data("one".utf8), to: path)
        try SecureFiles.writeAtomically(Data("two".utf8), to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "two")
        var info = stat()
        stat(path, &info)
        #expect(UInt32(info.st_mode) & 0o777 == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["secret"])
    }

    @Test("a write into a missing directory fails with the path and errno")
    func failingWrite() {
        do {
            try SecureFiles.writeAtomically(Data("x".utf8), to: "/nonexistent-dir/secret")
            Issue.record("write succeeded")
        } catch {
            #expect(error.errno == ENOENT)
            #expect(error.description.contains("/nonexistent-dir/secret"))
        }
    }
}

@Suite("System accounts and logging")
struct SystemAccountsTests {
    @Test("group lookup and group lists come from NSS")
    func accounts() {
        #expect(SystemAccounts.groupID(named: "root") == 0)
        #expect(SystemAccounts.groupID(named: "no-such-group-sightline") == nil)
        #expect(SystemAccounts.groups(ofUser: 0, primaryGroup: 0).contains(0))
        // nobody is not in group root
        #expect(!SystemAccounts.groups(ofUser: 65534, primaryGroup: 65534).contains(0))
    }

    @Test("journal priorities follow sd-daemon(3)")
    func priorities() {
        #expect(JournalLogHandler.syslogPriority(.critical) == 2)
        #expect(JournalLogHandler.syslogPriority(.error) == 3)
        #expect(JournalLogHandler.syslogPriority(.warning) == 4)
        #expect(JournalLogHandler.syslogPriority(.info) == 6)
        #expect(JournalLogHandler.syslogPriority(.debug) == 7)
    }
}
