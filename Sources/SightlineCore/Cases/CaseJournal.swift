import Crypto

/// One link of a case's hash chain. Its hash is SHA-256 over its canonical encoding, which
/// contains the previous entry's hash and the SHA-256 of any blob it files, so changing any
/// entry, any blob or their order breaks every later link (docs/ARCHIVE.md, "Journal").
public struct JournalEntry: Sendable, Equatable {
    public static let formatVersion: UInt64 = 1
    /// The `previousHash` of a case's first entry.
    public static let genesisHash = [UInt8](repeating: 0, count: 32)

    public var caseID: String
    public var sequence: UInt64
    public var previousHash: [UInt8]
    public var recordedAt: EpochMilliseconds
    public var event: CaseEvent

    public init(caseID: String, sequence: UInt64, previousHash: [UInt8], recordedAt: EpochMilliseconds, event: CaseEvent) {
        self.caseID = caseID
        self.sequence = sequence
        self.previousHash = previousHash
        self.recordedAt = recordedAt
        self.event = event
    }

    public var canonicalBytes: [UInt8] {
        var writer = CanonicalWriter()
        writer.unsigned(0x01, Self.formatVersion)
        writer.text(0x02, caseID)
        writer.unsigned(0x03, sequence)
        writer.raw(0x04, previousHash)
        writer.signed(0x05, recordedAt)
        writer.text(0x06, event.kindName)
        writer.record(0x07, Self.encode(event))
        return writer.bytes
    }

    public var hash: [UInt8] { Array(SHA256.hash(data: canonicalBytes)) }

    /// Decodes an entry and insists that it re-encodes to exactly the same bytes.
    public init(canonical bytes: [UInt8]) throws(CanonicalDecodingError) {
        var reader = try CanonicalReader(bytes)
        let version = try reader.requiredUnsigned(0x01)
        guard version == Self.formatVersion else { throw CanonicalDecodingError("unknown journal format version \(version)") }
        caseID = try reader.requiredText(0x02)
        sequence = try reader.requiredUnsigned(0x03)
        previousHash = try reader.requiredRaw(0x04, length: 32)
        recordedAt = try reader.requiredSigned(0x05)
        let kind = try reader.requiredText(0x06)
        var body = try reader.requiredRecord(0x07)
        try reader.finish()
        event = try Self.decode(kind: kind, &body)
        try body.finish()
        guard canonicalBytes == bytes else { throw CanonicalDecodingError("entry is not in canonical form") }
    }

    static func encode(_ event: CaseEvent) -> CanonicalWriter {
        var w = CanonicalWriter()
        switch event {
        case .opened(let details):
            w.text(0x01, details.reference)
            w.text(0x02, details.asset)
            w.text(0x03, details.site)
            w.text(0x04, details.title)
            w.flag(0x05, details.unassigned)
        case .closed(let reason), .reopened(let reason):
            w.text(0x01, reason)
        case .participantAdded(let participant):
            w.text(0x01, participant.id)
            w.text(0x02, participant.name)
            w.text(0x03, participant.role.rawValue)
        case .consentRecorded(let consent):
            w.text(0x01, consent.participantID)
            w.text(0x02, consent.scope.rawValue)
            w.flag(0x03, consent.granted)
            w.signed(0x04, consent.givenAt)
            w.text(0x05, consent.callID)
        case .evidenceAdded(let item):
            w.text(0x01, item.id)
            w.text(0x02, item.kind.rawValue)
            w.signed(0x03, item.capturedAt)
            w.text(0x04, item.mediaType)
            w.raw(0x05, item.blob?.sha256)
            w.unsigned(0x06, item.blob?.size)
            w.text(0x07, item.text)
            w.text(0x08, item.corrects)
            if let call = item.call {
                var c = CanonicalWriter()
                c.text(0x01, call.callID)
                c.signed(0x02, call.startedAt)
                c.signed(0x03, call.endedAt)
                for participant in call.participantIDs { c.text(0x04, participant) }
                c.text(0x05, call.encryption)
                w.record(0x09, c)
            }
            w.text(0x0A, item.authorID)
            w.text(0x0B, item.refiledFrom?.caseID)
            w.raw(0x0C, item.refiledFrom?.entryHash)
            w.text(0x0D, item.retentionClass)
        case .evidenceRefiled(let itemID, let toCase):
            w.text(0x01, itemID)
            w.text(0x02, toCase)
        case .legalHoldSet(let reason):
            w.text(0x01, reason)
        case .legalHoldReleased(let reason):
            w.text(0x01, reason)
        case .evidencePurged(let tombstone):
            w.text(0x01, tombstone.itemID)
            w.raw(0x02, tombstone.blobSHA256)
            w.text(0x03, tombstone.retentionClass)
            w.signed(0x04, tombstone.expiredAt)
            w.text(0x05, tombstone.reason)
        case .evidenceErased(let erasure):
            w.text(0x01, erasure.itemID)
            w.raw(0x02, erasure.blobSHA256)
            w.text(0x03, erasure.retentionClass)
            w.text(0x04, erasure.personID)
            w.text(0x05, erasure.reason)
        case .evidenceRestricted(let restriction):
            w.text(0x01, restriction.itemID)
            w.text(0x02, restriction.retentionClass)
            w.text(0x03, restriction.personID)
            w.signed(0x04, restriction.until)
            w.text(0x05, restriction.reason)
        }
        return w
    }

