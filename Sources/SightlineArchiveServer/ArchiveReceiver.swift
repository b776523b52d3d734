import Crypto
import Foundation
import SightlineCore

/// Why an upload was refused: the HTTP status and a sentence for the device's log that says
/// what was wrong and what to do. A refused upload stores nothing.
public struct SyncRefusal: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// 400: malformed request.
        case malformed
        /// 403: the case or key belongs to another device.
        case forbidden
        /// 404: the server holds no such thing.
        case missing
        /// 409: out of order or a fork; the body says what the server holds.
        case conflict
        /// 422: the content does not verify (hash, chain, signature, blob).
        case tampered
        /// 507: the server's disk is full; the device retries later.
        case full
        /// 500: the server's own storage failed; the device retries later.
        case storage
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// Checks everything a device uploads before the store keeps any of it: blob chunks against
/// their digests and the whole upload against the sealed hash and the blob format, journal
/// entries against the chain the server already holds, checkpoint signatures against the key
/// pinned for the device, and every blob an entry names against what was committed. It never
/// sees plaintext: the server has no archive key, so a blob's plaintext hash is checked by the
/// device's own verify and by whoever exports the case with the key.
public struct ArchiveReceiver: Sendable {
    public let storage: any ArchiveStorage

    public init(storage: any ArchiveStorage) {
        self.storage = storage
    }

    private func stored<T>(_ body: () async throws(ArchiveStorageError) -> T) async throws(SyncRefusal) -> T {
        do {
            return try await body()
        } catch .conflict(let message) {
            throw SyncRefusal(.conflict, message)
        } catch .full(let message) {
            throw SyncRefusal(.full, message)
        } catch {
            throw SyncRefusal(.storage, error.description)
        }
    }

    /// The case for `device`, claimed on first contact; another device's case is refused.
    private func ownCase(_ caseID: String, device: String) async throws(SyncRefusal) {
        let owner = try await stored { () async throws(ArchiveStorageError) in try await storage.claimCase(caseID, device: device) }
        guard owner == device else {
            throw SyncRefusal(.forbidden, "case \(caseID) belongs to another device; every device syncs only the cases it opened")
        }
    }

    private func readableCase(_ caseID: String, device: String) async throws(SyncRefusal) -> Bool {
        let owner = try await stored { () async throws(ArchiveStorageError) in try await storage.owner(of: caseID) }
        if let owner, owner != device { throw SyncRefusal(.forbidden, "case \(caseID) belongs to another device") }
        return owner != nil
    }

    // MARK: Journal

    public func journalStatus(_ caseID: String, device: String) async throws(SyncRefusal) -> SyncJournalStatus {
        guard try await readableCase(caseID, device: device) else { return SyncJournalStatus(entries: 0, headHash: nil) }
        let journal = try await stored { () async throws(ArchiveStorageError) in try await storage.journal(caseID) }
        return SyncJournalStatus(entries: UInt64(journal.entries.count), headHash: journal.entries.last?.hash.hexString)
    }

