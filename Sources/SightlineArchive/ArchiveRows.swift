import Foundation
import GRDB
import SightlineCore

/// The database rows that mirror a case's journal. The same functions write them and, in
/// `verify`, say what they must contain, so a changed column anywhere is caught by comparing
/// the rows with a projection recomputed from the (signed) journal.
enum ArchiveRows {
    typealias Values = [(column: String, value: DatabaseValue)]

    static let schema = """
        CREATE TABLE cases (
            id TEXT PRIMARY KEY NOT NULL, reference TEXT NOT NULL, asset TEXT, site TEXT, title TEXT,
            unassigned INTEGER NOT NULL, state TEXT NOT NULL, opened_at INTEGER NOT NULL,
            entry_count INTEGER NOT NULL, head_hash BLOB NOT NULL, wrapped_key BLOB NOT NULL);
        \(JournalTables.schema)
        CREATE TABLE participants (
            case_id TEXT NOT NULL, id TEXT NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
            PRIMARY KEY (case_id, id));
        CREATE TABLE consents (
            case_id TEXT NOT NULL, position INTEGER NOT NULL, participant_id TEXT NOT NULL, scope TEXT NOT NULL,
            granted INTEGER NOT NULL, given_at INTEGER NOT NULL, call_id TEXT, PRIMARY KEY (case_id, position));
        CREATE TABLE items (
            case_id TEXT NOT NULL, id TEXT NOT NULL, sequence INTEGER NOT NULL, kind TEXT NOT NULL,
            captured_at INTEGER NOT NULL, media_type TEXT, blob_sha256 BLOB, blob_size INTEGER, text TEXT,
            corrects TEXT, call_id TEXT, call_started_at INTEGER, call_ended_at INTEGER, call_participants TEXT,
            call_encryption TEXT, author_id TEXT, refiled_from_case TEXT, refiled_from_hash BLOB, refiled_to TEXT,
            PRIMARY KEY (case_id, id));
        """

    /// Retention: the class of each item, the entry that purged it, the legal hold of a case.
    static let retentionSchema = """
        ALTER TABLE items ADD COLUMN retention_class TEXT;
        ALTER TABLE items ADD COLUMN purged_sequence INTEGER;
        ALTER TABLE cases ADD COLUMN legal_hold TEXT;
        """

    /// Privacy requests: the entry that erased an item's content, or restricted it.
    static let privacySchema = """
        ALTER TABLE items ADD COLUMN erased_sequence INTEGER;
        ALTER TABLE items ADD COLUMN restricted_sequence INTEGER;
        """

    static func caseRow(_ p: CaseProjection, wrappedKey: [UInt8]) -> Values {
        [
            ("id", p.caseID.databaseValue), ("reference", p.details.reference.databaseValue),
            ("asset", p.details.asset.databaseValue), ("site", p.details.site.databaseValue),
            ("title", p.details.title.databaseValue), ("unassigned", p.details.unassigned.databaseValue),
            ("state", p.state.rawValue.databaseValue), ("opened_at", p.openedAt.databaseValue),
            ("entry_count", Int64(p.entryCount).databaseValue), ("head_hash", blob(p.headHash)),
            ("wrapped_key", blob(wrappedKey)), ("legal_hold", p.legalHold.databaseValue),
        ]
    }

    static func participantRows(_ p: CaseProjection) -> [Values] {
        p.participants.enumerated().map { position, participant in
            [
                ("case_id", p.caseID.databaseValue), ("id", participant.id.databaseValue), ("position", position.databaseValue),
                ("name", participant.name.databaseValue), ("role", participant.role.rawValue.databaseValue),
            ]
        }
    }

    static func consentRows(_ p: CaseProjection) -> [Values] {
        p.consents.enumerated().map { position, consent in
            [
                ("case_id", p.caseID.databaseValue), ("position", position.databaseValue),
                ("participant_id", consent.participantID.databaseValue), ("scope", consent.scope.rawValue.databaseValue),
                ("granted", consent.granted.databaseValue), ("given_at", consent.givenAt.databaseValue),
                ("call_id", consent.callID.databaseValue),
            ]
        }
    }

    static func itemRows(_ p: CaseProjection) -> [Values] {
        p.items.map { sequence, item in itemRow(p, sequence: sequence, item) }
    }

    private static func itemRow(_ p: CaseProjection, sequence: UInt64, _ item: EvidenceItem) -> Values {
        var values: Values = [
            ("case_id", p.caseID.databaseValue), ("id", item.id.databaseValue), ("sequence", Int64(sequence).databaseValue),
            ("kind", item.kind.rawValue.databaseValue), ("captured_at", item.capturedAt.databaseValue),
            ("media_type", item.mediaType.databaseValue),
        ]
        let blobHash: DatabaseValue = item.blob.map { blob($0.sha256) } ?? .null
        let blobSize: DatabaseValue = item.blob.map { Int64($0.size).databaseValue } ?? .null
        values += [("blob_sha256", blobHash), ("blob_size", blobSize), ("text", item.text.databaseValue), ("corrects", item.corrects.databaseValue)]
        let call = item.call
        let participants: String? = call.map { $0.participantIDs.joined(separator: "\n") }
        values += [
            ("call_id", call?.callID.databaseValue ?? .null), ("call_started_at", call?.startedAt.databaseValue ?? .null),
            ("call_ended_at", call?.endedAt.databaseValue ?? .null), ("call_participants", participants.databaseValue),
            ("call_encryption", call?.encryption.databaseValue ?? .null), ("author_id", item.authorID.databaseValue),
        ]
        let originHash: DatabaseValue = item.refiledFrom.map { blob($0.entryHash) } ?? .null
        values += [
            ("refiled_from_case", item.refiledFrom?.caseID.databaseValue ?? .null), ("refiled_from_hash", originHash),
            ("refiled_to", p.refiled[item.id].databaseValue), ("retention_class", item.retentionClass.databaseValue),
            ("purged_sequence", p.purged[item.id].map { Int64($0.sequence).databaseValue } ?? .null),
            ("erased_sequence", p.erased[item.id].map { Int64($0.sequence).databaseValue } ?? .null),
            ("restricted_sequence", p.restricted[item.id].map { Int64($0.sequence).databaseValue } ?? .null),
        ]
        return values
    }

    static func blob(_ bytes: [UInt8]) -> DatabaseValue { Data(bytes).databaseValue }

    static func upsert(_ db: Database, table: String, _ values: Values) throws {
        let columns = values.map(\.column).joined(separator: ", ")
        let marks = Array(repeating: "?", count: values.count).joined(separator: ", ")
        try db.execute(sql: "INSERT OR REPLACE INTO \(table) (\(columns)) VALUES (\(marks))",
                       arguments: StatementArguments(values.map(\.value)))
    }

    /// The first difference between the stored rows of a table and what the journal says
    /// they must be, as a sentence; nil when they agree exactly.
    static func difference(table: String, key: String, stored: [Row], expected: [Values]) -> String? {
        for (index, values) in expected.enumerated() {
            let name = values.first { $0.column == key }?.value.description ?? "#\(index)"
            guard index < stored.count else { return "row \(table)/\(name) is missing" }
            let row = stored[index]
            for (column, value) in values where row[column] as DatabaseValue != value {
                return "row \(table)/\(name): column \(column) differs from the journal"
            }
            if row.count != values.count { return "row \(table)/\(name) has columns the journal does not know" }
        }
        if stored.count > expected.count {
            return "table \(table) has \(stored.count - expected.count) row(s) that no journal entry accounts for"
        }
        return nil
    }
}
