import Crypto
import Foundation
import SightlineCore
import SightlineTesting
import Testing
@testable import SightlineArchive

@Suite struct PersonErasureTests {
    /// Erasure where no duty keeps the item, restriction where one does or a hold is in force,
    /// shared content kept for whoever else still needs it, every chain verifying, and exports
    /// that an independent checker accepts.
    @Test func eraseWhereNoDutyAppliesRestrictTheRest() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-erasure")
        let clock = MockClock()
        clock.set(RetentionArchiveTests.time("2025-03-10T12:00:00Z"))
        let archive = try EvidenceArchive(directory: directory.file("archive"), archiveKey: SymmetricKey(size: .bits256),
                                          signingKey: Curve25519.Signing.PrivateKey(), clock: { clock.read() })
        var random = SeededGenerator(seed: 31)
        let a = try archive.openCase(CaseDetails(reference: "WO-A"), participants: [
            Participant(id: "tech", name: "Ana Tech", role: .technician), Participant(id: "exp", name: "Eli Expert", role: .expert),
        ])
        let b = try archive.openCase(CaseDetails(reference: "WO-B"), participants: [Participant(id: "tech", name: "Ana Tech", role: .technician)])
        let voice = randomBytes(700, &random)
        let photo = try archive.file(EvidenceDraft(kind: .photo, capturedAt: 1, mediaType: "image/jpeg", authorID: "tech"),
                                     content: .bytes(randomBytes(900, &random)), into: a)
        let audio = try archive.file(EvidenceDraft(kind: .audioNote, capturedAt: 2, mediaType: "audio/ogg", authorID: "tech"),
                                     content: .bytes(voice), into: a)
        let command = try archive.file(EvidenceDraft(kind: .voiceCommand, capturedAt: 3, text: "take photo", authorID: "tech"), into: a)
        let call = try archive.file(EvidenceDraft(kind: .callRecord, capturedAt: 4, call: CallSummary(
            callID: "c1", startedAt: 4, endedAt: 9, participantIDs: ["tech", "exp"], encryption: "sframe-aes128gcm")), into: a)
        // Same bytes as the technician's note, but the expert's: the blob must survive the erasure.
        let sameBytes = try archive.file(EvidenceDraft(kind: .audioNote, capturedAt: 5, mediaType: "audio/ogg", authorID: "exp"),
                                         content: .bytes(voice), into: a)
        let expertPhoto = try archive.file(EvidenceDraft(kind: .photo, capturedAt: 6, mediaType: "image/jpeg", authorID: "exp"),
                                           content: .bytes(randomBytes(400, &random)), into: a)
        let onHold = try archive.file(EvidenceDraft(kind: .audioNote, capturedAt: 7, authorID: "tech"), content: .bytes(randomBytes(300, &random)), into: b)
        try archive.setLegalHold(b, reason: "warranty dispute")
        let onlyTech = try archive.file(EvidenceDraft(kind: .audioNote, capturedAt: 8, authorID: "tech"), content: .bytes(randomBytes(200, &random)), into: a)

