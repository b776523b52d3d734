// MARK: Service cases

extension ControlAPI {
    /// `GET` lists the cases, `POST` (a `CaseOpenRequest`) opens one.
    public static let casesPath = "/v1/cases"

    /// `GET /v1/cases/ID` shows a case; `POST …/close`, `…/reopen` (a `CaseStateRequest`) change
    /// its state; `GET …/verify` checks it (`ID` = `all` checks every case); `POST …/export`
    /// answers with the case's export ZIP.
    public static func casePath(_ id: String, _ action: String? = nil) -> String {
        "/v1/cases/\(id)" + (action.map { "/\($0)" } ?? "")
    }

    /// `POST` purges expired evidence now (the daemon also does it every
    /// `retention.purge_interval_hours`).
    public static let purgePath = "/v1/retention/purge"

    /// `POST` answers with a ZIP of everything the archive holds about one person (a participant
    /// id): GDPR Art. 15.
    public static func personExportPath(_ person: String) -> String { "/v1/privacy/persons/\(person)/export" }
    /// `POST`: erase what no retention duty keeps, restrict the rest (`PersonErasureReport`).
    public static func personErasePath(_ person: String) -> String { "/v1/privacy/persons/\(person)/erase" }

    /// `GET` shows the sync state (`SyncReport` without a pass), `POST` runs a sync pass now
    /// and answers when it ended (`SyncReport`).
    public static let syncPath = "/v1/sync"

    /// The case id that stands for every case in `verify`.
    public static let allCases = "all"
}

public struct CaseOpenRequest: Codable, Sendable, Equatable {
    public var reference: String
    public var asset: String?
    public var site: String?
    public var title: String?

    public init(reference: String, asset: String? = nil, site: String? = nil, title: String? = nil) {
        self.reference = reference
        self.asset = asset
        self.site = site
        self.title = title
    }
}

/// `POST /v1/cases/ID/refile`: moves an item of case ID (typically the unassigned case) to another case.
public struct CaseRefileRequest: Codable, Sendable, Equatable {
    public var itemId: String
    public var toCaseId: String

    /// Single words: the daemon decodes request bodies without snake_case conversion.
    enum CodingKeys: String, CodingKey {
        case itemId = "item"
        case toCaseId = "to"
    }

    public init(itemId: String, toCaseId: String) {
        self.itemId = itemId
        self.toCaseId = toCaseId
    }
}

/// `POST /v1/cases/ID/participants`. Single-word keys: request bodies are decoded as written.
public struct CaseParticipantRequest: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// technician, expert, customer, supervisor or observer.
    public var role: String

    public init(id: String, name: String, role: String) {
        self.id = id
        self.name = name
        self.role = role
    }
}

/// `POST /v1/cases/ID/consents`: who agreed (or refused) to what, for which call.
public struct CaseConsentRequest: Codable, Sendable, Equatable {
    public var person: String
    /// video, audio, recording, photo or data-processing.
    public var scope: String
    public var granted: Bool
    public var call: String?

    public init(person: String, scope: String, granted: Bool, call: String? = nil) {
        self.person = person
        self.scope = scope
        self.granted = granted
        self.call = call
    }
}

public struct CaseStateRequest: Codable, Sendable, Equatable {
    public var reason: String?
    public init(reason: String? = nil) { self.reason = reason }
}

/// One line of `sightctl case list`. Ids are spelled `Id` so that the API's snake_case keys
/// (`case_id`) map back to the same names.
public struct CaseSummary: Codable, Sendable, Equatable {
    public var id: String
    public var reference: String
    public var asset: String?
    public var site: String?
    public var title: String?
    /// `open`, `closed` or `reopened`.
    public var state: String
    public var unassigned: Bool
    /// Milliseconds since the Unix epoch.
    public var openedAt: Int64
    public var entries: UInt64
    public var items: Int
    /// The reason of the legal hold in force.
    public var legalHold: String?

    /// A case whose journal cannot be read: listed with the reason instead of hidden.
    public init(unreadable id: String, reason: String) {
        self.id = id
        reference = "(unreadable: \(reason))"
        state = "unknown"
        unassigned = false
        openedAt = 0
        entries = 0
        items = 0
    }

