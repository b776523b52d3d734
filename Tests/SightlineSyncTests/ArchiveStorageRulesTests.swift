import Foundation
import Logging
import PostgresNIO
import SightlineArchive
@testable import SightlineArchiveServer
import SightlineCore
import SightlineTesting
import Testing

@Suite("Archive stores keep the same rules")
struct ArchiveStorageRulesTests {
    private static func bytes(_ count: Int, seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) ^ seed } }
    private static let sha = String(repeating: "ab", count: 32)

    @Test("Chunks append at exactly the held offset or conflict; a commit needs the whole upload; a discard leaves nothing",
          arguments: TestStore.allCases)
    func offsetsAndCommits(store: TestStore) async throws {
        guard store.isAvailable() else { return }
        let directory = try TemporaryDirectory(prefix: "sightline-storage-rules")
        let test = try await TestStorage.make(store, directory: directory.file("data"))
        let storage = test.storage
        // 5 MiB: more than one 4 MiB row in PostgreSQL.
        let first = Self.bytes(5 << 20, seed: 1), second = Self.bytes(1000, seed: 2)
        #expect(try await storage.receivedBytes("c1", Self.sha) == 0)
        #expect(try await storage.appendChunk("c1", Self.sha, offset: 0, first) == UInt64(first.count))
        await #expect(throws: ArchiveStorageError.self) { try await storage.appendChunk("c1", Self.sha, offset: 0, second) }
        await #expect(throws: ArchiveStorageError.self) { try await storage.appendChunk("c1", Self.sha, offset: UInt64(first.count) + 1, second) }
        #expect(try await storage.receivedBytes("c1", Self.sha) == UInt64(first.count))

        // Two servers appending the same chunk at once: exactly one is stored.
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<2 { group.addTask { (try? await storage.appendChunk("c1", Self.sha, offset: UInt64(first.count), second)) != nil } }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.filter { $0 }.count == 1)
        let total = UInt64(first.count + second.count)
        #expect(try await storage.receivedBytes("c1", Self.sha) == total)
        var read: [UInt8] = []
        try await storage.readUpload("c1", Self.sha) { read += $0 }
        #expect(read == first + second)

        _ = try await storage.claimCase("c1", device: "d1")
        let blob = StoredBlob(caseID: "c1", sha256: Self.sha, plaintextSize: 1, sealedSize: total, sealedSHA256: String(repeating: "cd", count: 32))
        if store == .postgres {
            // PostgreSQL checks the size under the upload's lock: bytes appended after the check make a commit conflict.
            var short = blob
            short.sealedSize -= 1
            await #expect(throws: ArchiveStorageError.self) { try await storage.commitUpload(short) }
        }
        try await storage.commitUpload(blob)
        #expect(try await storage.blob("c1", Self.sha) == blob)
        #expect(try await storage.receivedBytes("c1", Self.sha) == 0)
        #expect(try await storedBytes("c1", Self.sha, in: storage) == first + second)
        // Pieces read back from any offset, across PostgreSQL's 4 MiB rows; an offset past the end is refused.
        let whole = first + second
        for (offset, count) in [(0, 10), ((4 << 20) - 5, 10), ((4 << 20) - 5, 4 << 20), (whole.count - 3, 100), (whole.count, 10)] {
            let piece = try await storage.readBlob("c1", Self.sha, offset: UInt64(offset), count: count)
            #expect(piece == Array(whole[offset..<min(whole.count, offset + count)]), "offset \(offset), count \(count)")
        }
        await #expect(throws: ArchiveStorageError.self) { try await storage.readBlob("c1", Self.sha, offset: total + 1, count: 1) }
        // A stray discard after the commit (a retry) does not touch the committed bytes.
        try await storage.discardUpload("c1", Self.sha)
        #expect(try await storedBytes("c1", Self.sha, in: storage) == first + second)

        let other = String(repeating: "ef", count: 32)
        _ = try await storage.appendChunk("c1", other, offset: 0, second)
        try await storage.discardUpload("c1", other)
        #expect(try await storage.receivedBytes("c1", other) == 0)
        await #expect(throws: ArchiveStorageError.self) { try await storage.readUpload("c1", other) { _ in } }
        #expect(try await storage.appendChunk("c1", other, offset: 0, second) == UInt64(second.count))
        await test.close()
    }

    @Test("A journal append needs the exact entry count; keys and cases are pinned and claimed once", arguments: TestStore.allCases)
    func journalAndClaims(store: TestStore) async throws {
        guard store.isAvailable() else { return }
        let directory = try TemporaryDirectory(prefix: "sightline-storage-rules")
        let test = try await TestStorage.make(store, directory: directory.file("data"))
        let storage = test.storage
        #expect(try await storage.claimCase("c2", device: "d1") == "d1")
        #expect(try await storage.claimCase("c2", device: "d2") == "d1")
        #expect(try await storage.pinKey(device: "d1", offered: [1, 2, 3]) == [1, 2, 3])
        #expect(try await storage.pinKey(device: "d1", offered: [4, 5, 6]) == [1, 2, 3])
        #expect(try await storage.pinnedKey(device: "d2") == nil)

        let entries = (0..<3).map { StoredJournalEntry(sequence: UInt64($0), hash: Self.bytes(32, seed: UInt8($0)), canonical: Self.bytes(100, seed: 9)) }
        let checkpoint = JournalCheckpoint(caseID: "c2", sequence: 1, entryHash: entries[1].hash, signedAt: 7, publicKey: [1, 2, 3], signature: [9])
        try await storage.appendJournal("c2", after: 0, entries: Array(entries[0..<2]), checkpoints: [checkpoint])
        await #expect(throws: ArchiveStorageError.self) { try await storage.appendJournal("c2", after: 0, entries: [entries[2]], checkpoints: []) }
        await #expect(throws: ArchiveStorageError.self) { try await storage.appendJournal("c2", after: 3, entries: [entries[2]], checkpoints: []) }
        try await storage.appendJournal("c2", after: 2, entries: [entries[2]], checkpoints: [])
        let journal = try await storage.journal("c2")
        #expect(journal.entries == entries)
        #expect(journal.checkpoints == [checkpoint])
        await test.close()
    }
}

