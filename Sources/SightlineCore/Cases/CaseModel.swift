/// Milliseconds since 1970-01-01T00:00:00Z: the one time format of the journal, exact and
/// independent of time zones and floating point.
public typealias EpochMilliseconds = Int64

/// Where a service case stands. A closed case takes no new evidence until it is reopened.
public enum CaseState: String, Sendable, Codable, Equatable, CaseIterable {
    case open, closed, reopened

    public var acceptsEvidence: Bool { self != .closed }
}

/// What a case is about: the external ticket or work order it belongs to and what was
/// serviced where.
public struct CaseDetails: Sendable, Equatable, Codable {
    /// The ticket or work-order number in the customer's own system.
    public var reference: String
    public var asset: String?
    public var site: String?
    public var title: String?
    /// The automatic case that takes evidence while no case is open; its items can be re-filed.
    public var unassigned: Bool

    public init(reference: String, asset: String? = nil, site: String? = nil, title: String? = nil, unassigned: Bool = false) {
        self.reference = reference
        self.asset = asset
        self.site = site
        self.title = title
        self.unassigned = unassigned
    }
}

/// The part someone plays in a case.
public enum ParticipantRole: String, Sendable, Codable, Equatable, CaseIterable {
    case technician, expert, customer, supervisor, observer
}

public struct Participant: Sendable, Equatable, Codable {
    /// Stable within the case; consents and call records refer to it.
    public var id: String
    public var name: String
    public var role: ParticipantRole

    public init(id: String, name: String, role: ParticipantRole) {
        self.id = id
        self.name = name
        self.role = role
    }
}

/// Who agreed (or refused) to what, when, and for which call (GDPR Art. 6/7: consent must be
/// demonstrable).
public struct ConsentRecord: Sendable, Equatable, Codable {
    public enum Scope: String, Sendable, Codable, Equatable, CaseIterable {
        case video, audio, recording, photo, dataProcessing = "data-processing"
    }

    public var participantID: String
    public var scope: Scope
    public var granted: Bool
    public var givenAt: EpochMilliseconds
    public var callID: String?

    public init(participantID: String, scope: Scope, granted: Bool, givenAt: EpochMilliseconds, callID: String? = nil) {
        self.participantID = participantID
        self.scope = scope
        self.granted = granted
        self.givenAt = givenAt
        self.callID = callID
    }
}

public enum EvidenceKind: String, Sendable, Codable, Equatable, CaseIterable {
    case photo
    case videoRecording = "video-recording"
    case audioNote = "audio-note"
    case callRecord = "call-record"
    case voiceCommand = "voice-command"
    case expertSnapshot = "expert-snapshot"
    case textNote = "text-note"

    /// Kinds whose substance is a file (image, recording); the others are journal text only.
    public var needsBlob: Bool {
        switch self {
        case .photo, .videoRecording, .audioNote, .expertSnapshot: true
        case .callRecord, .voiceCommand, .textNote: false
        }
    }
}

/// The content of a file by its SHA-256 (of the plaintext): the blob's address in the archive.
public struct BlobReference: Sendable, Equatable, Hashable, Codable {
    public var sha256: [UInt8]
    public var size: UInt64

    public init(sha256: [UInt8], size: UInt64) {
        self.sha256 = sha256
        self.size = size
    }

    public var hex: String { sha256.hexString }
}

/// A call as the case remembers it.
public struct CallSummary: Sendable, Equatable, Codable {
    public var callID: String
    public var startedAt: EpochMilliseconds
    public var endedAt: EpochMilliseconds?
    public var participantIDs: [String]
    /// E.g. "sframe-aes128gcm" or "none": what protected the media in transit.
    public var encryption: String

    public init(callID: String, startedAt: EpochMilliseconds, endedAt: EpochMilliseconds?, participantIDs: [String], encryption: String) {
        self.callID = callID
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.participantIDs = participantIDs
        self.encryption = encryption
    }
}

/// Where a re-filed item came from: the entry in the other case's journal that filed it first.
public struct RefileOrigin: Sendable, Equatable, Codable {
    public var caseID: String
    public var entryHash: [UInt8]

    public init(caseID: String, entryHash: [UInt8]) {
        self.caseID = caseID
        self.entryHash = entryHash
    }
}

/// One piece of evidence. Never changed once filed: a correction is a new item whose
/// `corrects` names the one it corrects, so the original stays recognisable (GoBD).
public struct EvidenceItem: Sendable, Equatable, Codable {
    public var id: String
    public var kind: EvidenceKind
    public var capturedAt: EpochMilliseconds
    public var mediaType: String?
    public var blob: BlobReference?
    /// A note's text, a voice command's transcript, a caption.
    public var text: String?
    public var corrects: String?
    public var call: CallSummary?
    public var authorID: String?
    public var refiledFrom: RefileOrigin?
    /// The retention class (RETENTION.md) that decides when the item may be purged.
    public var retentionClass: String?