    static func decode(kind: String, _ r: inout CanonicalReader) throws(CanonicalDecodingError) -> CaseEvent {
        func enumValue<T: RawRepresentable<String>>(_ tag: UInt8, _: T.Type, _ r: inout CanonicalReader) throws(CanonicalDecodingError) -> T {
            let raw = try r.requiredText(tag)
            guard let value = T(rawValue: raw) else { throw CanonicalDecodingError("field \(tag) has unknown value \"\(raw)\"") }
            return value
        }
        switch kind {
        case "case.opened":
            return .opened(CaseDetails(
                reference: try r.requiredText(0x01), asset: try r.text(0x02), site: try r.text(0x03), title: try r.text(0x04),
                unassigned: try r.flag(0x05) ?? false))
        case "case.closed":
            return .closed(reason: try r.text(0x01))
        case "case.reopened":
            return .reopened(reason: try r.text(0x01))
        case "participant.added":
            return .participantAdded(Participant(id: try r.requiredText(0x01), name: try r.requiredText(0x02),
                                                 role: try enumValue(0x03, ParticipantRole.self, &r)))
        case "consent.recorded":
            return .consentRecorded(ConsentRecord(
                participantID: try r.requiredText(0x01), scope: try enumValue(0x02, ConsentRecord.Scope.self, &r),
                granted: try r.flag(0x03) ?? false, givenAt: try r.requiredSigned(0x04), callID: try r.text(0x05)))
        case "evidence.added":
            var item = EvidenceItem(id: try r.requiredText(0x01), kind: try enumValue(0x02, EvidenceKind.self, &r),
                                    capturedAt: try r.requiredSigned(0x03))
            item.mediaType = try r.text(0x04)
            let sha = try r.raw(0x05, length: 32)
            let size = try r.unsigned(0x06)
            if let sha, let size {
                item.blob = BlobReference(sha256: sha, size: size)
            } else if sha != nil || size != nil {
                throw CanonicalDecodingError("a blob needs both its hash (field 5) and its size (field 6)")
            }
            item.text = try r.text(0x07)
            item.corrects = try r.text(0x08)
            if var c = try r.record(0x09) {
                let participants = try c.list(0x04).map { (value) throws(CanonicalDecodingError) -> String in
                    guard let text = String(validating: value, as: UTF8.self) else { throw CanonicalDecodingError("participant is not UTF-8") }
                    return text
                }
                item.call = CallSummary(callID: try c.requiredText(0x01), startedAt: try c.requiredSigned(0x02), endedAt: try c.signed(0x03),
                                        participantIDs: participants, encryption: try c.requiredText(0x05))
                try c.finish()
            }
            item.authorID = try r.text(0x0A)
            let fromCase = try r.text(0x0B)
            let fromHash = try r.raw(0x0C, length: 32)
            if let fromCase, let fromHash {
                item.refiledFrom = RefileOrigin(caseID: fromCase, entryHash: fromHash)
            } else if fromCase != nil || fromHash != nil {
                throw CanonicalDecodingError("a re-filed item needs both its origin case (field 11) and entry hash (field 12)")
            }
            item.retentionClass = try r.text(0x0D)
            return .evidenceAdded(item)
        case "evidence.refiled":
            return .evidenceRefiled(itemID: try r.requiredText(0x01), toCase: try r.requiredText(0x02))
        case "case.hold.set":
            return .legalHoldSet(reason: try r.requiredText(0x01))
        case "case.hold.released":
            return .legalHoldReleased(reason: try r.text(0x01))
        case "evidence.purged":
            return .evidencePurged(Tombstone(itemID: try r.requiredText(0x01), blobSHA256: try r.raw(0x02, length: 32),
                                             retentionClass: try r.requiredText(0x03), expiredAt: try r.requiredSigned(0x04),
                                             reason: try r.requiredText(0x05)))
        case "evidence.erased":
            return .evidenceErased(Erasure(itemID: try r.requiredText(0x01), blobSHA256: try r.raw(0x02, length: 32),
                                           retentionClass: try r.requiredText(0x03), personID: try r.requiredText(0x04),
                                           reason: try r.requiredText(0x05)))
        case "evidence.restricted":
            return .evidenceRestricted(Restriction(itemID: try r.requiredText(0x01), retentionClass: try r.requiredText(0x02),
                                                   personID: try r.requiredText(0x03), until: try r.requiredSigned(0x04),
                                                   reason: try r.requiredText(0x05)))
        default:
            throw CanonicalDecodingError("unknown event kind \"\(kind)\"")
        }
    }
}