@Suite("PostgreSQL archive store: schema and configuration")
struct PostgresArchiveStorageTests {
    /// A token file with one device, for starting `sightline-archive` by hand.
    static func deviceTokens(in directory: TemporaryDirectory) throws -> String {
        let tokens = directory.file("devices")
        guard FileManager.default.createFile(atPath: tokens, contents: Data("glasses-1 abcdefghijklmnop0123\n".utf8), attributes: [.posixPermissions: 0o600]) else {
            throw TestFailure("cannot write \(tokens)")
        }
        return tokens
    }

    @Test("--database URLs: TCP and unix-socket forms, no password in the URL, shown without secrets")
    func databaseURLs() throws {
        let tcp = try ArchiveDatabaseURL("postgres://archive@db.example:6543/sightline?sslmode=require", defaultUser: "me")
        #expect(tcp == ArchiveDatabaseURL(endpoint: .tcp(host: "db.example", port: 6543), user: "archive", database: "sightline", tls: .require))
        #expect(tcp.description == "postgres://archive@db.example:6543/sightline?sslmode=require")
        let socket = try ArchiveDatabaseURL("postgresql:///sightline?host=/run/postgresql", defaultUser: "me")
        #expect(socket == ArchiveDatabaseURL(endpoint: .unixSocket(path: "/run/postgresql/.s.PGSQL.5432"), user: "me", database: "sightline", tls: .disable))
        #expect(try ArchiveDatabaseURL(socket.description, defaultUser: "other") == socket)
        let plain = try ArchiveDatabaseURL("postgres://db.example/archive", defaultUser: "me")
        #expect(plain.tls == .prefer && plain.user == "me")
        let privateCA = try ArchiveDatabaseURL("postgres://archive@db.example/sightline?sslmode=require&sslrootcert=/etc/sightline/db-ca.pem", defaultUser: "me")
        #expect(privateCA.rootCertificates == "/etc/sightline/db-ca.pem")
        #expect(try ArchiveDatabaseURL(privateCA.description, defaultUser: "other") == privateCA)

        for (bad, expected) in [("postgres://archive:hunter2@db.example/sightline", "password"), ("mysql://db/x", "postgres://"),
                                ("postgres://db.example", "database"), ("postgresql:///x?host=/run/postgresql&sslmode=require", "TCP only"),
                                ("postgres://db.example/x?sslmode=maybe", "sslmode"), ("postgres://db.example/x?options=-c", "unknown parameter"),
                                ("postgres://db.example/x?sslrootcert=ca.pem", "absolute path"),
                                ("postgres://db.example/x?sslmode=disable&sslrootcert=/ca.pem", "needs TLS")] {
            let error = #expect(throws: ArchiveDatabaseURL.ParseError.self) { try ArchiveDatabaseURL(bad, defaultUser: "me") }
            let message = error?.description ?? ""
            #expect(message.contains(expected) && !message.contains("hunter2"), "\(bad): \(message)")
        }
    }

