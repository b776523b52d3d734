import AsyncHTTPClient
import Crypto
import Dispatch
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import SightlineArchive
import SightlineCore
import SightlineSync
import SightlineSystem
import Synchronization

/// The daemon's side of the evidence archive (`STATE/archive`). SQLite commits and fsyncs
/// block, so every archive call runs on one serial queue of its own, never on the cooperative
/// pool. An archive that cannot be opened leaves the rest of the daemon running and answers
/// case requests with the reason.
final class CaseService: Sendable {
    private let archive: Result<EvidenceArchive, ArchiveFailure>
    private let queue = DispatchQueue(label: "sightline.archive")
    /// The background sync to the organisation's archive; nil when `sync.url` is empty or the
    /// archive or token cannot be read (`syncUnavailableReason` says why).
    let sync: ArchiveSyncLoop?
    let syncUnavailableReason: String?
    /// The HTTP client for an archive behind `sync.ca_file`; shut down by `ArchiveSyncService`.
    let syncHTTPClient: HTTPClient?

    struct ArchiveFailure: Error, CustomStringConvertible {
        let description: String
    }

    init(stateDirectory: String, identity: Curve25519.Signing.PrivateKey, retention: RetentionPolicy,
         sync settings: DaemonConfiguration.SyncConfiguration? = nil, logger: Logger) {
        let keys = ArchiveKeyStore(keyFilePath: (stateDirectory as NSString).appendingPathComponent("archive.key"))
        do {
            let key = try keys.loadOrCreate()
            archive = .success(try EvidenceArchive(directory: (stateDirectory as NSString).appendingPathComponent("archive"),
                                                   archiveKey: key, signingKey: identity, retention: retention,
                                                   reportRenderer: ReportRenderer.find()))
            logger.info("evidence archive ready", metadata: ["key": "\(keys.source())"])
        } catch {
            logger.error("evidence archive unavailable", metadata: ["error": "\(error)"])
            archive = .failure(ArchiveFailure(description: "the evidence archive is unavailable: \(error)"))
        }
        (sync, syncHTTPClient, syncUnavailableReason) = Self.makeSync(settings, archive: try? archive.get(), logger: logger)
    }

    private static func makeSync(_ settings: DaemonConfiguration.SyncConfiguration?, archive: EvidenceArchive?,
                                 logger: Logger) -> (ArchiveSyncLoop?, HTTPClient?, String?) {
        guard let settings else { return (nil, nil, nil) }
        guard let archive else { return (nil, nil, "sync is off: the evidence archive is unavailable") }
        let token: String
        let http: HTTPClient?
        do {
            token = try DeviceTokenFile.read(settings.tokenFile, server: "archive")
            http = try settings.caFile.map { file throws(ArchiveSyncError) in try ArchiveSyncClient.httpClient(trusting: file) }
        } catch {
            logger.error("sync unavailable", metadata: ["error": "\(error)"])
            return (nil, nil, "sync is off: \(error)")
        }
        let client = ArchiveSyncClient(archive: archive, target: ArchiveSyncTarget(url: settings.url, token: token,
                                                                                   deleteAfterSync: settings.deleteAfterSync),
                                       http: http ?? .shared)
        logger.info("sync configured", metadata: [
            "url": "\(settings.url)", "interval_s": "\(settings.intervalSeconds)", "delete_after_sync": "\(settings.deleteAfterSync)",
        ])
        let metrics = SyncMetrics()
        let loop = ArchiveSyncLoop(client: client, interval: .seconds(settings.intervalSeconds)) { result in
            metrics.record(result)
            switch result {
            case .success(let pass) where pass.entries > 0 || pass.blobs > 0:
                logger.info("sync: uploaded to the organisation's archive", metadata: [
                    "entries": "\(pass.entries)", "blobs": "\(pass.blobs)", "bytes": "\(pass.bytes)", "removed": "\(pass.removedBlobs)",
                ])
            case .success: break
            case .failure(let error): logger.warning("sync failed; evidence stays on the device and sync retries", metadata: ["error": "\(error)"])
            }
        }
        return (loop, http, nil)
    }

    /// Bumped whenever a case opens, closes or reopens, so a running call can show the
    /// expert the reference of the case it is now filed in.
    private let openCasesGeneration = Atomic<UInt64>(0)
    var openCasesVersion: UInt64 { openCasesGeneration.load(ordering: .acquiring) }
    func noteOpenCasesChanged() { openCasesGeneration.add(1, ordering: .releasing) }

    /// The external reference of the case new evidence goes into; nil for the unassigned case
    /// or an archive that cannot answer.
    func openCaseReference() async -> String? {
        let reference = try? await perform { archive in try archive.openCaseID().map { try archive.projection($0).details.reference } }
        return reference ?? nil
    }

