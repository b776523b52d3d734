import Crypto
import Foundation
import GRDB
import SightlineCore
import SightlineSystem
import Synchronization

/// Substance of an evidence item: bytes already in memory (a photo), or a file streamed in
/// one chunk at a time (a recording of any size).
public enum EvidenceContent: Sendable {
    case bytes([UInt8])
    case file(path: String)
}

/// What the caller knows about a new item; the archive adds its id and blob address.
public struct EvidenceDraft: Sendable {
    public var kind: EvidenceKind
    public var capturedAt: EpochMilliseconds
    public var mediaType: String?
    public var text: String?
    public var corrects: String?
    public var call: CallSummary?
    public var authorID: String?
    /// Nil takes the policy's default class for the kind.
    public var retentionClass: String?

    public init(kind: EvidenceKind, capturedAt: EpochMilliseconds, mediaType: String? = nil, text: String? = nil, corrects: String? = nil,
                call: CallSummary? = nil, authorID: String? = nil, retentionClass: String? = nil) {
        self.kind = kind
        self.capturedAt = capturedAt
        self.mediaType = mediaType
        self.text = text
        self.corrects = corrects
        self.call = call
        self.authorID = authorID
        self.retentionClass = retentionClass
    }
}

/// One item removed by `purgeExpired`.
public struct PurgedItem: Sendable, Equatable {
    public var caseID: String
    public var tombstone: Tombstone
}

public enum ArchiveError: Error, CustomStringConvertible, Sendable {
    case unknownCase(String)
    case rejected(caseID: String, reason: String)
    case storage(SystemError)
    case blob(caseID: String, sha256: String, reason: String)
    case database(String)

    public var description: String {
        switch self {
        case .unknownCase(let id): "no case \(id) in the archive: list the cases with `sightctl case list`"
        case .rejected(let id, let reason): "case \(id) refused the change: \(reason)"
        case .storage(let error):
            error.errno == ENOSPC || error.errno == EDQUOT
                ? "the archive's disk is full (\(error)); nothing was filed. Free space and file the evidence again"
                : "archive storage: \(error)"
        case .blob(let id, let sha, let reason): "blob \(sha) of case \(id): \(reason). Run `sightctl case verify \(id)`"
        case .database(let message): "archive database: \(message)"
        }
    }
}

/// The device's evidence archive: case metadata and journals in SQLite (WAL, synchronous=FULL),
/// blobs encrypted per case under `blobs/CASE/SHA256`. Every change is one journal entry plus a
/// signed checkpoint plus its mirror rows in one transaction; a call returns only after that
/// transaction (and any blob before it) is on disk, so what it acknowledged survives SIGKILL and
/// power loss.
public final class EvidenceArchive: Sendable {
    public let directory: String
    let database: DatabaseQueue
    private let archiveKey: SymmetricKey
    private let signingKey: Curve25519.Signing.PrivateKey
    private let chunkSize: Int
    public let retention: RetentionPolicy
    /// Prints export reports to PDF; nil leaves report.pdf out with a note in the manifest.
    let reportRenderer: ReportRenderer?
    let clock: @Sendable () -> EpochMilliseconds
    /// Projections of cases seen so far; checked against the case row in every transaction.
    private let projections = Mutex<[String: CaseProjection]>([:])

    public static func systemClock() -> EpochMilliseconds { EpochMilliseconds((Date().timeIntervalSince1970 * 1000).rounded()) }