    @Test("The schema is created on first start, left alone on the next, and a newer schema is refused")
    func migrations() async throws {
        guard TestStore.postgres.isAvailable() else { return }
        let server = try PostgresServer()
        try await server.start()
        defer { server.stop() }
        let url = try ArchiveDatabaseURL(server.url, defaultUser: "")
        let logger = Logger(label: "migration-test")
        let connection = try await PostgresConnection.connect(configuration: try PostgresArchiveStorage.connectionConfiguration(url, password: nil),
                                                              id: 1, logger: logger)
        let latest = PostgresArchiveStorage.migrations.count
        let created = try await PostgresArchiveStorage.migrate(connection, logger: logger)
        #expect(created.from == 0 && created.to == latest)
        let again = try await PostgresArchiveStorage.migrate(connection, logger: logger)
        #expect(again.from == latest && again.to == latest)
        var tables: [String] = []
        for try await name in try await connection.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename", logger: logger).decode(String.self) {
            tables.append(name)
        }
        #expect(tables == ["blob_chunks", "blobs", "cases", "checkpoints", "devices", "journal_entries", "sightline_schema", "uploads"])

        // Opening twice at once (two servers starting) migrates once.
        async let one = PostgresArchiveStorage.open(url, password: nil)
        async let two = PostgresArchiveStorage.open(url, password: nil)
        let (first, second) = try await (one, two)
        await first.close()
        await second.close()