/// A signed statement by the device: "entry `sequence` of case `caseID` has hash `entryHash`".
/// Because each entry commits to all before it, one checkpoint vouches for the whole chain up
/// to it; an attacker who rewrites the journal cannot produce a matching signature.
public struct JournalCheckpoint: Sendable, Equatable {
    /// Prepended to the canonical bytes before signing, so a checkpoint signature can never be
    /// mistaken for the signature of anything else the device key signs.
    public static let signingContext = Array("SIGHTLINE CHECKPOINT V1\n".utf8)

    public var caseID: String
    public var sequence: UInt64
    public var entryHash: [UInt8]
    public var signedAt: EpochMilliseconds
    public var publicKey: [UInt8]
    public var signature: [UInt8]

    public init(caseID: String, sequence: UInt64, entryHash: [UInt8], signedAt: EpochMilliseconds, publicKey: [UInt8], signature: [UInt8]) {
        self.caseID = caseID
        self.sequence = sequence
        self.entryHash = entryHash
        self.signedAt = signedAt
        self.publicKey = publicKey
        self.signature = signature
    }

    /// Signs the head of a chain.
    public init(signing entry: JournalEntry, hash: [UInt8], at time: EpochMilliseconds, key: Curve25519.Signing.PrivateKey) throws {
        caseID = entry.caseID
        sequence = entry.sequence
        entryHash = hash
        signedAt = time
        publicKey = Array(key.publicKey.rawRepresentation)
        signature = []
        signature = Array(try key.signature(for: signedMessage))
    }

    public var canonicalBytes: [UInt8] {
        var writer = CanonicalWriter()
        writer.unsigned(0x01, JournalEntry.formatVersion)
        writer.text(0x02, caseID)
        writer.unsigned(0x03, sequence)
        writer.raw(0x04, entryHash)
        writer.signed(0x05, signedAt)
        writer.raw(0x06, publicKey)
        return writer.bytes
    }

    public var signedMessage: [UInt8] { Self.signingContext + canonicalBytes }

    public func isValid(for trustedKey: Curve25519.Signing.PublicKey) -> Bool {
        publicKey == Array(trustedKey.rawRepresentation) && trustedKey.isValidSignature(signature, for: signedMessage)
    }
}