        let report = try archive.erasePerson("tech")
        let actions = Dictionary(uniqueKeysWithValues: report.items.map { ($0.itemId, $0.action) })
        #expect(actions == [photo.id: "restricted", audio.id: "erased", command.id: "erased", call.id: "restricted",
                            onHold.id: "restricted", onlyTech.id: "erased"], "\(report)")
        #expect(report.items.first { $0.itemId == photo.id }?.reason.contains("commercial-letter: 6 years") == true)
        #expect(report.items.first { $0.itemId == onHold.id }?.reason.contains("legal hold (warranty dispute)") == true)
        for result in try archive.verifyAll() { #expect(throws: Never.self) { try result.get() } }

        let projection = try archive.projection(a)
        #expect(Set(projection.erased.keys) == [audio.id, command.id, onlyTech.id])
        #expect(projection.erased[audio.id]?.erasure.personID == "tech" && projection.erased[audio.id]?.erasure.blobSHA256 == audio.blob?.sha256)
        #expect(projection.restricted[photo.id]?.restriction.until == RetentionArchiveTests.time("2032-01-01T00:00:00Z"))
        #expect(projection.erased[sameBytes.id] == nil && projection.erased[expertPhoto.id] == nil)
        func stored(_ item: EvidenceItem, in caseID: String) throws -> Bool {
            FileManager.default.fileExists(atPath: archive.blobPath(caseID: caseID, sha256: try #require(item.blob).hex))
        }
        #expect(try !stored(onlyTech, in: a))
        #expect(try stored(audio, in: a), "the expert's identical note still needs the bytes")
        #expect(try stored(photo, in: a) && stored(onHold, in: b))
        let detail = CaseDetail(projection: projection)
        #expect(detail.items.first { $0.itemId == onlyTech.id }?.erased?.contains("no duty to keep") == true)
        #expect(detail.items.first { $0.itemId == photo.id }?.restricted != nil)

        // A second request changes nothing and adds no entries.
        let entries = try archive.projection(a).entryCount
        #expect(try archive.erasePerson("tech").items.allSatisfy { $0.action == "unchanged" })
        #expect(try archive.projection(a).entryCount == entries)
        #expect(throws: ArchiveError.self) { try archive.erasePerson("nobody") }

        // Restricted content stays out of an export unless asked for; both exports check.
        for includeRestricted in [false, true] {
            let out = directory.file("a-\(includeRestricted).zip")
            let summary = try archive.export(a, to: out, includeRestricted: includeRestricted)
            let check = try CommandLineTool.run("/usr/bin/python3", [CaseExportTests.checker, out])
            #expect(check.status == 0, "\(check.stdout)")
            #expect(check.stdout.contains(includeRestricted ? "3 evidence files" : "2 evidence files"), "\(check.stdout)")
            #expect(summary.evidenceBytes == UInt64(includeRestricted ? 700 + 400 + 900 : 700 + 400))
        }

        // The restriction ends with the retention period: the purge removes the photo then.
        clock.set(RetentionArchiveTests.time("2032-01-01T00:00:00Z"))
        #expect(Set(try archive.purgeExpired().map(\.tombstone.itemID)).isSuperset(of: [photo.id, call.id]))
        for result in try archive.verifyAll() { #expect(throws: Never.self) { try result.get() } }
        #expect(try !stored(photo, in: a))
    }

    /// The chain itself refuses an erasure inside a legal hold or one that misstates the item.
    @Test func theJournalRefusesErasuresThatBreakTheRules() throws {
        let opened = JournalEntry(caseID: "c", sequence: 0, previousHash: JournalEntry.genesisHash, recordedAt: 0,
                                  event: .opened(CaseDetails(reference: "r")))
        var projection = try CaseProjection(first: opened)
        let item = EvidenceItem(id: "i", kind: .audioNote, capturedAt: 1, blob: BlobReference(sha256: Array(repeating: 7, count: 32), size: 3),
                                authorID: "p", retentionClass: "personal-audio")
        try projection.apply(try projection.nextEntry(.evidenceAdded(item), at: 1))
        let wrongHash = Erasure(itemID: "i", blobSHA256: Array(repeating: 8, count: 32), retentionClass: "personal-audio", personID: "p", reason: "x")
        #expect(throws: CaseProjection.Rejection.self) { try projection.nextEntry(.evidenceErased(wrongHash), at: 2) }
        let wrongClass = Restriction(itemID: "i", retentionClass: "books", personID: "p", until: 9, reason: "x")
        #expect(throws: CaseProjection.Rejection.self) { try projection.nextEntry(.evidenceRestricted(wrongClass), at: 2) }
        let erasure = Erasure(itemID: "i", blobSHA256: item.blob?.sha256, retentionClass: "personal-audio", personID: "p", reason: "asked")
        var held = projection
        try held.apply(try held.nextEntry(.legalHoldSet(reason: "audit"), at: 2))
        #expect(throws: CaseProjection.Rejection.self) { try held.nextEntry(.evidenceErased(erasure), at: 3) }
        let entry = try projection.nextEntry(.evidenceErased(erasure), at: 2)
        #expect(try JournalEntry(canonical: entry.canonicalBytes) == entry)
        try projection.apply(entry)
        #expect(throws: CaseProjection.Rejection.self) { try projection.nextEntry(.evidenceErased(erasure), at: 3) }
        #expect(throws: CaseProjection.Rejection.self) { try projection.nextEntry(.evidenceRefiled(itemID: "i", toCase: "d"), at: 3) }
    }
}