    /// The sync loop, or the reason there is none as an HTTP error.
    func syncLoop() throws -> ArchiveSyncLoop {
        guard let sync else {
            throw HTTPError(.conflict, message: syncUnavailableReason ?? "sync is off: set sync.url and sync.token_file in the configuration (docs/CONFIGURATION.md)")
        }
        return sync
    }

    var unavailableReason: String? {
        if case .failure(let failure) = archive { return failure.description }
        return nil
    }

    /// Runs `body` on the archive queue; archive errors become HTTP errors with their advice.
    func perform<Value: Sendable>(_ body: @escaping @Sendable (EvidenceArchive) throws -> Value) async throws -> Value {
        let archive: EvidenceArchive
        switch self.archive {
        case .success(let opened): archive = opened
        case .failure(let failure): throw HTTPError(.serviceUnavailable, message: failure.description)
        }
        let result: Result<Value, any Error> = await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: Result { try body(archive) }) }
        }
        do {
            return try result.get()
        } catch let error as ArchiveError {
            switch error {
            case .unknownCase: throw HTTPError(.notFound, message: error.description)
            case .rejected: throw HTTPError(.conflict, message: error.description)
            case .storage(let system) where system.errno == ENOSPC || system.errno == EDQUOT:
                throw HTTPError(.init(code: 507, reasonPhrase: "Insufficient Storage"), message: error.description)
            default: throw HTTPError(.internalServerError, message: error.description)
            }
        }
    }

    /// Writes an export of what `caseIDs` hold (every case when nil) — `write` gets the archive
    /// and a path in its scratch directory — and streams the ZIP as the response, removing the
    /// file once sent (or once the client goes away). Content removed after sync
    /// (sync.delete_after_sync) is fetched back from the organisation's archive first, and no
    /// sync pass removes it again until the export is written.
    func exportResponse(of caseIDs: [String]?, _ write: @escaping @Sendable (EvidenceArchive, String) throws -> Void) async throws -> Response {
        let removed = try await perform { archive in
            try (caseIDs ?? archive.caseIDs()).filter { id in try archive.syncedBlobs(id).values.contains { $0.removed } }
        }
        guard let sync, !removed.isEmpty else { return try await writeExport(write) }
        do {
            return try await sync.withContentOnDevice(of: removed) { try await self.writeExport(write) }
        } catch let error as ArchiveSyncError {
            throw HTTPError(.serviceUnavailable, message: "content of case \(removed.joined(separator: ", ")) was removed from this device after sync "
                            + "and could not be fetched back for the export: \(error)")
        }
    }

    private func writeExport(_ write: @escaping @Sendable (EvidenceArchive, String) throws -> Void) async throws -> Response {
        let (path, size) = try await perform { archive -> (String, Int) in
            let path = (archive.directory as NSString).appendingPathComponent("tmp/export-\(UUID().uuidString).zip")
            try write(archive, path)
            var info = stat()
            guard stat(path, &info) == 0 else { throw ArchiveError.storage(SystemError("stat", path: path, errno: errno)) }
            return (path, Int(info.st_size))
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/zip"
        return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: size) { writer in
            defer { unlink(path) }
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw HTTPError(.internalServerError, message: "export \(path) vanished before it was sent")
            }
            defer { try? handle.close() }
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            try await writer.finish(nil)
        })
    }
}

/// Prometheus counters of the sync to the organisation's archive.
struct SyncMetrics: Sendable {
    private let bytes = Counter(label: "sightline_sync_uploaded_bytes_total")
    private let entries = Counter(label: "sightline_sync_uploaded_entries_total")
    private let failures = Counter(label: "sightline_sync_failures_total")

    func record(_ result: Result<ArchiveSyncPass, ArchiveSyncError>) {
        switch result {
        case .success(let pass):
            bytes.increment(by: Int64(clamping: pass.bytes))
            entries.increment(by: Int64(clamping: pass.entries))
        case .failure:
            failures.increment()
        }
    }
}

/// Runs the sync loop as one of the daemon's services; a pass in flight is cancelled at shutdown
/// (what the server confirmed is already marked; the rest is sent again next time).
struct ArchiveSyncService: Service {
    let loop: ArchiveSyncLoop
    let http: HTTPClient?

    func run() async throws {
        try? await cancelWhenGracefulShutdown { await loop.run() }
        try? await http?.shutdown()
    }
}

/// The purge job: every `retention.purge_interval_hours` (and a minute after start) it deletes
/// the content of evidence whose retention period ended, outside cases on legal hold.
struct RetentionPurgeService: Service {
    let cases: CaseService
    let interval: Duration
    let logger: Logger