/// The state of a case as its journal tells it; what the database rows must agree with.
public struct CaseProjection: Sendable, Equatable {
    public let caseID: String
    public private(set) var details: CaseDetails
    public private(set) var state: CaseState
    public private(set) var openedAt: EpochMilliseconds
    public private(set) var participants: [Participant] = []
    public private(set) var consents: [ConsentRecord] = []
    /// Every item ever filed here, in journal order, with the sequence of its entry.
    public private(set) var items: [(sequence: UInt64, item: EvidenceItem)] = []
    /// Items that moved to another case: id → target case.
    public private(set) var refiled: [String: String] = [:]
    /// When each item was filed (its entry's time): where retention periods start.
    public private(set) var filedAt: [String: EpochMilliseconds] = [:]
    /// Items whose content was purged, with what the journal keeps of them.
    public private(set) var purged: [String: (sequence: UInt64, tombstone: Tombstone)] = [:]
    /// Items whose content was erased at a person's request.
    public private(set) var erased: [String: (sequence: UInt64, erasure: Erasure)] = [:]
    /// Items kept under a retention duty despite an erasure request: access restricted.
    public private(set) var restricted: [String: (sequence: UInt64, restriction: Restriction)] = [:]
    /// The reason of the legal hold in force, if any.
    public private(set) var legalHold: String?
    public private(set) var entryCount: UInt64 = 0
    public private(set) var headHash: [UInt8] = JournalEntry.genesisHash

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.caseID == rhs.caseID && lhs.details == rhs.details && lhs.state == rhs.state && lhs.openedAt == rhs.openedAt
            && lhs.participants == rhs.participants && lhs.consents == rhs.consents && lhs.refiled == rhs.refiled
            && lhs.items.map(\.item) == rhs.items.map(\.item) && lhs.items.map(\.sequence) == rhs.items.map(\.sequence)
            && lhs.entryCount == rhs.entryCount && lhs.headHash == rhs.headHash && lhs.filedAt == rhs.filedAt
            && lhs.purged.mapValues { $0.tombstone } == rhs.purged.mapValues { $0.tombstone } && lhs.legalHold == rhs.legalHold
            && lhs.erased.mapValues { $0.erasure } == rhs.erased.mapValues { $0.erasure }
            && lhs.restricted.mapValues { $0.restriction } == rhs.restricted.mapValues { $0.restriction }
    }

    /// Whether the item's content is gone on purpose (purged or erased): its blob is no longer
    /// checked, exported or kept.
    public func contentRemoved(_ itemID: String) -> Bool { purged[itemID] != nil || erased[itemID] != nil }

    /// Why an event cannot follow the journal so far.
    public struct Rejection: Error, Equatable, Sendable, CustomStringConvertible {
        public let reason: String
        public init(_ reason: String) { self.reason = reason }
        public var description: String { reason }
    }

    /// Starts a projection from a case's first entry, which must open it.
    public init(first entry: JournalEntry) throws(Rejection) {
        guard entry.sequence == 0, entry.previousHash == JournalEntry.genesisHash else {
            throw Rejection("the first entry must have sequence 0 and the all-zero previous hash")
        }
        guard case .opened(let details) = entry.event else { throw Rejection("the first entry must open the case") }
        caseID = entry.caseID
        self.details = details
        state = .open
        openedAt = entry.recordedAt
        entryCount = 1
        headHash = entry.hash
    }

    public func item(_ id: String) -> EvidenceItem? { items.first { $0.item.id == id }?.item }

    /// The next entry of this chain for `event`; throws if the event is not allowed now.
    public func nextEntry(_ event: CaseEvent, at time: EpochMilliseconds) throws(Rejection) -> JournalEntry {
        let entry = JournalEntry(caseID: caseID, sequence: entryCount, previousHash: headHash, recordedAt: time, event: event)
        var copy = self
        try copy.apply(entry)
        return entry
    }

    /// Folds one more entry in, checking both the chain link and the case rules.
    public mutating func apply(_ entry: JournalEntry, hash precomputed: [UInt8]? = nil) throws(Rejection) {
        guard entry.caseID == caseID else { throw Rejection("entry belongs to case \(entry.caseID), not \(caseID)") }
        guard entry.sequence == entryCount else { throw Rejection("sequence \(entry.sequence) where \(entryCount) was expected") }
        guard entry.previousHash == headHash else { throw Rejection("previous hash does not match entry \(entryCount - 1)'s hash") }
        switch entry.event {
        case .opened:
            throw Rejection("the case is already open")
        case .closed:
            guard state != .closed else { throw Rejection("the case is already closed") }
            state = .closed
        case .reopened:
            guard state == .closed else { throw Rejection("only a closed case can be reopened") }
            state = .reopened
        case .participantAdded(let participant):
            guard !participants.contains(where: { $0.id == participant.id }) else {
                throw Rejection("participant \(participant.id) is already in the case")
            }
            participants.append(participant)
        case .consentRecorded(let consent):
            guard participants.contains(where: { $0.id == consent.participantID }) else {
                throw Rejection("consent from \(consent.participantID), who is not a participant")
            }
            consents.append(consent)
        case .evidenceAdded(let item):
            guard state.acceptsEvidence else { throw Rejection("the case is closed: reopen it before filing evidence") }
            guard self.item(item.id) == nil else { throw Rejection("item \(item.id) is already filed") }
            if let corrected = item.corrects, self.item(corrected) == nil {
                throw Rejection("item \(item.id) corrects \(corrected), which is not in this case")
            }
            guard (item.blob != nil) == item.kind.needsBlob else {
                throw Rejection(item.kind.needsBlob ? "a \(item.kind.rawValue) needs a blob" : "a \(item.kind.rawValue) has no blob")
            }
            guard item.kind != .callRecord || item.call != nil else { throw Rejection("a call record needs its call") }
            items.append((entry.sequence, item))
            filedAt[item.id] = entry.recordedAt
        case .evidenceRefiled(let itemID, let toCase):
            guard item(itemID) != nil else { throw Rejection("item \(itemID) is not in this case") }
            guard refiled[itemID] == nil else { throw Rejection("item \(itemID) was already re-filed") }
            guard !contentRemoved(itemID) else { throw Rejection("item \(itemID) was purged or erased") }
            guard toCase != caseID else { throw Rejection("item \(itemID) cannot be re-filed into its own case") }
            refiled[itemID] = toCase
        case .legalHoldSet(let reason):
            guard legalHold == nil else { throw Rejection("the case is already on legal hold") }
            legalHold = reason
        case .legalHoldReleased:
            guard legalHold != nil else { throw Rejection("the case is not on legal hold") }
            legalHold = nil
        case .evidencePurged(let tombstone):
            guard legalHold == nil else { throw Rejection("the case is on legal hold: nothing in it may be purged") }
            guard let item = item(tombstone.itemID) else { throw Rejection("item \(tombstone.itemID) is not in this case") }
            guard !contentRemoved(item.id) else { throw Rejection("item \(item.id) was already purged or erased") }
            guard item.retentionClass == tombstone.retentionClass, tombstone.blobSHA256 == item.blob?.sha256 else {
                throw Rejection("the tombstone of item \(item.id) does not match the item's retention class or content hash")
            }
            guard entry.recordedAt >= tombstone.expiredAt else {
                throw Rejection("item \(item.id) was purged before its retention period ended")
            }
            purged[item.id] = (entry.sequence, tombstone)
        case .evidenceErased(let erasure):
            guard legalHold == nil else { throw Rejection("the case is on legal hold: nothing in it may be erased") }
            guard let item = item(erasure.itemID) else { throw Rejection("item \(erasure.itemID) is not in this case") }
            guard !contentRemoved(item.id) else { throw Rejection("item \(item.id) was already purged or erased") }
            guard item.retentionClass == erasure.retentionClass, erasure.blobSHA256 == item.blob?.sha256 else {
                throw Rejection("the erasure of item \(item.id) does not match the item's retention class or content hash")
            }
            erased[item.id] = (entry.sequence, erasure)
        case .evidenceRestricted(let restriction):
            guard let item = item(restriction.itemID) else { throw Rejection("item \(restriction.itemID) is not in this case") }
            guard !contentRemoved(item.id) else { throw Rejection("item \(item.id) was purged or erased") }
            guard restricted[item.id] == nil else { throw Rejection("item \(item.id) is already restricted") }
            guard item.retentionClass == restriction.retentionClass else {
                throw Rejection("the restriction of item \(item.id) does not match the item's retention class")
            }
            restricted[item.id] = (entry.sequence, restriction)
        }
        entryCount += 1
        headHash = precomputed ?? entry.hash
    }
}

