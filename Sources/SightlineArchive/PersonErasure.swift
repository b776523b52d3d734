import Foundation
import SightlineCore

extension EvidenceArchive {
    /// A person's erasure request (Art. 17 GDPR) over every case: each item that references
    /// them (`EvidenceItem.references(person:)`) is
    ///
    /// - erased when no retention duty keeps it (a class without one, or a period that has
    ///   ended) and its case is not on legal hold: an `evidence.erased` tombstone is committed,
    ///   then the encrypted blob is deleted, exactly as a purge does;
    /// - otherwise restricted (Art. 17 (3) (b), Art. 18 GDPR, § 35 (3) BDSG): an
    ///   `evidence.restricted` entry records why and until when; the purge removes the item
    ///   when its period ends, and case exports leave its content out unless asked for it.
    ///
    /// Each decision is its own journaled, signed entry, so the request is answered in the
    /// record itself and every chain still verifies. Journal entries are not rewritten: the
    /// person's participant record and any item text stay (ARCHIVE.md, "Erasure").
    public func erasePerson(_ personID: String) throws(ArchiveError) -> PersonErasureReport {
        var report: [PersonErasureReport.Item] = []
        var referenced = false
        let now = clock()
        for caseID in try caseIDs() {
            let projection = try projection(caseID)
            if projection.participants.contains(where: { $0.id == personID }) { referenced = true }
            for (_, item) in projection.items where item.references(person: personID) {
                referenced = true
                func line(_ action: String, _ reason: String) -> PersonErasureReport.Item {
                    .init(caseId: caseID, itemId: item.id, action: action, retentionClass: item.retentionClass, reason: reason)
                }
                if let removed = projection.purged[item.id]?.tombstone.reason ?? projection.erased[item.id]?.erasure.reason {
                    report.append(line("unchanged", "content already removed: \(removed)"))
                    continue
                }
                if let restriction = projection.restricted[item.id]?.restriction {
                    report.append(line("unchanged", "already restricted: \(restriction.reason)"))
                    continue
                }
                guard let name = item.retentionClass, let retentionClass = retention.retentionClass(named: name),
                      let filedAt = projection.filedAt[item.id]
                else {
                    throw .rejected(caseID: caseID, reason: "item \(item.id) has retention class \(item.retentionClass ?? "none"), which is "
                                        + "not configured; configure it (retention.*) before deciding the erasure request")
                }
                let expiry = retentionClass.expiry(filedAt: filedAt)
                let dutyApplies = retentionClass.keepingDuty && expiry > now
                if dutyApplies || projection.legalHold != nil {
                    let why = if let hold = projection.legalHold {
                        "the case is on legal hold (\(hold)): kept for the legal claim (Art. 17 (3) (e) GDPR); processing restricted (Art. 18 GDPR)"
                    } else {
                        "kept under a retention duty: \(retentionClass.summary) (Art. 17 (3) (b) GDPR); processing restricted (Art. 18 GDPR, § 35 (3) BDSG)"
                    }
                    try appendEvent(caseID, .evidenceRestricted(Restriction(itemID: item.id, retentionClass: name, personID: personID,
                                                                            until: expiry, reason: why)))
                    report.append(line("restricted", why))
                } else {
                    let why = retentionClass.keepingDuty
                        ? "erased on request (Art. 17 GDPR): the retention period ended (\(retentionClass.summary))"
                        : "erased on request (Art. 17 GDPR): no duty to keep (\(retentionClass.summary))"
                    try appendEvent(caseID, .evidenceErased(Erasure(itemID: item.id, blobSHA256: item.blob?.sha256, retentionClass: name,
                                                                    personID: personID, reason: why)))
                    if let blob = item.blob { try deleteBlobIfUnused(blob, caseID: caseID) }
                    report.append(line("erased", why))
                }
            }
        }
        guard referenced else { throw .rejected(caseID: "*", reason: "no case references person \(personID)") }
        return PersonErasureReport(personId: personID, items: report)
    }
}