    public init(projection: CaseProjection) {
        id = projection.caseID
        reference = projection.details.reference
        asset = projection.details.asset
        site = projection.details.site
        title = projection.details.title
        state = projection.state.rawValue
        unassigned = projection.details.unassigned
        openedAt = projection.openedAt
        entries = projection.entryCount
        items = projection.items.count
        legalHold = projection.legalHold
    }
}

public struct CaseParticipantInfo: Codable, Sendable, Equatable {
    public var participantId: String
    public var name: String
    public var role: String
}

public struct CaseConsentInfo: Codable, Sendable, Equatable {
    public var participantId: String
    public var scope: String
    public var granted: Bool
    public var givenAt: Int64
    public var callId: String?
}

public struct CaseItemInfo: Codable, Sendable, Equatable {
    public var itemId: String
    public var kind: String
    public var capturedAt: Int64
    public var mediaType: String?
    public var sha256: String?
    public var size: UInt64?
    public var text: String?
    public var corrects: String?
    public var callId: String?
    public var callParticipantIds: [String]?
    public var callEncryption: String?
    public var refiledFromCaseId: String?
    public var refiledToCaseId: String?
    public var retentionClass: String?
    /// The tombstone's reason when the item's content was purged.
    public var purged: String?
    /// Why the content was erased at a person's request.
    public var erased: String?
    /// Why the item is kept but restricted after an erasure request.
    public var restricted: String?
}

/// `sightctl case show`.
public struct CaseDetail: Codable, Sendable, Equatable {
    public var summary: CaseSummary
    public var headHash: String
    public var participants: [CaseParticipantInfo]
    public var consents: [CaseConsentInfo]
    public var items: [CaseItemInfo]
    /// Nil when sync is off (`sync.url` empty).
    public var sync: ArchiveSyncCounts?

    public init(projection: CaseProjection) {
        summary = CaseSummary(projection: projection)
        headHash = projection.headHash.hexString
        participants = projection.participants.map { CaseParticipantInfo(participantId: $0.id, name: $0.name, role: $0.role.rawValue) }
        consents = projection.consents.map {
            CaseConsentInfo(participantId: $0.participantID, scope: $0.scope.rawValue, granted: $0.granted, givenAt: $0.givenAt, callId: $0.callID)
        }
        items = projection.items.map { _, item in
            CaseItemInfo(itemId: item.id, kind: item.kind.rawValue, capturedAt: item.capturedAt, mediaType: item.mediaType,
                         sha256: item.blob?.hex, size: item.blob?.size, text: item.text, corrects: item.corrects, callId: item.call?.callID,
                         callParticipantIds: item.call?.participantIDs, callEncryption: item.call?.encryption,
                         refiledFromCaseId: item.refiledFrom?.caseID, refiledToCaseId: projection.refiled[item.id],
                         retentionClass: item.retentionClass, purged: projection.purged[item.id]?.tombstone.reason,
                         erased: projection.erased[item.id]?.erasure.reason, restricted: projection.restricted[item.id]?.restriction.reason)
        }
    }
}

/// The outcome of `sightctl case verify` for one case.
public struct CaseVerification: Codable, Sendable, Equatable {
    public var caseId: String
    public var intact: Bool
    /// The first broken entry, when the fault lies in one.
    public var sequence: UInt64?
    public var problem: String?
    public var entries: UInt64?
    public var items: Int?

    public init(_ result: Result<CaseProjection, BrokenLink>, caseID: String) {
        caseId = caseID
        switch result {
        case .success(let projection):
            intact = true
            entries = projection.entryCount
            items = projection.items.count
        case .failure(let link):
            intact = false
            sequence = link.sequence
            problem = link.description
        }
    }
}