/// A journal entry as stored: its claimed hash beside its canonical bytes.
public struct StoredJournalEntry: Sendable, Equatable {
    public var sequence: UInt64
    public var hash: [UInt8]
    public var canonical: [UInt8]

    public init(sequence: UInt64, hash: [UInt8], canonical: [UInt8]) {
        self.sequence = sequence
        self.hash = hash
        self.canonical = canonical
    }

    public init(_ entry: JournalEntry) {
        self.init(sequence: entry.sequence, hash: entry.hash, canonical: entry.canonicalBytes)
    }
}

/// The first place where a case's evidence stops being trustworthy.
public struct BrokenLink: Error, Equatable, Sendable, CustomStringConvertible {
    public var caseID: String
    /// The entry at fault; nil when the fault is not in one entry (e.g. no entries at all).
    public var sequence: UInt64?
    public var reason: String

    public init(caseID: String, sequence: UInt64?, reason: String) {
        self.caseID = caseID
        self.sequence = sequence
        self.reason = reason
    }

    public var description: String {
        if let sequence { return "case \(caseID): entry \(sequence): \(reason)" }
        return "case \(caseID): \(reason)"
    }
}

/// Recomputes a case's chain from nothing but the stored bytes, the device's public key and
/// a way to check blobs, and names the first link that does not hold.
public enum JournalVerifier {
    /// - Parameter checkBlob: returns nil when the blob's plaintext has the referenced SHA-256
    ///   and size, otherwise what is wrong with it. Called in journal order.
    public static func verify(
        caseID: String, entries: [StoredJournalEntry], checkpoints: [JournalCheckpoint], trustedKey: Curve25519.Signing.PublicKey,
        checkBlob: (BlobReference) -> String?
    ) -> Result<CaseProjection, BrokenLink> {
        guard !entries.isEmpty else { return .failure(BrokenLink(caseID: caseID, sequence: nil, reason: "the journal has no entries")) }
        // Purged and erased content is gone on purpose: its tombstone, later in the chain, says so.
        var purgedItems: Set<String> = []
        for stored in entries {
            switch (try? JournalEntry(canonical: stored.canonical))?.event {
            case .evidencePurged(let tombstone): purgedItems.insert(tombstone.itemID)
            case .evidenceErased(let erasure): purgedItems.insert(erasure.itemID)
            default: break
            }
        }
        var projection: CaseProjection?
        for (index, stored) in entries.enumerated() {
            func broken(_ reason: String) -> Result<CaseProjection, BrokenLink> {
                .failure(BrokenLink(caseID: caseID, sequence: UInt64(index), reason: reason))
            }
            guard stored.sequence == UInt64(index) else { return broken("stored with sequence \(stored.sequence)") }
            let entry: JournalEntry
            do {
                entry = try JournalEntry(canonical: stored.canonical)
            } catch {
                return broken("cannot be decoded: \(error)")
            }
            let hash = Array(SHA256.hash(data: stored.canonical))
            guard hash == stored.hash else { return broken("its stored hash does not match its content") }
            guard entry.caseID == caseID else { return broken("it belongs to case \(entry.caseID)") }
            do throws(CaseProjection.Rejection) {
                if var current = projection {
                    try current.apply(entry, hash: hash)
                    projection = current
                } else {
                    projection = try CaseProjection(first: entry)
                }
            } catch {
                return broken(error.reason)
            }
            if case .evidenceAdded(let item) = entry.event, let blob = item.blob, !purgedItems.contains(item.id), let problem = checkBlob(blob) {
                return broken("blob \(blob.hex) of item \(item.id): \(problem)")
            }
        }
        guard let projection else { return .failure(BrokenLink(caseID: caseID, sequence: nil, reason: "the journal has no entries")) }
        var headSigned = false
        for checkpoint in checkpoints {
            func broken(_ reason: String) -> Result<CaseProjection, BrokenLink> {
                .failure(BrokenLink(caseID: caseID, sequence: checkpoint.sequence, reason: reason))
            }
            guard checkpoint.caseID == caseID, checkpoint.sequence < UInt64(entries.count) else {
                return broken("a checkpoint names an entry that does not exist")
            }
            guard checkpoint.entryHash == entries[Int(checkpoint.sequence)].hash else {
                return broken("the signed checkpoint holds a different hash")
            }
            guard checkpoint.isValid(for: trustedKey) else { return broken("the checkpoint's signature is not valid for this device's key") }
            if checkpoint.sequence == UInt64(entries.count - 1) { headSigned = true }
        }
        guard headSigned else {
            return .failure(BrokenLink(caseID: caseID, sequence: UInt64(entries.count - 1), reason: "the last entry is not covered by a signed checkpoint"))
        }
        return .success(projection)
    }
}