    public init(
        directory: String, archiveKey: SymmetricKey, signingKey: Curve25519.Signing.PrivateKey,
        chunkSize: Int = ChunkedBlobFormat.defaultChunkSize, retention: RetentionPolicy = .defaults,
        clock: @escaping @Sendable () -> EpochMilliseconds = EvidenceArchive.systemClock, reportRenderer: ReportRenderer? = nil
    ) throws(ArchiveError) {
        self.directory = directory
        self.reportRenderer = reportRenderer
        self.retention = retention
        self.archiveKey = archiveKey
        self.signingKey = signingKey
        self.chunkSize = chunkSize
        self.clock = clock
        let databasePath = (directory as NSString).appendingPathComponent("archive.sqlite")
        do throws(SystemError) {
            for path in [directory, Self.path(directory, "blobs"), Self.path(directory, "tmp")] {
                try SecureFiles.ensurePrivateDirectory(path)
            }
            // Half-written blobs and report scratch directories of a process that died mid-write:
            // never referenced, never visible.
            for leftover in (try? FileManager.default.contentsOfDirectory(atPath: Self.path(directory, "tmp"))) ?? [] {
                try? FileManager.default.removeItem(atPath: Self.path(directory, "tmp/\(leftover)"))
            }
            // SQLite gives -wal and -shm the main file's mode: create it 0600 first.
            let fd = open(databasePath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw SystemError("create", path: databasePath, errno: errno) }
            closeDescriptor(fd)
        } catch {
            throw .storage(error)
        }
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // FULL in WAL mode fsyncs the log on every commit: a commit that returned is durable.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            database = try DatabaseQueue(path: databasePath, configuration: configuration)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { db in try db.execute(sql: ArchiveRows.schema) }
            migrator.registerMigration("v2-retention") { db in try db.execute(sql: ArchiveRows.retentionSchema) }
            migrator.registerMigration("v3-privacy") { db in try db.execute(sql: ArchiveRows.privacySchema) }
            migrator.registerMigration("v4-sync") { db in try db.execute(sql: SyncLedger.schema) }
            try migrator.migrate(database)
        } catch {
            throw .database("\(databasePath): \(error)")
        }
    }

    static func path(_ directory: String, _ relative: String) -> String { (directory as NSString).appendingPathComponent(relative) }

    func blobPath(caseID: String, sha256 hex: String) -> String { Self.path(directory, "blobs/\(caseID)/\(hex)") }

    public var devicePublicKey: Curve25519.Signing.PublicKey { signingKey.publicKey }

    /// The export's detached signature: Ed25519 over the exact bytes of manifest.json.
    func signManifest(_ bytes: [UInt8]) throws -> Data { try signingKey.signature(for: bytes) }

    // MARK: Writing

    /// Opens a new case and returns its id.
    public func openCase(_ details: CaseDetails, participants: [Participant] = []) throws(ArchiveError) -> String {
        let caseID = UUID().uuidString.lowercased()
        let dataKey = SymmetricKey(size: .bits256)
        let first = JournalEntry(caseID: caseID, sequence: 0, previousHash: JournalEntry.genesisHash, recordedAt: clock(), event: .opened(details))
        do {
            try SecureFiles.ensurePrivateDirectory(Self.path(directory, "blobs/\(caseID)"))
            try SecureFiles.syncDirectory(Self.path(directory, "blobs"))
        } catch {
            throw .storage(error)
        }
        let projection = try catching(caseID) {
            let wrapped = try CaseKeyWrapping.wrap(dataKey: dataKey, archiveKey: archiveKey, caseID: caseID)
            var projection = try CaseProjection(first: first)
            try database.write { db in
                try ArchiveRows.upsert(db, table: "cases", ArchiveRows.caseRow(projection, wrappedKey: wrapped))
                try insert(db, first, hash: projection.headHash)
                for participant in participants {
                    let entry = try projection.nextEntry(.participantAdded(participant), at: first.recordedAt)
                    try projection.apply(entry)
                    try record(db, entry, projection: projection)
                }
            }
            return projection
        }
        projections.withLock { $0[caseID] = projection }
        return caseID
    }

    public func close(_ caseID: String, reason: String? = nil) throws(ArchiveError) {
        try append(caseID) { _ in .closed(reason: reason) }
    }

    public func reopen(_ caseID: String, reason: String? = nil) throws(ArchiveError) {
        try append(caseID) { _ in .reopened(reason: reason) }
    }

    public func addParticipant(_ participant: Participant, to caseID: String) throws(ArchiveError) {
        try append(caseID) { _ in .participantAdded(participant) }
    }

    public func recordConsent(_ consent: ConsentRecord, in caseID: String) throws(ArchiveError) {
        try append(caseID) { _ in .consentRecorded(consent) }
    }

    /// Files one item. Its blob is written and made durable first, then the journal entry; the
    /// item returned is acknowledged: it is on disk and will verify.
    @discardableResult
    public func file(_ draft: EvidenceDraft, content: EvidenceContent? = nil, into caseID: String) throws(ArchiveError) -> EvidenceItem {
        let retentionClass = draft.retentionClass ?? retention.defaultClass[draft.kind]
        guard let retentionClass, retention.retentionClass(named: retentionClass) != nil else {
            throw .rejected(caseID: caseID, reason: "no retention class \(draft.retentionClass ?? draft.kind.rawValue) is configured; "
                                + "known: \(retention.classes.map(\.name).joined(separator: ", "))")
        }
        let dataKey = try dataKey(for: caseID)
        let blob = try content.map { (content) throws(ArchiveError) -> BlobReference in try storeBlob(content, caseID: caseID, key: dataKey) }
        let item = EvidenceItem(id: UUID().uuidString.lowercased(), kind: draft.kind, capturedAt: draft.capturedAt, mediaType: draft.mediaType,
                                blob: blob, text: draft.text, corrects: draft.corrects, call: draft.call, authorID: draft.authorID,
                                retentionClass: retentionClass)
        try append(caseID) { _ in .evidenceAdded(item) }
        return item
    }

    /// Where new evidence goes: the most recently opened case that takes evidence, else the
    /// unassigned case.
    public func activeCaseID() throws(ArchiveError) -> String {
        if let open = try openCaseID() { return open }
        return try unassignedCaseID()
    }

    /// The most recently opened case that takes evidence, leaving out the unassigned case; nil
    /// when there is none. Unlike `activeCaseID` it never creates a case.
    public func openCaseID() throws(ArchiveError) -> String? {
        try catching("active") {
            try database.read { db in
                try String.fetchOne(db, sql: """
                    SELECT id FROM cases WHERE unassigned = 0 AND state != 'closed' ORDER BY opened_at DESC, rowid DESC LIMIT 1
                    """)
            }
        }
    }

    /// The open automatic case that takes evidence while no case is open, created on demand.
    public func unassignedCaseID() throws(ArchiveError) -> String {
        let existing = try catching("unassigned") {
            try database.read { db in
                try String.fetchOne(db, sql: "SELECT id FROM cases WHERE unassigned = 1 AND state != 'closed' ORDER BY opened_at LIMIT 1")
            }
        }
        if let existing { return existing }
        return try openCase(CaseDetails(reference: "unassigned", title: "Evidence filed while no case was open", unassigned: true))
    }

    /// Moves an item to another case: the target files a copy (blob re-encrypted under its own
    /// key) that points back at the original entry; the source journals the move. Neither
    /// journal loses anything.
    public func refile(itemID: String, from source: String, to target: String) throws(ArchiveError) {
        let origin = try projection(source)
        guard let item = origin.item(itemID), let sequence = origin.items.first(where: { $0.item.id == itemID })?.sequence else {
            throw .rejected(caseID: source, reason: "item \(itemID) is not in this case")
        }
        guard origin.refiled[itemID] == nil else { throw .rejected(caseID: source, reason: "item \(itemID) was already re-filed") }
        let originHash = try catching(source) {
            try database.read { db in
                try Data.fetchOne(db, sql: "SELECT hash FROM journal_entries WHERE case_id = ? AND sequence = ?",
                                  arguments: [source, Int64(sequence)]).map { Array($0) }
            }
        }
        guard let originHash else { throw .rejected(caseID: source, reason: "entry \(sequence) is missing: run `sightctl case verify \(source)`") }
        var copy = item
        copy.refiledFrom = RefileOrigin(caseID: source, entryHash: originHash)
        if let blob = item.blob {
            let sourceKey = try dataKey(for: source)
            let targetKey = try dataKey(for: target)
            let stored = try reseal(blob, from: source, key: sourceKey, into: target, key: targetKey)
            guard stored == blob else { throw .blob(caseID: source, sha256: blob.hex, reason: "its content no longer matches its address") }
        }
        try append(target) { _ in .evidenceAdded(copy) }
        try append(source) { _ in .evidenceRefiled(itemID: itemID, toCase: target) }
    }

    /// Puts the case on legal hold: nothing in it is purged until the hold is released.
    public func setLegalHold(_ caseID: String, reason: String) throws(ArchiveError) {
        try append(caseID) { _ in .legalHoldSet(reason: reason) }
    }

    public func releaseLegalHold(_ caseID: String, reason: String? = nil) throws(ArchiveError) {
        try append(caseID) { _ in .legalHoldReleased(reason: reason) }
    }

    /// Deletes the content of every item whose retention period has ended, in cases not on
    /// legal hold, leaving a tombstone entry each (what, when, why, hash). The tombstone is
    /// committed before the blob is deleted: a crash in between leaves an unreferenced blob,
    /// never a missing one that the journal still vouches for.
    @discardableResult
    public func purgeExpired() throws(ArchiveError) -> [PurgedItem] {
        var purged: [PurgedItem] = []
        for caseID in try caseIDs() {
            let projection = try projection(caseID)
            guard projection.legalHold == nil else { continue }
            for (_, item) in projection.items where !projection.contentRemoved(item.id) {
                guard let name = item.retentionClass, let retentionClass = retention.retentionClass(named: name),
                      let filedAt = projection.filedAt[item.id]
                else { continue }
                let expiry = retentionClass.expiry(filedAt: filedAt)
                guard expiry <= clock() else { continue }
                let tombstone = Tombstone(itemID: item.id, blobSHA256: item.blob?.sha256, retentionClass: name, expiredAt: expiry,
                                          reason: "retention period ended: \(retentionClass.summary)")
                try append(caseID) { _ in .evidencePurged(tombstone) }
                purged.append(PurgedItem(caseID: caseID, tombstone: tombstone))
                if let blob = item.blob { try deleteBlobIfUnused(blob, caseID: caseID) }
            }
        }
        return purged
    }

    /// Deletes a blob whose item was just purged or erased, unless another item of the case
    /// that still has its content uses the same bytes. Called only after the tombstone is durable.
    func deleteBlobIfUnused(_ blob: BlobReference, caseID: String) throws(ArchiveError) {
        let after = try projection(caseID)
        let stillNeeded = after.items.contains { $0.item.blob?.sha256 == blob.sha256 && !after.contentRemoved($0.item.id) }
        if !stillNeeded {
            unlink(blobPath(caseID: caseID, sha256: blob.hex))
            try? SecureFiles.syncDirectory(Self.path(directory, "blobs/\(caseID)"))
        }
    }

    /// One journal entry for `event` in the case, in its own durable transaction; for the
    /// privacy requests in other files.
    func appendEvent(_ caseID: String, _ event: CaseEvent) throws(ArchiveError) {
        try append(caseID) { _ in event }
    }

    /// One journal entry, its checkpoint and its rows, in one durable transaction.
    private func append(_ caseID: String, _ event: (CaseProjection) throws -> CaseEvent) throws(ArchiveError) {
        let updated = try catching(caseID) {
            try database.write { db in
                var projection = try currentProjection(db, caseID)
                let entry = try projection.nextEntry(try event(projection), at: clock())
                try projection.apply(entry)
                try record(db, entry, projection: projection)
                return projection
            }
        }
        projections.withLock { $0[caseID] = updated }
    }

    private func record(_ db: Database, _ entry: JournalEntry, projection: CaseProjection) throws {
        try insert(db, entry, hash: projection.headHash)
        try db.execute(sql: "UPDATE cases SET state = ?, entry_count = ?, head_hash = ?, legal_hold = ? WHERE id = ?",
                       arguments: [projection.state.rawValue, Int64(projection.entryCount), Data(projection.headHash), projection.legalHold,
                                   projection.caseID])
        switch entry.event {
        case .participantAdded:
            if let row = ArchiveRows.participantRows(projection).last { try ArchiveRows.upsert(db, table: "participants", row) }
        case .consentRecorded:
            if let row = ArchiveRows.consentRows(projection).last { try ArchiveRows.upsert(db, table: "consents", row) }
        case .evidenceAdded(let item):
            try upsertItem(db, projection, id: item.id)
        case .evidenceRefiled(let itemID, _):
            try upsertItem(db, projection, id: itemID)
        case .evidencePurged(let tombstone):
            try upsertItem(db, projection, id: tombstone.itemID)
        case .evidenceErased(let erasure):
            try upsertItem(db, projection, id: erasure.itemID)
        case .evidenceRestricted(let restriction):
            try upsertItem(db, projection, id: restriction.itemID)
        case .opened, .closed, .reopened, .legalHoldSet, .legalHoldReleased:
            break
        }
    }

    private func upsertItem(_ db: Database, _ projection: CaseProjection, id: String) throws {
        let key = id.databaseValue
        if let row = ArchiveRows.itemRows(projection).first(where: { $0.contains { $0.column == "id" && $0.value == key } }) {
            try ArchiveRows.upsert(db, table: "items", row)
        }
    }

    private func insert(_ db: Database, _ entry: JournalEntry, hash: [UInt8]) throws {
        try JournalTables.insert(db, caseID: entry.caseID, StoredJournalEntry(sequence: entry.sequence, hash: hash, canonical: entry.canonicalBytes))
        try JournalTables.insert(db, try JournalCheckpoint(signing: entry, hash: hash, at: entry.recordedAt, key: signingKey))
    }

    /// The cached projection if the case row still agrees with it, else one rebuilt from the journal.
    private func currentProjection(_ db: Database, _ caseID: String) throws -> CaseProjection {
        guard let row = try Row.fetchOne(db, sql: "SELECT entry_count, head_hash FROM cases WHERE id = ?", arguments: [caseID]) else {
            throw ArchiveError.unknownCase(caseID)
        }
        let count: Int64 = row["entry_count"]
        let head: Data = row["head_hash"]
        if let cached = projections.withLock({ $0[caseID] }), cached.entryCount == UInt64(count), cached.headHash == Array(head) {
            return cached
        }
        let entries = try Row.fetchAll(db, sql: "SELECT canonical FROM journal_entries WHERE case_id = ? ORDER BY sequence", arguments: [caseID])
        var projection: CaseProjection?
        for row in entries {
            let entry = try JournalEntry(canonical: Array(row["canonical"] as Data))
            if var current = projection {
                try current.apply(entry)
                projection = current
            } else {
                projection = try CaseProjection(first: entry)
            }
        }
        guard let projection, projection.entryCount == UInt64(count), projection.headHash == Array(head) else {
            throw ArchiveError.rejected(caseID: caseID, reason: "its journal does not match its case row: run `sightctl case verify \(caseID)`")
        }
        return projection
    }

    /// Maps whatever a database or crypto call threw to an operator-facing error.
    func catching<T>(_ caseID: String, _ body: () throws -> T) throws(ArchiveError) -> T {
        do {
            return try body()
        } catch let error as ArchiveError {
            throw error
        } catch let rejection as CaseProjection.Rejection {
            throw .rejected(caseID: caseID, reason: rejection.reason)
        } catch let error as SystemError {
            throw .storage(error)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
            throw .storage(SystemError("commit", path: Self.path(directory, "archive.sqlite"), errno: ENOSPC))
        } catch {
            throw .database("\(error)")
        }
    }

    // MARK: Blobs

    func dataKey(for caseID: String) throws(ArchiveError) -> SymmetricKey {
        let wrapped = try catching(caseID) {
            try database.read { db in try Data.fetchOne(db, sql: "SELECT wrapped_key FROM cases WHERE id = ?", arguments: [caseID]) }
        }
        guard let wrapped else { throw .unknownCase(caseID) }
        do {
            return try CaseKeyWrapping.unwrap(Array(wrapped), archiveKey: archiveKey, caseID: caseID)
        } catch {
            throw .rejected(caseID: caseID, reason: error.reason)
        }
    }

    /// Seals `content` into a temporary file while hashing it, then renames it to its address.
    private func storeBlob(_ content: EvidenceContent, caseID: String, key: SymmetricKey) throws(ArchiveError) -> BlobReference {
        try writeBlob(caseID: caseID, key: key) { feed in
            switch content {
            case .bytes(let bytes):
                try feed(bytes)
            case .file(let path):
                guard let handle = FileHandle(forReadingAtPath: path) else { throw SystemError("open", path: path, errno: errno) }
                defer { try? handle.close() }
                while let chunk = try handle.read(upToCount: chunkSize), !chunk.isEmpty {
                    try feed(Array(chunk))
                }
            }
        }
    }

    private func reseal(_ blob: BlobReference, from source: String, key sourceKey: SymmetricKey, into target: String,
                        key targetKey: SymmetricKey) throws(ArchiveError) -> BlobReference {
        try writeBlob(caseID: target, key: targetKey) { feed in
            try openBlob(caseID: source, blob, key: sourceKey, plaintext: feed)
        }
    }

    private func writeBlob(caseID: String, key: SymmetricKey, produce: (([UInt8]) throws -> Void) throws -> Void) throws(ArchiveError) -> BlobReference {
        do {
            let writer = try DurableFileWriter(temporaryPath: Self.path(directory, "tmp/\(UUID().uuidString).part"))
            var sealer = ChunkedBlobSealer(key: key, chunkSize: chunkSize)
            do {
                try writer.write(sealer.header)
                try produce { bytes in try sealer.append(bytes, emit: writer.write) }
                let reference = try sealer.finish(emit: writer.write)
                let destination = blobPath(caseID: caseID, sha256: reference.hex)
                if FileManager.default.fileExists(atPath: destination) {
                    writer.discard()  // same content already filed in this case
                } else {
                    try writer.commit(to: destination)
                }
                return reference
            } catch {
                writer.discard()
                throw error
            }
        } catch let error as SystemError {
            throw .storage(error)
        } catch let error as ArchiveError {
            throw error
        } catch {
            throw .blob(caseID: caseID, sha256: "(new)", reason: "\(error)")
        }
    }

    /// Streams a blob's plaintext, one chunk at a time, checking every chunk's tag.
    func openBlob(caseID: String, _ blob: BlobReference, key: SymmetricKey, plaintext: ([UInt8]) throws -> Void) throws {
        let reader = try BlobReader(path: blobPath(caseID: caseID, sha256: blob.hex), key: key)
        while let chunk = try reader.next() { try plaintext(chunk) }
    }

    /// Streams an item's decrypted content to `consumer`.
    public func readBlob(of caseID: String, _ blob: BlobReference, into consumer: ([UInt8]) throws -> Void) throws(ArchiveError) {
        let key = try dataKey(for: caseID)
        do {
            try openBlob(caseID: caseID, blob, key: key, plaintext: consumer)
        } catch {
            throw .blob(caseID: caseID, sha256: blob.hex, reason: "\(error)")
        }
    }

    // MARK: Reading

    public func caseIDs() throws(ArchiveError) -> [String] {
        try catching("*") { try database.read { db in try String.fetchAll(db, sql: "SELECT id FROM cases ORDER BY opened_at, id") } }
    }

    /// The case as its journal tells it (not verified: use `verify` for that).
    public func projection(_ caseID: String) throws(ArchiveError) -> CaseProjection {
        try catching(caseID) { try database.read { db in try currentProjection(db, caseID) } }
    }

    /// The journal and checkpoints as stored, for export.
    func journal(_ caseID: String) throws(ArchiveError) -> (entries: [StoredJournalEntry], checkpoints: [JournalCheckpoint]) {
        try catching(caseID) { try database.read { db in try JournalTables.journal(db, caseID: caseID) } }
    }

    /// Direct database access for tests that tamper with rows.
    func withDatabase<T>(_ body: (Database) throws -> T) throws -> T { try database.write(body) }

    // MARK: Verification

    /// Recomputes one case from its journal, checks every checkpoint signature against this
    /// device's key, decrypts and hashes every blob, and compares every row with the journal.
    public func verify(_ caseID: String) -> Result<CaseProjection, BrokenLink> {
        func broken(_ reason: String, _ sequence: UInt64? = nil) -> Result<CaseProjection, BrokenLink> {
            .failure(BrokenLink(caseID: caseID, sequence: sequence, reason: reason))
        }
        let caseRow: Row?
        let stored: (entries: [StoredJournalEntry], checkpoints: [JournalCheckpoint])
        let rows: (participants: [Row], consents: [Row], items: [Row])
        do {
            caseRow = try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM cases WHERE id = ?", arguments: [caseID]) }
            stored = try journal(caseID)
            rows = try database.read { db in
                (try Row.fetchAll(db, sql: "SELECT * FROM participants WHERE case_id = ? ORDER BY position", arguments: [caseID]),
                 try Row.fetchAll(db, sql: "SELECT * FROM consents WHERE case_id = ? ORDER BY position", arguments: [caseID]),
                 try Row.fetchAll(db, sql: "SELECT * FROM items WHERE case_id = ? ORDER BY sequence", arguments: [caseID]))
            }
        } catch {
            return broken("cannot be read: \(error)")
        }
        guard let caseRow else { return broken("the journal exists but the case row is missing") }
        guard let wrapped = caseRow["wrapped_key"] as Data? else { return broken("the case row has no data key") }
        let key: SymmetricKey
        do {
            key = try CaseKeyWrapping.unwrap(Array(wrapped), archiveKey: archiveKey, caseID: caseID)
        } catch {
            return broken(error.reason)
        }
        let removedAfterSync: [String: String]
        do {
            removedAfterSync = try database.read { db in try SyncLedger.removedBlobs(db, caseID: caseID) }
        } catch {
            return broken("cannot be read: \(error)")
        }
        let result = JournalVerifier.verify(caseID: caseID, entries: stored.entries, checkpoints: stored.checkpoints,
                                            trustedKey: signingKey.publicKey) { blob in
            if let sealed = removedAfterSync[blob.hex] {
                return SyncLedger.checkRemoved(blob, sealedSHA256: sealed, path: blobPath(caseID: caseID, sha256: blob.hex))
            }
            var hasher = SHA256()
            var size: UInt64 = 0
            do {
                try openBlob(caseID: caseID, blob, key: key) { chunk in
                    hasher.update(data: chunk)
                    size += UInt64(chunk.count)
                }
            } catch {
                return "\(error)"
            }
            return size == blob.size && Array(hasher.finalize()) == blob.sha256 ? nil : "its content does not match its address"
        }
        guard case .success(let projection) = result else { return result }
        if let difference = ArchiveRows.difference(table: "cases", key: "id", stored: [caseRow],
                                                   expected: [ArchiveRows.caseRow(projection, wrappedKey: Array(wrapped))])
            ?? ArchiveRows.difference(table: "participants", key: "id", stored: rows.participants, expected: ArchiveRows.participantRows(projection))
            ?? ArchiveRows.difference(table: "consents", key: "position", stored: rows.consents, expected: ArchiveRows.consentRows(projection))
            ?? ArchiveRows.difference(table: "items", key: "id", stored: rows.items, expected: ArchiveRows.itemRows(projection)) {
            return broken(difference)
        }
        return result
    }

    /// Every case the database knows of by any table, so that deleting a case row alone is caught.
    public func verifyAll() throws(ArchiveError) -> [Result<CaseProjection, BrokenLink>] {
        let ids = try catching("*") {
            try database.read { db in
                try String.fetchAll(db, sql: """
                    SELECT id FROM cases UNION SELECT case_id FROM journal_entries UNION SELECT case_id FROM checkpoints
                    UNION SELECT case_id FROM items UNION SELECT case_id FROM participants UNION SELECT case_id FROM consents
                    """)
            }
        }
        return ids.map { verify($0) }
    }
}

