import Crypto
import Foundation
import GRDB
import SightlineCore
import SightlineSystem

/// What the organisation's archive has confirmed, per case: how many journal entries, and
/// which sealed blobs (with the SHA-256 of the sealed bytes the server checked). Written only
/// after the server's answer, so a crash or a lost answer leaves an item pending and the next
/// pass asks the server again; never the other way round.
enum SyncLedger {
    static let schema = """
        CREATE TABLE sync_cases (case_id TEXT PRIMARY KEY NOT NULL, synced_entries INTEGER NOT NULL);
        CREATE TABLE sync_blobs (
            case_id TEXT NOT NULL, sha256 TEXT NOT NULL, sealed_sha256 TEXT NOT NULL, synced_at INTEGER NOT NULL,
            removed_at INTEGER, PRIMARY KEY (case_id, sha256));
        """

    /// Blobs whose local file was removed after a confirmed sync: address → sealed SHA-256.
    static func removedBlobs(_ db: Database, caseID: String) throws -> [String: String] {
        let rows = try Row.fetchAll(db, sql: "SELECT sha256, sealed_sha256 FROM sync_blobs WHERE case_id = ? AND removed_at IS NOT NULL",
                                    arguments: [caseID])
        return Dictionary(rows.map { ($0["sha256"] as String, $0["sealed_sha256"] as String) }, uniquingKeysWith: { first, _ in first })
    }

    /// How `verify` treats a blob removed after sync: its content is not on the device to hash
    /// (the organisation's archive keeps it), so the check is that the ledger names the sealed
    /// hash the server confirmed and that the file really is gone — or, when a fetch-back put
    /// it in place and stopped before clearing the mark, that the file is exactly what the
    /// server confirmed.
    static func checkRemoved(_ blob: BlobReference, sealedSHA256: String, path: String) -> String? {
        guard ArchiveSyncAPI.isValidSHA256(sealedSHA256) else { return "the sync ledger names no valid sealed hash for it" }
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return sealedHash(path) == sealedSHA256 ? nil : "it is marked removed after sync, but a different file is there"
    }

    static func sealedHash(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let piece = try? handle.read(upToCount: 1 << 20), !piece.isEmpty { hasher.update(data: piece) }
        return Array(hasher.finalize()).hexString
    }
}

extension EvidenceArchive {
    /// The journal and checkpoints as stored, for the sync client to upload unchanged.
    public func storedJournal(_ caseID: String) throws(ArchiveError) -> (entries: [StoredJournalEntry], checkpoints: [JournalCheckpoint]) {
        try journal(caseID)
    }

    /// The sealed file of a blob, as the device stores it (what sync uploads).
    public func sealedBlobPath(caseID: String, sha256 hex: String) -> String { blobPath(caseID: caseID, sha256: hex) }

    /// Entries of the case that the organisation's archive confirmed.
    public func syncedEntryCount(_ caseID: String) throws(ArchiveError) -> UInt64 {
        try catching(caseID) {
            try database.read { db in
                UInt64(clamping: try Int64.fetchOne(db, sql: "SELECT synced_entries FROM sync_cases WHERE case_id = ?", arguments: [caseID]) ?? 0)
            }
        }
    }

    /// Records that the server holds the first `count` entries; never lowers the count.
    public func markEntriesSynced(_ caseID: String, count: UInt64) throws(ArchiveError) {
        try catching(caseID) {
            try database.write { db in
                try db.execute(sql: """
                    INSERT INTO sync_cases (case_id, synced_entries) VALUES (?, ?)
                    ON CONFLICT (case_id) DO UPDATE SET synced_entries = max(synced_entries, excluded.synced_entries)
                    """, arguments: [caseID, Int64(count)])
            }
        }
    }

    /// Sealed blobs of the case the server confirmed: address → sealed SHA-256.
    public func syncedBlobs(_ caseID: String) throws(ArchiveError) -> [String: (sealedSHA256: String, removed: Bool)] {
        try catching(caseID) {
            try database.read { db in
                let rows = try Row.fetchAll(db, sql: "SELECT sha256, sealed_sha256, removed_at FROM sync_blobs WHERE case_id = ?", arguments: [caseID])
                return Dictionary(rows.map { ($0["sha256"] as String, (sealedSHA256: $0["sealed_sha256"] as String, removed: ($0["removed_at"] as Int64?) != nil)) },
                                  uniquingKeysWith: { first, _ in first })
            }
        }
    }

    public func markBlobSynced(_ caseID: String, sha256: String, sealedSHA256: String) throws(ArchiveError) {
        try catching(caseID) {
            try database.write { db in
                try db.execute(sql: "INSERT OR IGNORE INTO sync_blobs (case_id, sha256, sealed_sha256, synced_at) VALUES (?, ?, ?, ?)",
                               arguments: [caseID, sha256, sealedSHA256, clock()])
            }
        }
    }

