import Foundation
import GRDB
import NIOPosix
import SightlineArchive
import SightlineCore
import SightlineSystem
import Synchronization

/// The embedded store: metadata and journals in `archive.sqlite` (WAL, synchronous=FULL: a
/// returned commit is on disk), sealed blobs as files under `blobs/CASE/SHA256` exactly as the
/// device stores them, uploads in progress under `uploads/CASE/SHA256.part`. Directories 0700,
/// files 0600; an upload's bytes are fsynced before their offset is acknowledged, a committed
/// blob is renamed into place and its directory fsynced before its row is written.
public final class SQLiteArchiveStorage: ArchiveStorage {
    public let directory: String
    private let database: DatabaseQueue
    /// Serialises appends and commits of uploads: two requests for the same blob must not
    /// interleave their writes, and one lock is cheaper to reason about than one per file.
    private let uploads = Mutex<Void>(())

    static let schema = """
        CREATE TABLE devices (name TEXT PRIMARY KEY NOT NULL, public_key BLOB NOT NULL, pinned_at INTEGER NOT NULL);
        CREATE TABLE cases (id TEXT PRIMARY KEY NOT NULL, device TEXT NOT NULL, entry_count INTEGER NOT NULL);
        \(JournalTables.schema)
        CREATE TABLE blobs (
            case_id TEXT NOT NULL, sha256 TEXT NOT NULL, plaintext_size INTEGER NOT NULL, sealed_size INTEGER NOT NULL,
            sealed_sha256 TEXT NOT NULL, committed_at INTEGER NOT NULL, PRIMARY KEY (case_id, sha256));
        """

    public init(directory: String) throws(ArchiveStorageError) {
        self.directory = directory
        let databasePath = Self.path(directory, "archive.sqlite")
        do throws(SystemError) {
            for path in [directory, Self.path(directory, "blobs"), Self.path(directory, "uploads")] {
                try SecureFiles.ensurePrivateDirectory(path)
            }
            // SQLite gives -wal and -shm the main file's mode: create it 0600 first.
            let fd = open(databasePath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw SystemError("create", path: databasePath, errno: errno) }
            Glibc.close(fd)
        } catch {
            throw .failure("cannot prepare the archive directory: \(error); check --data-dir and its owner")
        }
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        do {
            database = try DatabaseQueue(path: databasePath, configuration: configuration)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { db in try db.execute(sql: Self.schema) }
            try migrator.migrate(database)
        } catch {
            throw .failure("cannot open \(databasePath): \(error)")
        }
    }

    static func path(_ directory: String, _ relative: String) -> String { (directory as NSString).appendingPathComponent(relative) }

    /// Where a committed blob lives; the same layout as on the device.
    public func blobPath(_ caseID: String, _ sha256: String) -> String { Self.path(directory, "blobs/\(caseID)/\(sha256)") }

    public func uploadPath(_ caseID: String, _ sha256: String) -> String { Self.path(directory, "uploads/\(caseID)/\(sha256).part") }