/// Pulls one blob's plaintext from its file a chunk at a time; the one owner of the file handle.
final class BlobReader {
    private let handle: FileHandle
    private let path: String
    private var opener: ChunkedBlobOpener

    init(path: String, key: SymmetricKey) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ChunkedBlobFormat.Failure("the file \(path) is missing or unreadable")
        }
        self.handle = handle
        self.path = path
        do {
            let size = try handle.seekToEnd()
            try handle.seek(toOffset: 0)
            opener = try ChunkedBlobOpener(key: key, header: try Self.read(handle, ChunkedBlobFormat.headerSize), sealedSize: size)
        } catch {
            try? handle.close()
            throw error
        }
    }

    /// The next chunk's plaintext, nil after the final chunk.
    func next() throws -> [UInt8]? {
        guard let length = opener.nextSealedLength else { return nil }
        return try opener.open(try Self.read(handle, length))
    }

    private static func read(_ handle: FileHandle, _ count: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        while bytes.count < count {
            guard let more = try handle.read(upToCount: count - bytes.count), !more.isEmpty else {
                throw ChunkedBlobFormat.Failure("the file ended early")
            }
            bytes += more
        }
        return bytes
    }

    deinit { try? handle.close() }
}

/// close(2), out of reach of `EvidenceArchive.close(_:reason:)`'s name.
func closeDescriptor(_ fd: Int32) {
    close(fd)
}