    public init(
        id: String, kind: EvidenceKind, capturedAt: EpochMilliseconds, mediaType: String? = nil, blob: BlobReference? = nil,
        text: String? = nil, corrects: String? = nil, call: CallSummary? = nil, authorID: String? = nil, refiledFrom: RefileOrigin? = nil,
        retentionClass: String? = nil
    ) {
        self.id = id
        self.kind = kind
        self.capturedAt = capturedAt
        self.mediaType = mediaType
        self.blob = blob
        self.text = text
        self.corrects = corrects
        self.call = call
        self.authorID = authorID
        self.refiledFrom = refiledFrom
        self.retentionClass = retentionClass
    }
}

extension EvidenceItem {
    /// Whether the item is about the person (a participant id): they made it, or it records a
    /// call they took part in. What a person export gives them and an erasure request covers.
    public func references(person: String) -> Bool {
        authorID == person || call?.participantIDs.contains(person) == true
    }
}

/// What stays of a purged item: which item, the hash of the content that was deleted, under
/// which retention class it expired and when, and why. The journal keeps it for good.
public struct Tombstone: Sendable, Equatable, Codable {
    public var itemID: String
    public var blobSHA256: [UInt8]?
    public var retentionClass: String
    public var expiredAt: EpochMilliseconds
    public var reason: String

    public init(itemID: String, blobSHA256: [UInt8]?, retentionClass: String, expiredAt: EpochMilliseconds, reason: String) {
        self.itemID = itemID
        self.blobSHA256 = blobSHA256
        self.retentionClass = retentionClass
        self.expiredAt = expiredAt
        self.reason = reason
    }
}

/// What stays of an item whose content was erased at a person's request (Art. 17 GDPR) because
/// no retention duty kept it: which item, the hash of the deleted content, its class, who asked
/// and why it could be erased. Like a purge tombstone, it stays in the chain for good.
public struct Erasure: Sendable, Equatable, Codable {
    public var itemID: String
    public var blobSHA256: [UInt8]?
    public var retentionClass: String
    /// The participant id of the person whose request this was.
    public var personID: String
    public var reason: String

    public init(itemID: String, blobSHA256: [UInt8]?, retentionClass: String, personID: String, reason: String) {
        self.itemID = itemID
        self.blobSHA256 = blobSHA256
        self.retentionClass = retentionClass
        self.personID = personID
        self.reason = reason
    }
}

/// An erasure request that a retention duty overrides (Art. 17 (3) (b) GDPR): the item is kept
/// but restricted (Art. 18 GDPR, § 35 (3) BDSG) until `until`, when its period ends and the
/// purge removes it. Restricted content leaves the device only in an export that asks for it.
public struct Restriction: Sendable, Equatable, Codable {
    public var itemID: String
    public var retentionClass: String
    public var personID: String
    /// When the retention duty ends.
    public var until: EpochMilliseconds
    public var reason: String

    public init(itemID: String, retentionClass: String, personID: String, until: EpochMilliseconds, reason: String) {
        self.itemID = itemID
        self.retentionClass = retentionClass
        self.personID = personID
        self.until = until
        self.reason = reason
    }
}

/// Everything that can happen to a case; each is one journal entry.
public enum CaseEvent: Sendable, Equatable {
    case opened(CaseDetails)
    case closed(reason: String?)
    case reopened(reason: String?)
    case participantAdded(Participant)
    case consentRecorded(ConsentRecord)
    case evidenceAdded(EvidenceItem)
    /// The item leaves this case for another; the other case's journal files it anew with a
    /// `refiledFrom` pointing back here.
    case evidenceRefiled(itemID: String, toCase: String)
    /// A legal hold: nothing in the case is purged until it is released.
    case legalHoldSet(reason: String)
    case legalHoldReleased(reason: String?)
    /// The item's content was deleted because its retention period ended.
    case evidencePurged(Tombstone)
    /// The item's content was deleted at a person's request; no retention duty applied.
    case evidenceErased(Erasure)
    /// A person asked for erasure but a retention duty keeps the item: access is restricted.
    case evidenceRestricted(Restriction)

    /// The event's name in the canonical encoding.
    public var kindName: String {
        switch self {
        case .opened: "case.opened"
        case .closed: "case.closed"
        case .reopened: "case.reopened"
        case .participantAdded: "participant.added"
        case .consentRecorded: "consent.recorded"
        case .evidenceAdded: "evidence.added"
        case .evidenceRefiled: "evidence.refiled"
        case .legalHoldSet: "case.hold.set"
        case .legalHoldReleased: "case.hold.released"
        case .evidencePurged: "evidence.purged"
        case .evidenceErased: "evidence.erased"
        case .evidenceRestricted: "evidence.restricted"
        }
    }
}

extension Sequence<UInt8> {
    /// Lower-case hex, two digits per byte.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension Array<UInt8> {
    /// Parses lower- or upper-case hex; nil for anything else.
    public init?(hex: some StringProtocol) {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = value(chars[index]), let low = value(chars[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self = bytes
    }
}
