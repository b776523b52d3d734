import Crypto
import Foundation
import SightlineCore
import SightlineSystem

/// person.json of a person export (GDPR Art. 15): for every case that references the person,
/// their participant record, consents and the items they made or took part in, each with the
/// hash of the journal entry that filed it so it can be matched against a case export.
struct PersonRecord: Codable {
    struct CaseReference: Codable {
        var caseId: String
        var reference: String
        var participant: CaseParticipantInfo?
        var consents: [CaseConsentInfo]
        var items: [Item]
    }

    struct Item: Codable {
        var item: CaseItemInfo
        var entryHash: String
        /// The decrypted content in this ZIP, when the item has one and it was not purged or erased.
        var file: String?
    }

    var format = "sightline-person-export"
    var version = 1
    var personId: String
    var exportedAt: Int64
    var cases: [CaseReference]
}

/// manifest.json of a person export: like a case export's, without a journal.
struct PersonManifest: Codable {
    var format = "sightline-person-export"
    var version = 1
    var personId: String
    var exportedAt: Int64
    var devicePublicKey: String
    var deviceFingerprint: String
    var files: [ExportManifest.File]
}

extension EvidenceArchive {
    /// Everything the archive holds about one person (a participant id), as a signed ZIP:
    /// person.json, the content of the items they made (`author`) or that record a call they
    /// took part in, the device's public key, manifest.json and its signature. Other people's
    /// items are left out (Art. 15 (4) GDPR). Every case it draws on must verify.
    public func exportPerson(_ personID: String, to path: String) throws(ArchiveError) -> CaseExportSummary {
        var references: [PersonRecord.CaseReference] = []
        var sources: [(caseID: String, item: EvidenceItem, name: String)] = []
        for caseID in try caseIDs() {
            let projection: CaseProjection
            switch verify(caseID) {
            case .success(let verified): projection = verified
            case .failure(let link): throw .rejected(caseID: caseID, reason: "it does not verify (\(link)); person export refused")
            }
            let detail = CaseDetail(projection: projection)
            let participant = detail.participants.first { $0.participantId == personID }
            let consents = detail.consents.filter { $0.participantId == personID }
            let entries = try journal(caseID).entries
            var items: [PersonRecord.Item] = []
            for (sequence, item) in projection.items
            where item.references(person: personID) {
                guard let info = detail.items.first(where: { $0.itemId == item.id }), Int(sequence) < entries.count else { continue }
                var name: String?
                if item.blob != nil, !projection.contentRemoved(item.id) {
                    name = "evidence/\(caseID)/\(item.id)\(Self.fileExtension(item.mediaType))"
                    sources.append((caseID, item, name ?? ""))
                }
                items.append(.init(item: info, entryHash: entries[Int(sequence)].hash.hexString, file: name))
            }
            if participant != nil || !consents.isEmpty || !items.isEmpty {
                references.append(.init(caseId: caseID, reference: projection.details.reference, participant: participant,
                                        consents: consents, items: items))
            }
        }
        guard !references.isEmpty else { throw .rejected(caseID: "*", reason: "no case references person \(personID)") }

        return try writeSignedExport(to: path) { writer in
            for source in sources {
                guard let blob = source.item.blob else { continue }
                let key = try dataKey(for: source.caseID)
                try writer.addBlob(source.name, reader: try BlobReader(path: blobPath(caseID: source.caseID, sha256: blob.hex), key: key),
                                   blob: blob, itemID: source.item.id, caseID: source.caseID)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            let now = Self.systemClock()
            try writer.addText("person.json", Array(try encoder.encode(PersonRecord(personId: personID, exportedAt: now, cases: references))) + [0x0A])
            try writer.addText("device-public-key.pem", Array(Self.publicKeyPEM(devicePublicKey).utf8))
            let manifest = PersonManifest(personId: personID, exportedAt: now, devicePublicKey: devicePublicKey.rawRepresentation.base64EncodedString(),
                                          deviceFingerprint: DeviceIdentityEncoding.fingerprint(of: devicePublicKey), files: writer.files)
            return Array(try encoder.encode(manifest)) + [0x0A]
        }
    }
}
