/// The HTTP protocol between a device and the organisation's archive server (docs/ARCHIVE.md,
/// "Sync"): paths and JSON bodies, shared by `sightline-archive` and the device's sync client.
public enum ArchiveSyncAPI {
    /// Largest body of one blob chunk `PUT`; the client sends smaller pieces.
    public static let maximumChunkBytes = 8 << 20
    /// Largest journal upload body; the client batches entries below it.
    public static let maximumJournalBytes = 16 << 20
    /// The SHA-256 (hex) of the chunk's bytes; the server refuses a chunk that does not match.
    public static let chunkDigestHeader = "X-Sightline-Chunk-SHA256"
    /// On a piece of a blob's sealed bytes fetched back: the blob's whole sealed size.
    public static let sealedSizeHeader = "X-Sightline-Sealed-Size"
    /// Largest piece of a blob's sealed bytes one fetch-back `GET` returns.
    public static let maximumFetchBytes = 4 << 20

    public static func journalPath(_ caseID: String) -> String { "/v1/cases/\(caseID)/journal" }
    public static func blobPath(_ caseID: String, _ sha256: String) -> String { "/v1/cases/\(caseID)/blobs/\(sha256)" }
    public static func blobCommitPath(_ caseID: String, _ sha256: String) -> String { blobPath(caseID, sha256) + "/commit" }
    /// `GET …/sealed?offset=N`: the committed blob's sealed bytes from N, at most `maximumFetchBytes`.
    public static func blobSealedPath(_ caseID: String, _ sha256: String) -> String { blobPath(caseID, sha256) + "/sealed" }

    /// Case ids the server accepts in a path (the device's are lower-case UUIDs): letters,
    /// digits and '-', at most 64, so an id can name a directory safely.
    public static func isValidCaseID(_ id: some StringProtocol) -> Bool {
        !id.isEmpty && id.utf8.count <= 64 && id.utf8.allSatisfy { lowerLetters.contains($0) || digits.contains($0) || $0 == UInt8(ascii: "-") }
    }

    /// A blob address: 64 lower-case hex digits.
    public static func isValidSHA256(_ hex: some StringProtocol) -> Bool {
        hex.utf8.count == 64 && hex.utf8.allSatisfy { digits.contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }

    private static let digits = UInt8(ascii: "0")...UInt8(ascii: "9")
    private static let lowerLetters = UInt8(ascii: "a")...UInt8(ascii: "z")
}

/// `GET /v1/cases/ID/journal`: how much of the case's journal the server holds.
public struct SyncJournalStatus: Codable, Sendable, Equatable {
    public var entries: UInt64
    /// Hex hash of the last entry held; nil when none.
    public var headHash: String?

    enum CodingKeys: String, CodingKey {
        case entries
        case headHash = "head_hash"
    }

    public init(entries: UInt64, headHash: String?) {
        self.entries = entries
        self.headHash = headHash
    }
}

/// `POST /v1/cases/ID/journal`: the next entries in order and the checkpoints that sign them.
public struct SyncJournalUpload: Codable, Sendable, Equatable {
    public var entries: [JournalEntryJSON]
    public var checkpoints: [JournalCheckpointJSON]

    public init(entries: [JournalEntryJSON], checkpoints: [JournalCheckpointJSON]) {
        self.entries = entries
        self.checkpoints = checkpoints
    }
}

/// `GET /v1/cases/ID/blobs/SHA256`: how many bytes of the sealed blob the server has durably.
public struct SyncBlobStatus: Codable, Sendable, Equatable {
    public var received: UInt64
    public var complete: Bool

    public init(received: UInt64, complete: Bool) {
        self.received = received
        self.complete = complete
    }
}

/// `POST /v1/cases/ID/blobs/SHA256/commit`: what the whole upload must be.
public struct SyncBlobCommit: Codable, Sendable, Equatable {
    /// The plaintext size the journal entry names (the sealed size follows from it).
    public var plaintextSize: UInt64
    /// Hex SHA-256 of the sealed file's bytes, as the device stores them.
    public var sealedSHA256: String

    enum CodingKeys: String, CodingKey {
        case plaintextSize = "plaintext_size"
        case sealedSHA256 = "sealed_sha256"
    }

    public init(plaintextSize: UInt64, sealedSHA256: String) {
        self.plaintextSize = plaintextSize
        self.sealedSHA256 = sealedSHA256
    }
}

/// The body of every refusal: what is wrong and what to do.
public struct SyncErrorBody: Codable, Sendable, Equatable {
    public var error: String

    public init(error: String) {
        self.error = error
    }
}
