import Foundation

/// A journal entry as JSON: one line of an export's `journal/entries.jsonl` and one element of
/// a sync upload (docs/ARCHIVE.md). The canonical bytes travel as they are, so the receiver
/// hashes exactly what the device hashed.
public struct JournalEntryJSON: Codable, Sendable, Equatable {
    public var sequence: UInt64
    public var hash: String
    public var canonical: String

    public init(_ stored: StoredJournalEntry) {
        sequence = stored.sequence
        hash = stored.hash.hexString
        canonical = Data(stored.canonical).base64EncodedString()
    }

    /// The stored form; nil when the hash is not hex or the canonical bytes not base64.
    public var stored: StoredJournalEntry? {
        guard let hash = [UInt8](hex: hash), let canonical = Data(base64Encoded: canonical) else { return nil }
        return StoredJournalEntry(sequence: sequence, hash: hash, canonical: Array(canonical))
    }
}

/// A signed checkpoint as JSON: one line of `journal/checkpoints.jsonl`, one element of a sync upload.
public struct JournalCheckpointJSON: Codable, Sendable, Equatable {
    public var caseID: String
    public var sequence: UInt64
    public var entryHash: String
    public var signedAt: EpochMilliseconds
    public var publicKey: String
    public var signature: String

    enum CodingKeys: String, CodingKey {
        case sequence, signature
        case caseID = "case_id"
        case entryHash = "entry_hash"
        case signedAt = "signed_at"
        case publicKey = "public_key"
    }

    public init(_ checkpoint: JournalCheckpoint) {
        caseID = checkpoint.caseID
        sequence = checkpoint.sequence
        entryHash = checkpoint.entryHash.hexString
        signedAt = checkpoint.signedAt
        publicKey = Data(checkpoint.publicKey).base64EncodedString()
        signature = Data(checkpoint.signature).base64EncodedString()
    }

    /// The checkpoint; nil when a field is not valid hex or base64.
    public var checkpoint: JournalCheckpoint? {
        guard let entryHash = [UInt8](hex: entryHash), let publicKey = Data(base64Encoded: publicKey),
              let signature = Data(base64Encoded: signature)
        else { return nil }
        return JournalCheckpoint(caseID: caseID, sequence: sequence, entryHash: entryHash, signedAt: signedAt,
                                 publicKey: Array(publicKey), signature: Array(signature))
    }
}