    /// Deletes the local ciphertext of a blob the server confirmed (sync.delete_after_sync).
    /// The ledger row is marked first: a crash in between leaves a file that verify reports, never a
    /// missing blob that nothing accounts for.
    /// Returns whether this call removed it (false when it was removed before or never confirmed).
    @discardableResult
    public func removeSyncedBlob(_ caseID: String, sha256: String) throws(ArchiveError) -> Bool {
        let marked = try catching(caseID) {
            try database.write { db in
                try db.execute(sql: "UPDATE sync_blobs SET removed_at = ? WHERE case_id = ? AND sha256 = ? AND removed_at IS NULL",
                               arguments: [clock(), caseID, sha256])
                return db.changesCount > 0
            }
        }
        guard marked else { return false }
        unlink(blobPath(caseID: caseID, sha256: sha256))
        try? SecureFiles.syncDirectory(Self.path(directory, "blobs/\(caseID)"))
        return true
    }

    /// Starts putting back the sealed file of a blob removed after sync, fetched from the
    /// organisation's archive; nil when the blob is not marked removed.
    public func beginFetchBack(_ caseID: String, sha256: String) throws(ArchiveError) -> SealedBlobFetchBack? {
        let removed = try catching(caseID) { try database.read { db in try SyncLedger.removedBlobs(db, caseID: caseID) } }
        guard let sealed = removed[sha256] else { return nil }
        do {
            let writer = try DurableFileWriter(temporaryPath: Self.path(directory, "tmp/\(UUID().uuidString).part"))
            return SealedBlobFetchBack(archive: self, caseID: caseID, sha256: sha256, sealedSHA256: sealed, writer: writer)
        } catch {
            throw .storage(error)
        }
    }

    /// Clears a blob's removed mark once its file is back in place.
    func markFetchedBack(_ caseID: String, sha256: String) throws(ArchiveError) {
        try catching(caseID) {
            try database.write { db in
                try db.execute(sql: "UPDATE sync_blobs SET removed_at = NULL WHERE case_id = ? AND sha256 = ?", arguments: [caseID, sha256])
            }
        }
    }

    /// Synced and pending entries and blobs of one case.
    public func syncCounts(_ caseID: String) throws(ArchiveError) -> ArchiveSyncCounts {
        let projection = try projection(caseID)
        let synced = try syncedEntryCount(caseID)
        let blobs = try syncedBlobs(caseID)
        var addresses = Set<String>()
        for (_, item) in projection.items where !projection.contentRemoved(item.id) {
            if let blob = item.blob { addresses.insert(blob.hex) }
        }
        let syncedBlobs = addresses.filter { blobs[$0] != nil }
        return ArchiveSyncCounts(syncedEntries: min(synced, projection.entryCount), pendingEntries: projection.entryCount - min(synced, projection.entryCount),
                                 syncedBlobs: UInt64(syncedBlobs.count), pendingBlobs: UInt64(addresses.count - syncedBlobs.count),
                                 removedBlobs: UInt64(syncedBlobs.filter { blobs[$0]?.removed == true }.count))
    }

    /// The counts over every case.
    public func syncCounts() throws(ArchiveError) -> ArchiveSyncCounts {
        var total = ArchiveSyncCounts()
        for caseID in try caseIDs() { total = total + (try syncCounts(caseID)) }
        return total
    }
}

/// A blob's sealed bytes coming back from the organisation's archive, piece by piece, into a
/// temporary file that takes the blob's place only when its SHA-256 is the one the server
/// confirmed at sync: a wrong or truncated download never lands. The file goes in before the
/// removed mark is cleared; `verify` accepts the file in between because its hash matches.
/// Used by one task at a time.
public final class SealedBlobFetchBack: @unchecked Sendable {
    public let caseID: String
    public let sha256: String
    private let archive: EvidenceArchive
    private let sealedSHA256: String
    private let writer: DurableFileWriter
    private var hasher = SHA256()

    init(archive: EvidenceArchive, caseID: String, sha256: String, sealedSHA256: String, writer: DurableFileWriter) {
        self.archive = archive
        self.caseID = caseID
        self.sha256 = sha256
        self.sealedSHA256 = sealedSHA256
        self.writer = writer
    }

    public func write(_ bytes: [UInt8]) throws(ArchiveError) {
        hasher.update(data: bytes)
        do { try writer.write(bytes) } catch { throw .storage(error) }
    }

    public func commit() throws(ArchiveError) {
        let received = Array(hasher.finalize()).hexString
        guard received == sealedSHA256 else {
            writer.discard()
            throw .blob(caseID: caseID, sha256: sha256, reason: "the archive sent sealed bytes with SHA-256 \(received), "
                        + "but confirmed \(sealedSHA256) at sync; nothing was put back")
        }
        do { try writer.commit(to: archive.blobPath(caseID: caseID, sha256: sha256)) } catch { throw .storage(error) }
        try archive.markFetchedBack(caseID, sha256: sha256)
    }

    public func discard() { writer.discard() }
}