    /// Appends the uploaded entries after verifying the whole chain with them. Entries the
    /// server already holds are accepted again only when identical (a retry after a lost
    /// answer); a different entry at a held sequence is a fork and refused.
    public func receiveJournal(_ caseID: String, device: String, upload: SyncJournalUpload) async throws(SyncRefusal) -> SyncJournalStatus {
        var entries: [StoredJournalEntry] = []
        for json in upload.entries {
            guard let entry = json.stored else { throw SyncRefusal(.malformed, "entry \(json.sequence): hash or canonical bytes are not hex/base64") }
            entries.append(entry)
        }
        var checkpoints: [JournalCheckpoint] = []
        for json in upload.checkpoints {
            guard let checkpoint = json.checkpoint else { throw SyncRefusal(.malformed, "checkpoint \(json.sequence): a field is not hex/base64") }
            checkpoints.append(checkpoint)
        }
        guard let offered = checkpoints.first?.publicKey else {
            throw SyncRefusal(.malformed, "the upload has no signed checkpoint; send the checkpoints of the entries with them")
        }
        // Nothing is claimed or pinned until the upload verified: a refused upload leaves no trace.
        _ = try await readableCase(caseID, device: device)
        let pinned = try await stored { () async throws(ArchiveStorageError) in try await storage.pinnedKey(device: device) } ?? offered
        guard let trustedKey = try? Curve25519.Signing.PublicKey(rawRepresentation: pinned) else {
            throw SyncRefusal(.malformed, "the device key is not an Ed25519 public key")
        }
        if let other = checkpoints.first(where: { $0.publicKey != pinned }) {
            throw SyncRefusal(.forbidden, "checkpoint \(other.sequence) is signed by key \(Self.fingerprint(other.publicKey)), but device \(device) "
                                + "is pinned to \(Self.fingerprint(pinned)); a device with a new identity needs a new token")
        }
        let held = try await stored { () async throws(ArchiveStorageError) in try await storage.journal(caseID) }
        let count = UInt64(held.entries.count)
        var fresh: [StoredJournalEntry] = []
        for (offset, entry) in entries.enumerated() {
            let expected = (entries.first?.sequence ?? 0) + UInt64(offset)
            guard entry.sequence == expected else { throw SyncRefusal(.malformed, "entries must be consecutive: found \(entry.sequence) where \(expected) belongs") }
            if entry.sequence < count {
                guard held.entries[Int(entry.sequence)].hash == entry.hash, held.entries[Int(entry.sequence)].canonical == entry.canonical else {
                    throw SyncRefusal(.conflict, "the chain forks at entry \(entry.sequence) of case \(caseID): the server holds a different entry there; "
                                        + "the device's journal was rewritten or this is another device's case — run `sightctl case verify \(caseID)` on the device")
                }
            } else if entry.sequence == count + UInt64(fresh.count) {
                fresh.append(entry)
            } else {
                throw SyncRefusal(.conflict, "entry \(entry.sequence) does not follow the server's \(count) entries of case \(caseID); send from entry \(count)")
            }
        }
        guard !fresh.isEmpty else { return SyncJournalStatus(entries: count, headHash: held.entries.last?.hash.hexString) }
        var signed = Set<UInt64>()
        let newCheckpoints = checkpoints.filter { $0.sequence >= count && signed.insert($0.sequence).inserted }
        let blobs = try await stored { () async throws(ArchiveStorageError) in try await storage.blobs(of: caseID) }
        let all = held.entries + fresh
        let result = JournalVerifier.verify(caseID: caseID, entries: all, checkpoints: held.checkpoints + newCheckpoints, trustedKey: trustedKey) { blob in
            guard let record = blobs[blob.hex] else { return "the server has no committed upload of it; upload the blob before the entry" }
            guard record.plaintextSize == blob.size else { return "it was committed with \(record.plaintextSize) bytes, the entry says \(blob.size)" }
            return nil
        }
        if case .failure(let link) = result {
            throw SyncRefusal(.tampered, "refused, nothing stored: \(link)")
        }
        // The key of the first upload that verified is the device's from now on (pinned on first contact).
        guard try await stored({ () async throws(ArchiveStorageError) in try await storage.pinKey(device: device, offered: pinned) }) == pinned else {
            throw SyncRefusal(.conflict, "device \(device) was pinned to another key meanwhile; upload again")
        }
        try await ownCase(caseID, device: device)
        try await stored { () async throws(ArchiveStorageError) in try await storage.appendJournal(caseID, after: count, entries: fresh, checkpoints: newCheckpoints) }
        return SyncJournalStatus(entries: UInt64(all.count), headHash: all.last?.hash.hexString)
    }

    /// `SHA256:` and unpadded base64, as `sightctl identity` shows a device key.
    static func fingerprint(_ key: [UInt8]) -> String {
        "SHA256:" + Data(SHA256.hash(data: key)).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }

    // MARK: Blobs

    public func blobStatus(_ caseID: String, _ sha256: String, device: String) async throws(SyncRefusal) -> SyncBlobStatus {
        // Uploads in progress belong to no case yet: the case is claimed when its first blob commits.
        _ = try await readableCase(caseID, device: device)
        if let blob = try await stored({ () async throws(ArchiveStorageError) in try await storage.blob(caseID, sha256) }) {
            return SyncBlobStatus(received: blob.sealedSize, complete: true)
        }
        return SyncBlobStatus(received: try await stored { () async throws(ArchiveStorageError) in try await storage.receivedBytes(caseID, sha256) }, complete: false)
    }

    /// Up to `ArchiveSyncAPI.maximumFetchBytes` of a committed blob's sealed bytes from
    /// `offset`, and its whole sealed size: how the device that owns the case fetches back
    /// content it removed after sync (sync.delete_after_sync) when it needs it again.
    public func sealedPiece(_ caseID: String, _ sha256: String, device: String, offset: UInt64) async throws(SyncRefusal) -> (bytes: [UInt8], sealedSize: UInt64) {
        guard try await readableCase(caseID, device: device),
              let blob = try await stored({ () async throws(ArchiveStorageError) in try await storage.blob(caseID, sha256) }) else {
            throw SyncRefusal(.missing, "the archive holds no blob \(sha256) of case \(caseID)")
        }
        guard offset <= blob.sealedSize else { throw SyncRefusal(.malformed, "blob \(sha256) has \(blob.sealedSize) sealed bytes; offset \(offset) lies past them") }
        let bytes = try await stored { () async throws(ArchiveStorageError) in
            try await storage.readBlob(caseID, sha256, offset: offset, count: ArchiveSyncAPI.maximumFetchBytes)
        }
        return (bytes, blob.sealedSize)
    }