    /// Runs blocking SQLite and file calls on NIO's thread pool, off the tasks that serve requests.
    private func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws(ArchiveStorageError) -> T {
        do {
            return try await NIOThreadPool.singleton.runIfActive(body)
        } catch let error as ArchiveStorageError {
            throw error
        } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
            throw .full("the archive's disk is full (\(Self.path(directory, "archive.sqlite"))): nothing was stored; free space, devices retry")
        } catch {
            throw .failure("archive storage: \(error)")
        }
    }

    private static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    public func pinnedKey(device: String) async throws(ArchiveStorageError) -> [UInt8]? {
        try await run { [database] in try database.read { db in try Data.fetchOne(db, sql: "SELECT public_key FROM devices WHERE name = ?", arguments: [device]).map { Array($0) } } }
    }

    public func pinKey(device: String, offered: [UInt8]) async throws(ArchiveStorageError) -> [UInt8] {
        try await run { [database] in
            try database.write { db in
                if let pinned = try Data.fetchOne(db, sql: "SELECT public_key FROM devices WHERE name = ?", arguments: [device]) {
                    return Array(pinned)
                }
                try db.execute(sql: "INSERT INTO devices (name, public_key, pinned_at) VALUES (?, ?, ?)",
                               arguments: [device, Data(offered), Self.now()])
                return offered
            }
        }
    }

    public func claimCase(_ caseID: String, device: String) async throws(ArchiveStorageError) -> String {
        try await run { [database] in
            try database.write { db in
                if let owner = try String.fetchOne(db, sql: "SELECT device FROM cases WHERE id = ?", arguments: [caseID]) { return owner }
                try db.execute(sql: "INSERT INTO cases (id, device, entry_count) VALUES (?, ?, 0)", arguments: [caseID, device])
                return device
            }
        }
    }

    public func owner(of caseID: String) async throws(ArchiveStorageError) -> String? {
        try await run { [database] in try database.read { db in try String.fetchOne(db, sql: "SELECT device FROM cases WHERE id = ?", arguments: [caseID]) } }
    }

    public func journal(_ caseID: String) async throws(ArchiveStorageError) -> (entries: [StoredJournalEntry], checkpoints: [JournalCheckpoint]) {
        try await run { [database] in try database.read { db in try JournalTables.journal(db, caseID: caseID) } }
    }

    public func appendJournal(_ caseID: String, after count: UInt64, entries: [StoredJournalEntry],
                              checkpoints: [JournalCheckpoint]) async throws(ArchiveStorageError) {
        try await run { [database] in
            try database.write { db in
                let stored = try Int64.fetchOne(db, sql: "SELECT entry_count FROM cases WHERE id = ?", arguments: [caseID]) ?? -1
                guard stored == Int64(count) else {
                    throw ArchiveStorageError.conflict("case \(caseID) changed while the upload was checked (it now holds \(stored) entries); upload again")
                }
                for entry in entries { try JournalTables.insert(db, caseID: caseID, entry) }
                for checkpoint in checkpoints { try JournalTables.insert(db, checkpoint) }
                try db.execute(sql: "UPDATE cases SET entry_count = ? WHERE id = ?", arguments: [Int64(count) + Int64(entries.count), caseID])
            }
        }
    }

    private static func blobRecord(_ row: Row) -> StoredBlob {
        StoredBlob(caseID: row["case_id"], sha256: row["sha256"], plaintextSize: UInt64(clamping: row["plaintext_size"] as Int64),
                   sealedSize: UInt64(clamping: row["sealed_size"] as Int64), sealedSHA256: row["sealed_sha256"])
    }

    public func blobs(of caseID: String) async throws(ArchiveStorageError) -> [String: StoredBlob] {
        try await run { [database] in
            try database.read { db in
                let rows = try Row.fetchAll(db, sql: "SELECT * FROM blobs WHERE case_id = ?", arguments: [caseID]).map(Self.blobRecord)
                return Dictionary(rows.map { ($0.sha256, $0) }, uniquingKeysWith: { first, _ in first })
            }
        }
    }

    public func blob(_ caseID: String, _ sha256: String) async throws(ArchiveStorageError) -> StoredBlob? {
        try await run { [database] in
            try database.read { db in
                try Row.fetchOne(db, sql: "SELECT * FROM blobs WHERE case_id = ? AND sha256 = ?", arguments: [caseID, sha256]).map(Self.blobRecord)
            }
        }
    }

    public func receivedBytes(_ caseID: String, _ sha256: String) async throws(ArchiveStorageError) -> UInt64 {
        let path = uploadPath(caseID, sha256)
        return try await run {
            var info = stat()
            return stat(path, &info) == 0 ? UInt64(info.st_size) : 0
        }
    }

    public func appendChunk(_ caseID: String, _ sha256: String, offset: UInt64, _ bytes: [UInt8]) async throws(ArchiveStorageError) -> UInt64 {
        let path = uploadPath(caseID, sha256)
        return try await run { [self] in try self.append(path, offset: offset, bytes) }
    }

    private func append(_ path: String, offset: UInt64, _ bytes: [UInt8]) throws(ArchiveStorageError) -> UInt64 {
        try uploads.withLock { _ throws(ArchiveStorageError) -> UInt64 in
            do throws(SystemError) {
                try SecureFiles.ensurePrivateDirectory((path as NSString).deletingLastPathComponent)
                let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw SystemError("open", path: path, errno: errno) }
                defer { Glibc.close(fd) }
                var info = stat()
                guard fstat(fd, &info) == 0 else { throw SystemError("stat", path: path, errno: errno) }
                let held = UInt64(info.st_size)
                guard held == offset else {
                    throw SystemError("append at \(offset) (the server holds \(held) bytes)", path: path, errno: ESPIPE)
                }
                let failure: Int32 = bytes.withUnsafeBytes { buffer in
                    var written = 0
                    while written < buffer.count {
                        let count = pwrite(fd, buffer.baseAddress.map { $0 + written }, buffer.count - written, off_t(offset) + off_t(written))
                        if count < 0 {
                            if errno == EINTR { continue }
                            return errno
                        }
                        written += count
                    }
                    return fsync(fd) == 0 ? 0 : errno
                }
                if failure != 0 {
                    // Drop a partly written chunk: what the status reports must be what was acknowledged.
                    _ = ftruncate(fd, off_t(held))
                    throw SystemError("write", path: path, errno: failure)
                }
                return held + UInt64(bytes.count)
            } catch {
                if error.errno == ESPIPE { throw .conflict("\(error.operation)") }
                if error.errno == ENOSPC || error.errno == EDQUOT {
                    throw .full("the archive's disk is full (\(error)): nothing of this chunk was kept; free space, devices retry")
                }
                throw .failure("cannot store the upload: \(error)")
            }
        }
    }

    public func readUpload(_ caseID: String, _ sha256: String, _ body: ([UInt8]) throws -> Void) async throws(ArchiveStorageError) {
        try read(uploadPath(caseID, sha256), missing: "no upload of blob \(sha256) in case \(caseID)", body)
    }

    public func readBlob(_ caseID: String, _ sha256: String, offset: UInt64, count: Int) async throws(ArchiveStorageError) -> [UInt8] {
        let path = blobPath(caseID, sha256)
        return try await run {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw ArchiveStorageError.conflict("case \(caseID) has no committed blob \(sha256)") }
            defer { try? handle.close() }
            guard offset <= (try handle.seekToEnd()) else {
                throw ArchiveStorageError.conflict("blob \(sha256) of case \(caseID) is shorter than offset \(offset)")
            }
            try handle.seek(toOffset: offset)
            return Array(try handle.read(upToCount: count) ?? Data())
        }
    }

    /// Reads in 1 MiB pieces on the caller's task: `body` is not Sendable, and a read (unlike
    /// an fsync) does not hold a thread for long.
    private func read(_ path: String, missing: String, _ body: ([UInt8]) throws -> Void) throws(ArchiveStorageError) {
        do {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw ArchiveStorageError.conflict(missing) }
            defer { try? handle.close() }
            while let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty {
                try body(Array(piece))
            }
        } catch let error as ArchiveStorageError {
            throw error
        } catch {
            throw .failure("cannot read \(path): \(error)")
        }
    }

    public func commitUpload(_ blob: StoredBlob) async throws(ArchiveStorageError) {
        let source = uploadPath(blob.caseID, blob.sha256)
        let destination = blobPath(blob.caseID, blob.sha256)
        try await run { [self] in try self.moveIntoPlace(blob, from: source, to: destination) }
        try await run { [database] in
            try database.write { db in
                try db.execute(sql: """
                    INSERT OR REPLACE INTO blobs (case_id, sha256, plaintext_size, sealed_size, sealed_sha256, committed_at) VALUES (?, ?, ?, ?, ?, ?)
                    """, arguments: [blob.caseID, blob.sha256, Int64(blob.plaintextSize), Int64(blob.sealedSize), blob.sealedSHA256, Self.now()])
            }
        }
    }

    private func moveIntoPlace(_ blob: StoredBlob, from source: String, to destination: String) throws(ArchiveStorageError) {
        try uploads.withLock { _ throws(ArchiveStorageError) in
            do throws(SystemError) {
                let caseDirectory = (destination as NSString).deletingLastPathComponent
                try SecureFiles.ensurePrivateDirectory(caseDirectory)
                try retryingOnInterrupt("rename", path: destination) { rename(source, destination) }
                try SecureFiles.syncDirectory(caseDirectory)
                try SecureFiles.syncDirectory((source as NSString).deletingLastPathComponent)
            } catch {
                throw .failure("cannot commit blob \(blob.sha256) of case \(blob.caseID): \(error)")
            }
        }
    }

    public func discardUpload(_ caseID: String, _ sha256: String) async throws(ArchiveStorageError) {
        let path = uploadPath(caseID, sha256)
        try await run { [self] in self.uploads.withLock { _ in _ = unlink(path) } }
    }
}
