import SightlineCore

/// A sealed blob the server holds for a case, as the device committed it.
public struct StoredBlob: Sendable, Equatable {
    public var caseID: String
    /// Hex SHA-256 of the plaintext: the blob's address in the journal.
    public var sha256: String
    public var plaintextSize: UInt64
    public var sealedSize: UInt64
    /// Hex SHA-256 of the sealed bytes, checked when the upload was committed.
    public var sealedSHA256: String

    public init(caseID: String, sha256: String, plaintextSize: UInt64, sealedSize: UInt64, sealedSHA256: String) {
        self.caseID = caseID
        self.sha256 = sha256
        self.plaintextSize = plaintextSize
        self.sealedSize = sealedSize
        self.sealedSHA256 = sealedSHA256
    }
}

/// Why the store could not do what was asked. `conflict` is a race or a precondition the caller
/// can retry after re-reading; `full` and `failure` are the store itself (disk, database).
public enum ArchiveStorageError: Error, Sendable, CustomStringConvertible {
    case conflict(String)
    /// The store's disk is full: nothing was stored, and the same request works once there is room.
    case full(String)
    case failure(String)

    public var description: String {
        switch self {
        case .conflict(let message), .full(let message), .failure(let message): message
        }
    }
}

/// What the archive server keeps, behind one protocol so an organisation-wide database
/// (`PostgresArchiveStorage`) can replace the embedded store (`SQLiteArchiveStorage`, SQLite and
/// files). It only stores and reads back: every check of what devices upload is in
/// `ArchiveReceiver`, the same for every store. Case ids and hashes reaching it have been
/// validated (`ArchiveSyncAPI.isValidCaseID`, `isValidSHA256`). Async because a database store
/// waits on the network; the embedded store runs its blocking calls on NIO's thread pool.
public protocol ArchiveStorage: Sendable {
    /// The device's pinned Ed25519 public key, nil before its first accepted upload.
    func pinnedKey(device: String) async throws(ArchiveStorageError) -> [UInt8]?
    /// The device's pinned Ed25519 public key; pins `offered` when the device has none yet.
    func pinKey(device: String, offered: [UInt8]) async throws(ArchiveStorageError) -> [UInt8]
    /// The device that owns the case; claims it for `device` when no device does.
    func claimCase(_ caseID: String, device: String) async throws(ArchiveStorageError) -> String
    /// The owner of the case, nil when it is unknown.
    func owner(of caseID: String) async throws(ArchiveStorageError) -> String?
    func journal(_ caseID: String) async throws(ArchiveStorageError) -> (entries: [StoredJournalEntry], checkpoints: [JournalCheckpoint])
    /// Adds verified entries and checkpoints in one durable transaction, only if the case still
    /// holds exactly `count` entries (else `conflict`).
    func appendJournal(_ caseID: String, after count: UInt64, entries: [StoredJournalEntry],
                       checkpoints: [JournalCheckpoint]) async throws(ArchiveStorageError)
    func blobs(of caseID: String) async throws(ArchiveStorageError) -> [String: StoredBlob]
    func blob(_ caseID: String, _ sha256: String) async throws(ArchiveStorageError) -> StoredBlob?
    /// Bytes of an uncommitted upload that are durable.
    func receivedBytes(_ caseID: String, _ sha256: String) async throws(ArchiveStorageError) -> UInt64
    /// Appends to an upload at exactly `offset` (else `conflict`) and makes it durable; returns
    /// the bytes now held.
    func appendChunk(_ caseID: String, _ sha256: String, offset: UInt64, _ bytes: [UInt8]) async throws(ArchiveStorageError) -> UInt64
    /// Streams an uncommitted upload's bytes.
    func readUpload(_ caseID: String, _ sha256: String, _ body: ([UInt8]) throws -> Void) async throws(ArchiveStorageError)
    /// Up to `count` of a committed blob's sealed bytes from `offset` (`conflict` when the case
    /// has no such blob or the offset lies past its end): what a device fetching back content it
    /// removed after sync, an export or an audit of the archive reads, a bounded piece at a time.
    func readBlob(_ caseID: String, _ sha256: String, offset: UInt64, count: Int) async throws(ArchiveStorageError) -> [UInt8]
    /// Makes a checked upload the case's blob, durably.
    func commitUpload(_ blob: StoredBlob) async throws(ArchiveStorageError)
    /// Drops an upload that failed its checks.
    func discardUpload(_ caseID: String, _ sha256: String) async throws(ArchiveStorageError)
    /// Lets go of connections once the server stopped serving.
    func close() async
}

extension ArchiveStorage {
    public func close() async {}

    /// Streams a committed blob's sealed bytes in 1 MiB pieces.
    public func readBlob(_ caseID: String, _ sha256: String, _ body: ([UInt8]) throws -> Void) async throws {
        guard let blob = try await blob(caseID, sha256) else { throw ArchiveStorageError.conflict("case \(caseID) has no committed blob \(sha256)") }
        var offset: UInt64 = 0
        while offset < blob.sealedSize {
            let piece = try await readBlob(caseID, sha256, offset: offset, count: 1 << 20)
            guard !piece.isEmpty else { throw ArchiveStorageError.failure("blob \(sha256) of case \(caseID) ends at \(offset) bytes, its record says \(blob.sealedSize)") }
            try body(piece)
            offset += UInt64(piece.count)
        }
    }
}