    /// Appends one chunk at `offset` when its bytes match `digest`; a chunk for a committed
    /// blob is acknowledged without being stored (the upload is idempotent).
    public func receiveChunk(_ caseID: String, _ sha256: String, device: String, offset: UInt64, digest: String?,
                             bytes: [UInt8]) async throws(SyncRefusal) -> SyncBlobStatus {
        _ = try await readableCase(caseID, device: device)
        if let blob = try await stored({ () async throws(ArchiveStorageError) in try await storage.blob(caseID, sha256) }) {
            return SyncBlobStatus(received: blob.sealedSize, complete: true)
        }
        guard let digest else { throw SyncRefusal(.malformed, "the chunk has no \(ArchiveSyncAPI.chunkDigestHeader) header") }
        guard Array(SHA256.hash(data: bytes)).hexString == digest.lowercased() else {
            throw SyncRefusal(.tampered, "chunk at offset \(offset) of blob \(sha256) does not match its digest (changed in transit); nothing stored, send it again")
        }
        do {
            let held = try await storage.appendChunk(caseID, sha256, offset: offset, bytes)
            return SyncBlobStatus(received: held, complete: false)
        } catch .conflict {
            let held = (try? await storage.receivedBytes(caseID, sha256)) ?? 0
            throw SyncRefusal(.conflict, "chunk at offset \(offset) of blob \(sha256): the server holds \(held) bytes; continue from there")
        } catch .full(let message) {
            throw SyncRefusal(.full, message)
        } catch {
            throw SyncRefusal(.storage, error.description)
        }
    }

    /// Checks the whole upload and makes it the case's blob: its SHA-256 must be the one the
    /// device computed over its sealed file, its header a sealed blob's, and its size exactly
    /// what sealing `plaintextSize` bytes in that chunk size gives. A failed check drops the upload.
    public func commitBlob(_ caseID: String, _ sha256: String, device: String, commit: SyncBlobCommit) async throws(SyncRefusal) -> SyncBlobStatus {
        _ = try await readableCase(caseID, device: device)
        if let blob = try await stored({ () async throws(ArchiveStorageError) in try await storage.blob(caseID, sha256) }) {
            guard blob.sealedSHA256 == commit.sealedSHA256.lowercased(), blob.plaintextSize == commit.plaintextSize else {
                throw SyncRefusal(.conflict, "blob \(sha256) of case \(caseID) was committed with other content; a blob's address names one content")
            }
            return SyncBlobStatus(received: blob.sealedSize, complete: true)
        }
        var hasher = SHA256()
        var header: [UInt8] = []
        var size: UInt64 = 0
        try await stored { () async throws(ArchiveStorageError) in
            try await storage.readUpload(caseID, sha256) { piece in
                if header.count < ChunkedBlobFormat.headerSize { header += piece.prefix(ChunkedBlobFormat.headerSize - header.count) }
                hasher.update(data: piece)
                size += UInt64(piece.count)
            }
        }
        func refuse(_ reason: String) async throws(SyncRefusal) -> Never {
            try? await storage.discardUpload(caseID, sha256)
            throw SyncRefusal(.tampered, "blob \(sha256) of case \(caseID) refused, nothing stored: \(reason); upload it again from offset 0")
        }
        guard Array(hasher.finalize()).hexString == commit.sealedSHA256.lowercased() else { try await refuse("its bytes do not have the SHA-256 the device named") }
        guard header.count == ChunkedBlobFormat.headerSize, Array(header.prefix(8)) == ChunkedBlobFormat.magic else {
            try await refuse("it does not start with a sealed blob header (SLBLOB01)")
        }
        let chunkSize = header[8...].reduce(0) { $0 << 8 | Int($1) }
        guard chunkSize > 0, chunkSize <= 64 << 20 else { try await refuse("its chunk size \(chunkSize) is out of range") }
        let expected = ChunkedBlobFormat.sealedSize(plaintextSize: commit.plaintextSize, chunkSize: chunkSize)
        guard size == expected else { try await refuse("it has \(size) bytes, but \(commit.plaintextSize) bytes sealed in \(chunkSize)-byte chunks take \(expected)") }
        let blob = StoredBlob(caseID: caseID, sha256: sha256, plaintextSize: commit.plaintextSize, sealedSize: size,
                              sealedSHA256: commit.sealedSHA256.lowercased())
        try await ownCase(caseID, device: device)
        try await stored { () async throws(ArchiveStorageError) in try await storage.commitUpload(blob) }
        return SyncBlobStatus(received: size, complete: true)
    }
}