/// What `POST /v1/retention/purge` did.
public struct PurgeReport: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        public var caseId: String
        public var itemId: String
        public var retentionClass: String
        public var expiredAt: Int64

        public init(caseId: String, itemId: String, retentionClass: String, expiredAt: Int64) {
            self.caseId = caseId
            self.itemId = itemId
            self.retentionClass = retentionClass
            self.expiredAt = expiredAt
        }
    }

    public var purged: [Item]

    public init(purged: [Item]) { self.purged = purged }
}

/// What `POST /v1/privacy/persons/ID/erase` did: one line per item that referenced the person.
public struct PersonErasureReport: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        public var caseId: String
        public var itemId: String
        /// `erased`, `restricted`, or `unchanged` (already erased, purged or restricted).
        public var action: String
        public var retentionClass: String?
        public var reason: String

        public init(caseId: String, itemId: String, action: String, retentionClass: String?, reason: String) {
            self.caseId = caseId
            self.itemId = itemId
            self.action = action
            self.retentionClass = retentionClass
            self.reason = reason
        }
    }

    public var personId: String
    public var items: [Item]

    public init(personId: String, items: [Item]) {
        self.personId = personId
        self.items = items
    }
}

/// Sync state of the device's archive: entries and blobs the organisation's archive confirmed,
/// and what waits. Keys follow the API's snake_case conversion.
public struct ArchiveSyncCounts: Sendable, Equatable, Codable {
    public var syncedEntries: UInt64
    public var pendingEntries: UInt64
    public var syncedBlobs: UInt64
    public var pendingBlobs: UInt64
    /// Blobs whose local ciphertext was removed after the server confirmed them.
    public var removedBlobs: UInt64

    public init(syncedEntries: UInt64 = 0, pendingEntries: UInt64 = 0, syncedBlobs: UInt64 = 0, pendingBlobs: UInt64 = 0, removedBlobs: UInt64 = 0) {
        self.syncedEntries = syncedEntries
        self.pendingEntries = pendingEntries
        self.syncedBlobs = syncedBlobs
        self.pendingBlobs = pendingBlobs
        self.removedBlobs = removedBlobs
    }

    public static func + (lhs: Self, rhs: Self) -> Self {
        Self(syncedEntries: lhs.syncedEntries + rhs.syncedEntries, pendingEntries: lhs.pendingEntries + rhs.pendingEntries,
             syncedBlobs: lhs.syncedBlobs + rhs.syncedBlobs, pendingBlobs: lhs.pendingBlobs + rhs.pendingBlobs,
             removedBlobs: lhs.removedBlobs + rhs.removedBlobs)
    }
}

/// The background sync's last attempt, as the daemon reports it.
public struct ArchiveSyncStatus: Sendable, Codable, Equatable {
    public var url: String
    public var lastAttemptAt: Int64?
    public var lastSuccessAt: Int64?
    /// The last pass's failure; nil after a pass that succeeded.
    public var lastError: String?
    public var consecutiveFailures: Int

    public init(url: String, lastAttemptAt: Int64? = nil, lastSuccessAt: Int64? = nil, lastError: String? = nil, consecutiveFailures: Int = 0) {
        self.url = url
        self.lastAttemptAt = lastAttemptAt
        self.lastSuccessAt = lastSuccessAt
        self.lastError = lastError
        self.consecutiveFailures = consecutiveFailures
    }
}

/// `GET`/`POST /v1/sync`: what a pass uploaded (POST only), the loop's state and the counts.
public struct SyncReport: Codable, Sendable, Equatable {
    public var status: ArchiveSyncStatus
    public var counts: ArchiveSyncCounts
    public var uploadedEntries: UInt64?
    public var uploadedBlobs: UInt64?
    public var uploadedBytes: UInt64?
    public var removedBlobs: UInt64?

    public init(status: ArchiveSyncStatus, counts: ArchiveSyncCounts, uploadedEntries: UInt64? = nil, uploadedBlobs: UInt64? = nil,
                uploadedBytes: UInt64? = nil, removedBlobs: UInt64? = nil) {
        self.status = status
        self.counts = counts
        self.uploadedEntries = uploadedEntries
        self.uploadedBlobs = uploadedBlobs
        self.uploadedBytes = uploadedBytes
        self.removedBlobs = removedBlobs
    }
}