    func run() async throws {
        var wait = Duration.seconds(60)
        while !Task.isShuttingDownGracefully {
            do {
                let delay = wait
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
            } catch {
                return
            }
            wait = interval
            do {
                let purged = try await cases.perform { archive in try archive.purgeExpired().count }
                if purged > 0 { logger.notice("retention: purged expired evidence", metadata: ["items": "\(purged)"]) }
            } catch {
                logger.error("retention: purge failed; it runs again at the next interval", metadata: ["error": "\(error)"])
            }
        }
    }
}

extension ControlServer {
    /// `/v1/cases…`: open, list, show, close, reopen, verify, export; `/v1/privacy…`: a
    /// person's export and erasure.
    static func addCaseRoutes(_ router: Router<ControlRequestContext>, cases: CaseService) {
        router.get(RouterPath(ControlAPI.casesPath)) { _, _ in
            try jsonResponse(try await cases.perform { archive in
                try archive.caseIDs().map { id in
                    do {
                        return CaseSummary(projection: try archive.projection(id))
                    } catch {
                        return CaseSummary(unreadable: id, reason: "\(error)")
                    }
                }
            })
        }
        router.post(RouterPath(ControlAPI.casesPath)) { request, context in
            let open = try await request.decode(as: CaseOpenRequest.self, context: context)
            guard !open.reference.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw HTTPError(.badRequest, message: "a case needs its external reference (ticket or work order number)")
            }
            let summary = try await cases.perform { archive in
                let id = try archive.openCase(CaseDetails(reference: open.reference, asset: open.asset, site: open.site, title: open.title))
                return CaseSummary(projection: try archive.projection(id))
            }
            cases.noteOpenCasesChanged()
            context.logger.notice("case opened", metadata: ["case": "\(summary.id)", "reference": "\(summary.reference)"])
            return try jsonResponse(summary, status: .created)
        }
        router.get(RouterPath(ControlAPI.casePath("{id}"))) { _, context in
            let id = try context.parameters.require("id")
            let syncing = cases.sync != nil
            return try jsonResponse(try await cases.perform { archive in
                var detail = CaseDetail(projection: try archive.projection(id))
                if syncing { detail.sync = try archive.syncCounts(id) }
                return detail
            })
        }
        router.get(RouterPath(ControlAPI.syncPath)) { _, _ in
            let loop = try cases.syncLoop()
            let status = await loop.status
            return try jsonResponse(SyncReport(status: status, counts: try await cases.perform { archive in try archive.syncCounts() }))
        }
        router.post(RouterPath(ControlAPI.syncPath)) { _, context in
            let loop = try cases.syncLoop()
            context.logger.notice("sync on demand")
            let result = await loop.syncNow()
            let status = await loop.status
            let counts = try await cases.perform { archive in try archive.syncCounts() }
            switch result {
            case .success(let pass):
                return try jsonResponse(SyncReport(status: status, counts: counts, uploadedEntries: pass.entries, uploadedBlobs: pass.blobs,
                                                   uploadedBytes: pass.bytes, removedBlobs: pass.removedBlobs))
            case .failure(let error):
                throw HTTPError(.badGateway, message: "\(error) (\(counts.pendingEntries) entries and \(counts.pendingBlobs) blobs wait)")
            }
        }
        router.post(RouterPath(ControlAPI.personExportPath("{person}"))) { _, context in
            let person = try context.parameters.require("person")
            context.logger.notice("privacy: person export", metadata: ["person": "\(person)"])
            return try await cases.exportResponse(of: nil) { archive, path in _ = try archive.exportPerson(person, to: path) }
        }
        router.post(RouterPath(ControlAPI.personErasePath("{person}"))) { _, context in
            let person = try context.parameters.require("person")
            let report = try await cases.perform { archive in try archive.erasePerson(person) }
            context.logger.notice("privacy: erasure request", metadata: [
                "person": "\(person)", "erased": "\(report.items.filter { $0.action == "erased" }.count)",
                "restricted": "\(report.items.filter { $0.action == "restricted" }.count)",
            ])
            return try jsonResponse(report)
        }
        router.post(RouterPath(ControlAPI.purgePath)) { _, context in
            let purged = try await cases.perform { archive in try archive.purgeExpired() }
            context.logger.notice("retention: purge on demand", metadata: ["items": "\(purged.count)"])
            return try jsonResponse(PurgeReport(purged: purged.map {
                .init(caseId: $0.caseID, itemId: $0.tombstone.itemID, retentionClass: $0.tombstone.retentionClass, expiredAt: $0.tombstone.expiredAt)
            }))
        }
        for action in ["close", "reopen", "hold", "release"] {
            router.post(RouterPath(ControlAPI.casePath("{id}", action))) { request, context in
                let id = try context.parameters.require("id")
                let change = try await request.decode(as: CaseStateRequest.self, context: context)
                if action == "hold", (change.reason ?? "").isEmpty {
                    throw HTTPError(.badRequest, message: "a legal hold needs its reason (--reason), e.g. the dispute or order it serves")
                }
                let summary = try await cases.perform { archive in
                    switch action {
                    case "close": try archive.close(id, reason: change.reason)
                    case "reopen": try archive.reopen(id, reason: change.reason)
                    case "hold": try archive.setLegalHold(id, reason: change.reason ?? "")
                    default: try archive.releaseLegalHold(id, reason: change.reason)
                    }
                    return CaseSummary(projection: try archive.projection(id))
                }
                if action == "close" || action == "reopen" { cases.noteOpenCasesChanged() }
                context.logger.notice("case: \(action)", metadata: ["case": "\(id)", "reason": "\(change.reason ?? "")"])
                return try jsonResponse(summary)
            }
        }
        router.post(RouterPath(ControlAPI.casePath("{id}", "participants"))) { request, context in
            let id = try context.parameters.require("id")
            let body = try await request.decode(as: CaseParticipantRequest.self, context: context)
            guard let role = ParticipantRole(rawValue: body.role) else {
                throw HTTPError(.badRequest, message: "unknown role \(body.role); use one of "
                                    + ParticipantRole.allCases.map(\.rawValue).joined(separator: ", "))
            }
            guard !body.id.isEmpty, !body.name.isEmpty else { throw HTTPError(.badRequest, message: "a participant needs an id and a name") }
            let detail = try await cases.perform { archive in
                try archive.addParticipant(Participant(id: body.id, name: body.name, role: role), to: id)
                return CaseDetail(projection: try archive.projection(id))
            }
            context.logger.notice("case: participant added", metadata: ["case": "\(id)", "participant": "\(body.id)", "role": "\(role.rawValue)"])
            return try jsonResponse(detail)
        }
        router.post(RouterPath(ControlAPI.casePath("{id}", "consents"))) { request, context in
            let id = try context.parameters.require("id")
            let body = try await request.decode(as: CaseConsentRequest.self, context: context)
            guard let scope = ConsentRecord.Scope(rawValue: body.scope) else {
                throw HTTPError(.badRequest, message: "unknown consent scope \(body.scope); use one of "
                                    + ConsentRecord.Scope.allCases.map(\.rawValue).joined(separator: ", "))
            }
            let detail = try await cases.perform { archive in
                try archive.recordConsent(ConsentRecord(participantID: body.person, scope: scope, granted: body.granted,
                                                        givenAt: EvidenceArchive.systemClock(), callID: body.call), in: id)
                return CaseDetail(projection: try archive.projection(id))
            }
            context.logger.notice("case: consent recorded", metadata: [
                "case": "\(id)", "participant": "\(body.person)", "scope": "\(scope.rawValue)", "granted": "\(body.granted)",
            ])
            return try jsonResponse(detail)
        }
        router.post(RouterPath(ControlAPI.casePath("{id}", "refile"))) { request, context in
            let id = try context.parameters.require("id")
            let move = try await request.decode(as: CaseRefileRequest.self, context: context)
            let summary = try await cases.perform { archive in
                try archive.refile(itemID: move.itemId, from: id, to: move.toCaseId)
                return CaseSummary(projection: try archive.projection(move.toCaseId))
            }
            context.logger.notice("case: item re-filed", metadata: ["item": "\(move.itemId)", "from": "\(id)", "to": "\(move.toCaseId)"])
            return try jsonResponse(summary)
        }
        router.get(RouterPath(ControlAPI.casePath("{id}", "verify"))) { _, context in
            let id = try context.parameters.require("id")
            let results = try await cases.perform { archive -> [CaseVerification] in
                if id == ControlAPI.allCases {
                    return try archive.verifyAll().map { result in
                        switch result {
                        case .success(let projection): CaseVerification(result, caseID: projection.caseID)
                        case .failure(let link): CaseVerification(result, caseID: link.caseID)
                        }
                    }
                }
                guard try archive.caseIDs().contains(id) else { throw ArchiveError.unknownCase(id) }
                return [CaseVerification(archive.verify(id), caseID: id)]
            }
            for failure in results where !failure.intact {
                context.logger.error("case does not verify", metadata: ["case": "\(failure.caseId)", "problem": "\(failure.problem ?? "")"])
            }
            return try jsonResponse(results)
        }
        router.post(RouterPath(ControlAPI.casePath("{id}", "export"))) { request, context in
            let id = try context.parameters.require("id")
            let includeRestricted = request.uri.queryParameters.get("include_restricted") == "true"
            context.logger.notice("case exported", metadata: ["case": "\(id)", "include_restricted": "\(includeRestricted)"])
            return try await cases.exportResponse(of: [id]) { archive, path in _ = try archive.export(id, to: path, includeRestricted: includeRestricted) }
        }
    }
}
