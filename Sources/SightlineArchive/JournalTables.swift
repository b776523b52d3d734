import Foundation
import GRDB
import SightlineCore

/// The two tables that hold a case's journal as stored bytes, in the device's archive and in the
/// organisation's archive server alike: one schema and one way to read and write them, so the
/// server keeps exactly what the device signed.
public enum JournalTables {
    public static let schema = """
        CREATE TABLE journal_entries (
            case_id TEXT NOT NULL, sequence INTEGER NOT NULL, hash BLOB NOT NULL, canonical BLOB NOT NULL,
            PRIMARY KEY (case_id, sequence));
        CREATE TABLE checkpoints (
            case_id TEXT NOT NULL, sequence INTEGER NOT NULL, entry_hash BLOB NOT NULL, signed_at INTEGER NOT NULL,
            public_key BLOB NOT NULL, signature BLOB NOT NULL, PRIMARY KEY (case_id, sequence));
        """

    /// The case's entries and checkpoints in sequence order.
    public static func journal(_ db: Database, caseID: String) throws -> (entries: [StoredJournalEntry], checkpoints: [JournalCheckpoint]) {
        let entries = try Row.fetchAll(db, sql: "SELECT * FROM journal_entries WHERE case_id = ? ORDER BY sequence", arguments: [caseID]).map {
            StoredJournalEntry(sequence: UInt64(clamping: $0["sequence"] as Int64), hash: Array($0["hash"] as Data),
                               canonical: Array($0["canonical"] as Data))
        }
        let checkpoints = try Row.fetchAll(db, sql: "SELECT * FROM checkpoints WHERE case_id = ? ORDER BY sequence", arguments: [caseID]).map {
            JournalCheckpoint(caseID: $0["case_id"], sequence: UInt64(clamping: $0["sequence"] as Int64), entryHash: Array($0["entry_hash"] as Data),
                              signedAt: $0["signed_at"], publicKey: Array($0["public_key"] as Data), signature: Array($0["signature"] as Data))
        }
        return (entries, checkpoints)
    }

    public static func insert(_ db: Database, caseID: String, _ entry: StoredJournalEntry) throws {
        try db.execute(sql: "INSERT INTO journal_entries (case_id, sequence, hash, canonical) VALUES (?, ?, ?, ?)",
                       arguments: [caseID, Int64(entry.sequence), Data(entry.hash), Data(entry.canonical)])
    }

    public static func insert(_ db: Database, _ checkpoint: JournalCheckpoint) throws {
        try db.execute(sql: """
            INSERT INTO checkpoints (case_id, sequence, entry_hash, signed_at, public_key, signature) VALUES (?, ?, ?, ?, ?, ?)
            """, arguments: [checkpoint.caseID, Int64(checkpoint.sequence), Data(checkpoint.entryHash), checkpoint.signedAt,
                             Data(checkpoint.publicKey), Data(checkpoint.signature)])
    }
}