        try await connection.query("INSERT INTO sightline_schema (version, applied_at) VALUES (99, 0)", logger: logger)
        let refused = await #expect(throws: ArchiveStorageError.self) { try await PostgresArchiveStorage.open(url, password: nil) }
        #expect(refused?.description.contains("schema version 99") == true, "\(String(describing: refused))")
        try await connection.close()
    }

    @Test("A database that asks for a password: the server reads it from a 0600 file and serves; a wrong one exits 78 without echoing it")
    func passwordFromFile() async throws {
        guard TestStore.postgres.isAvailable() else { return }
        let database = try PostgresServer(password: "right-pass-4711")
        try await database.start()
        defer { database.stop() }
        let directory = try TemporaryDirectory(prefix: "sightline-archive-pg-password")
        func passwordFile(_ name: String, _ password: String) throws -> String {
            let path = directory.file(name)
            guard FileManager.default.createFile(atPath: path, contents: Data("\(password)\n".utf8), attributes: [.posixPermissions: 0o600]) else {
                throw TestFailure("cannot write \(path)")
            }
            return path
        }
        let server = try ArchiveServerProcess(database: database.url, databasePasswordFile: try passwordFile("right", "right-pass-4711"))
        try await server.start()
        let device = try DeviceArchive()
        try device.fileCase(photos: 1, size: 10_000)
        let pass = try await device.client(server.url, token: server.deviceToken).syncAll()
        #expect(pass.blobs == 1 && pass.entries == 2)
        server.stop()
        #expect(server.process.terminationStatus == 0, "SIGTERM: serving stops, then the pool closes\n\(server.log)")
        #expect(!server.log.contains("right-pass-4711"))

        let tokens = try Self.deviceTokens(in: directory)
        let wrong = try CommandLineTool.run("sightline-archive", ["--listen", "127.0.0.1:18446", "--device-tokens", tokens, "--database", database.url,
                                                                  "--database-password-file", try passwordFile("wrong", "wrong-pass-0815")])
        #expect(wrong.status == 78 && wrong.stderr.contains("password authentication failed"), "\(wrong.stderr)")
        #expect(!wrong.stderr.contains("wrong-pass-0815"))
    }

    @Test("Over TCP with TLS: a database whose certificate the organisation's CA signed serves with sslrootcert; without it, or with a file that is no certificate, the server exits 78")
    func privateCertificateAuthority() async throws {
        guard TestStore.postgres.isAvailable() else { return }
        let directory = try TemporaryDirectory(prefix: "sightline-archive-pg-tls")
        let certificate = try TestCertificate(directory: directory.path)
        let database = try PostgresServer(tls: certificate)
        try await database.start()
        defer { database.stop() }
        let server = try ArchiveServerProcess(database: database.tcpURL + "?sslmode=require&sslrootcert=\(certificate.certificatePath)")
        try await server.start()
        let device = try DeviceArchive()
        try device.fileCase(photos: 1, size: 10_000)
        let pass = try await device.client(server.url, token: server.deviceToken).syncAll()
        #expect(pass.blobs == 1 && pass.entries == 2)
        server.stop()
        #expect(server.process.terminationStatus == 0, "\(server.log)")

        let tokens = try Self.deviceTokens(in: directory)
        let common = ["--listen", "127.0.0.1:18447", "--device-tokens", tokens, "--database"]
        let untrusted = try CommandLineTool.run("sightline-archive", common + [database.tcpURL + "?sslmode=require"])
        #expect(untrusted.status == 78 && untrusted.stderr.contains("cannot reach the archive database"), "\(untrusted.stderr)")
        #expect(untrusted.stderr.lowercased().contains("certificate"), "the reason names the certificate: \(untrusted.stderr)")
        let notPEM = try CommandLineTool.run("sightline-archive", common + [database.tcpURL + "?sslmode=require&sslrootcert=\(tokens)"])
        #expect(notPEM.status == 78 && notPEM.stderr.contains("holds no PEM certificate"), "\(notPEM.stderr)")
    }

    @Test("sightline-archive exits 78 naming the database (without its password) when it cannot reach it or the URL is wrong")
    func unreachableDatabase() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-pg-config")
        let tokens = try Self.deviceTokens(in: directory)
        let password = directory.file("password")
        guard FileManager.default.createFile(atPath: password, contents: Data("hunter2\n".utf8), attributes: [.posixPermissions: 0o600]) else {
            throw TestFailure("cannot write \(password)")
        }
        let common = ["--listen", "127.0.0.1:18445", "--device-tokens", tokens]
        let missing = try CommandLineTool.run("sightline-archive", common + ["--database", "postgresql:///archive?host=\(directory.path)&user=sightline",
                                                                            "--database-password-file", password])
        #expect(missing.status == 78, "\(missing.stderr)")
        #expect(missing.stderr.contains("cannot reach the archive database postgresql:///archive?host=\(directory.path)&user=sightline"), "\(missing.stderr)")
        #expect(!missing.stderr.contains("hunter2"))
        let inURL = try CommandLineTool.run("sightline-archive", common + ["--database", "postgres://sightline:hunter2@127.0.0.1/archive"])
        #expect(inURL.status == 78 && inURL.stderr.contains("--database-password-file") && !inURL.stderr.contains("hunter2"), "\(inURL.stderr)")
        chmod(password, 0o640)
        let readable = try CommandLineTool.run("sightline-archive", common + ["--database", "postgres://sightline@127.0.0.1/archive",
                                                                             "--database-password-file", password])
        #expect(readable.status == 78 && readable.stderr.contains("chmod 600"), "\(readable.stderr)")
    }
}
