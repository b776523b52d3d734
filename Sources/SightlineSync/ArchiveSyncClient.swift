import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SightlineArchive
import SightlineCore

/// Where and how a device syncs (the `sync` section of the configuration).
public struct ArchiveSyncTarget: Sendable {
    /// Base URL of `sightline-archive`, e.g. https://archive.example.com.
    public var url: String
    public var token: String
    /// Remove a blob's local ciphertext once the server confirmed it and the entry naming it.
    public var deleteAfterSync: Bool
    /// Bytes per `PUT`: what the client holds of a blob at once.
    public var chunkBytes: Int
    /// Entries per journal upload.
    public var batchEntries: Int

    public init(url: String, token: String, deleteAfterSync: Bool = false, chunkBytes: Int = 4 << 20, batchEntries: Int = 500) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.token = token
        self.deleteAfterSync = deleteAfterSync
        self.chunkBytes = min(chunkBytes, ArchiveSyncAPI.maximumChunkBytes)
        self.batchEntries = batchEntries
    }
}

/// Why a sync pass stopped. `unreachable` is the normal offline case (retry later);
/// `refused` means the server checked something and said no — the message says what.
public enum ArchiveSyncError: Error, Sendable, CustomStringConvertible {
    case unreachable(String)
    case refused(status: Int, String)
    case local(ArchiveError)
    /// A `sync.*` setting that cannot work; the message names it.
    case configuration(String)

    public var description: String {
        switch self {
        case .unreachable(let message): "the organisation's archive is not reachable (\(message)); evidence stays on the device and sync retries"
        case .refused(let status, let message): "the organisation's archive refused the upload (\(status)): \(message)"
        case .local(let error): "\(error)"
        case .configuration(let message): message
        }
    }
}

/// What one pass uploaded.
public struct ArchiveSyncPass: Sendable, Equatable {
    public var entries: UInt64 = 0
    public var blobs: UInt64 = 0
    /// Sealed bytes sent (chunks the server already had are not counted).
    public var bytes: UInt64 = 0
    public var removedBlobs: UInt64 = 0

    public init() {}
}

/// Uploads what the organisation's archive does not have yet (docs/ARCHIVE.md, "Sync"): per
/// case, first the sealed blobs the next entries name — resumed at the offset the server
/// reports, streamed one chunk at a time — then the entries with their checkpoints, in order.
/// Only what the server confirmed is marked synced in the device's archive.
public final class ArchiveSyncClient: Sendable {
    /// An HTTP client that trusts exactly the PEM certificates in `caFile` (an organisation's
    /// own CA or the archive's self-signed certificate); the caller shuts it down.
    public static func httpClient(trusting caFile: String) throws(ArchiveSyncError) -> HTTPClient {
        guard let certificates = try? NIOSSLCertificate.fromPEMFile(caFile), !certificates.isEmpty else {
            throw .configuration("sync.ca_file \(caFile) holds no PEM certificate: point it at the archive's CA or certificate (PEM)")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.trustRoots = .certificates(certificates)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
    }

    public let archive: EvidenceArchive
    public let target: ArchiveSyncTarget
    private let http: HTTPClient
    private let timeout: TimeAmount
    /// The first request of a case: the HTTP client retries a refused connection until the
    /// deadline, so this one is short and an offline device learns it within seconds.
    private let probeTimeout: TimeAmount

    public init(archive: EvidenceArchive, target: ArchiveSyncTarget, http: HTTPClient = .shared, timeout: TimeAmount = .seconds(60),
                probeTimeout: TimeAmount = .seconds(5)) {
        self.archive = archive
        self.target = target
        self.http = http
        self.timeout = timeout
        self.probeTimeout = probeTimeout
    }

    /// One pass over every case; throws at the first failure, having kept what was confirmed.
    public func syncAll(progress: @Sendable (ArchiveSyncPass) -> Void = { _ in }) async throws(ArchiveSyncError) -> ArchiveSyncPass {
        var pass = ArchiveSyncPass()
        for caseID in try await local({ archive throws(ArchiveError) in try archive.caseIDs() }) {
            try await sync(caseID, pass: &pass)
            progress(pass)
        }
        return pass
    }

    /// Runs a call into the device's archive (SQLite commits, fsyncs, file reads) on NIO's
    /// thread pool: blocking work stays off the cooperative pool that the daemon's services share.
    private func local<T: Sendable>(_ body: @escaping @Sendable (EvidenceArchive) throws(ArchiveError) -> T) async throws(ArchiveSyncError) -> T {
        let archive = self.archive
        do {
            return try await NIOThreadPool.singleton.runIfActive { () throws -> T in try body(archive) }
        } catch let error as ArchiveError {
            throw .local(error)
        } catch {
            throw .local(.database("\(error)"))
        }
    }

    func sync(_ caseID: String, pass: inout ArchiveSyncPass) async throws(ArchiveSyncError) {
        let journal = try await local { archive throws(ArchiveError) in try archive.storedJournal(caseID) }
        let total = UInt64(journal.entries.count)
        var synced = try await local { archive throws(ArchiveError) in try archive.syncedEntryCount(caseID) }
        if synced < total {
            let status: SyncJournalStatus = try await request(.GET, ArchiveSyncAPI.journalPath(caseID), timeout: probeTimeout)
            guard status.entries <= total else {
                throw .refused(status: 409, "the server holds \(status.entries) entries of case \(caseID), the device only \(total): the journals diverged; "
                                + "run `sightctl case verify \(caseID)` and ask the archive's operator")
            }
            if status.entries > 0, journal.entries[Int(status.entries - 1)].hash.hexString != status.headHash {
                throw .refused(status: 409, "the server's entry \(status.entries - 1) of case \(caseID) differs from the device's: the chain forks")
            }
            if status.entries > synced {
                try await local { archive throws(ArchiveError) in try archive.markEntriesSynced(caseID, count: status.entries) }
                synced = status.entries
            }
        }
        let projection = try await local { archive throws(ArchiveError) in try archive.projection(caseID) }
        var start = synced
        while start < total {
            var end = min(total, start + UInt64(target.batchEntries))
            // An item whose content a later entry purged or erased has no blob left to upload:
            // its tombstone must travel in the same upload so the server does not ask for it.
            for (sequence, item) in projection.items where sequence >= start && sequence < end && projection.contentRemoved(item.id) {
                let removal = projection.purged[item.id]?.sequence ?? projection.erased[item.id]?.sequence ?? sequence
                end = max(end, removal + 1)
            }
            let blobs = try await local { archive throws(ArchiveError) in try archive.syncedBlobs(caseID) }
            var uploaded = Set<String>()  // items with the same content share one blob
            for (sequence, item) in projection.items where sequence >= start && sequence < end && !projection.contentRemoved(item.id) {
                guard let blob = item.blob, blobs[blob.hex] == nil, uploaded.insert(blob.hex).inserted else { continue }
                try await upload(blob, of: caseID, pass: &pass)
            }
            let entries = journal.entries[Int(start)..<Int(end)].map(JournalEntryJSON.init)
            let checkpoints = journal.checkpoints.filter { $0.sequence >= start && $0.sequence < end }.map(JournalCheckpointJSON.init)
            let status: SyncJournalStatus = try await request(.POST, ArchiveSyncAPI.journalPath(caseID),
                                                              json: SyncJournalUpload(entries: entries, checkpoints: checkpoints))
            guard status.entries >= end else {
                throw .refused(status: 500, "the server answered with \(status.entries) entries of case \(caseID) after accepting up to \(end)")
            }
            let confirmed = end
            try await local { archive throws(ArchiveError) in try archive.markEntriesSynced(caseID, count: confirmed) }
            pass.entries += end - start
            start = end
        }
        if target.deleteAfterSync {
            // Only blobs whose entries the server confirmed too: the journal names them there.
            let blobs = try await local { archive throws(ArchiveError) in try archive.syncedBlobs(caseID) }
            for (sequence, item) in projection.items where sequence < start {
                guard let blob = item.blob, let state = blobs[blob.hex], !state.removed else { continue }
                if try await local({ archive throws(ArchiveError) in try archive.removeSyncedBlob(caseID, sha256: blob.hex) }) { pass.removedBlobs += 1 }
            }
        }
    }

    /// Uploads one sealed blob from where the server stopped, hashing the whole file on the way
    /// (the part the server has is read and hashed, not sent), then commits it.
    func upload(_ blob: BlobReference, of caseID: String, pass: inout ArchiveSyncPass) async throws(ArchiveSyncError) {
        let path = archive.sealedBlobPath(caseID: caseID, sha256: blob.hex)
        let address = ArchiveSyncAPI.blobPath(caseID, blob.hex)
        var status: SyncBlobStatus = try await request(.GET, address)
        if !status.complete {
            guard let file = SealedFile(path: path) else {
                throw .local(.blob(caseID: caseID, sha256: blob.hex, reason: "its sealed file \(path) is missing, so it cannot be synced"))
            }
            var hasher = SHA256()
            var position: UInt64 = 0
            do {
                while position < status.received {
                    guard let piece = try await file.read(upToCount: Int(min(UInt64(target.chunkBytes), status.received - position))), !piece.isEmpty else {
                        throw ArchiveSyncError.refused(status: 409, "the server holds \(status.received) bytes of blob \(blob.hex), more than the device's file")
                    }
                    hasher.update(data: piece)
                    position += UInt64(piece.count)
                }
                while let piece = try await file.read(upToCount: target.chunkBytes), !piece.isEmpty {
                    hasher.update(data: piece)
                    var headers = HTTPHeaders()
                    headers.add(name: ArchiveSyncAPI.chunkDigestHeader, value: Array(SHA256.hash(data: piece)).hexString)
                    let answer: SyncBlobStatus = try await request(.PUT, "\(address)?offset=\(position)", body: ByteBuffer(bytes: piece), headers: headers)
                    position += UInt64(piece.count)
                    pass.bytes += UInt64(piece.count)
                    if answer.complete { break }
                }
            } catch let error as ArchiveSyncError {
                throw error
            } catch {
                throw .local(.blob(caseID: caseID, sha256: blob.hex, reason: "cannot read its sealed file: \(error)"))
            }
            let commit = SyncBlobCommit(plaintextSize: blob.size, sealedSHA256: Array(hasher.finalize()).hexString)
            status = try await request(.POST, ArchiveSyncAPI.blobCommitPath(caseID, blob.hex), json: commit)
            try await local { archive throws(ArchiveError) in try archive.markBlobSynced(caseID, sha256: blob.hex, sealedSHA256: commit.sealedSHA256) }
        } else {
            // The server has it (a commit whose answer was lost): record it with the local file's sealed hash.
            let sealed = try await sealedHash(path, caseID, blob)
            try await local { archive throws(ArchiveError) in try archive.markBlobSynced(caseID, sha256: blob.hex, sealedSHA256: sealed) }
        }
        pass.blobs += 1
    }

    /// Puts back the sealed files of the cases' blobs that were removed after sync
    /// (sync.delete_after_sync), fetched from the organisation's archive a piece at a time, each
    /// checked against the sealed hash the server confirmed; returns how many came back. What
    /// an export needs when the content left the device.
    public func fetchBack(_ caseIDs: [String]) async throws(ArchiveSyncError) -> Int {
        var fetched = 0
        for caseID in caseIDs {
            let removed = try await local { archive throws(ArchiveError) in try archive.syncedBlobs(caseID).filter(\.value.removed).keys.sorted() }
            for sha256 in removed {
                // A small probe first: an offline device learns it within seconds, not a piece's timeout.
                let status: SyncBlobStatus = try await request(.GET, ArchiveSyncAPI.blobPath(caseID, sha256), timeout: probeTimeout)
                guard status.complete else {
                    throw .refused(status: 404, "the archive does not hold blob \(sha256) of case \(caseID), which it confirmed at sync; ask the archive's operator")
                }
                guard let restore = try await local({ archive throws(ArchiveError) in try archive.beginFetchBack(caseID, sha256: sha256) }) else { continue }
                do throws(ArchiveSyncError) {
                    var offset: UInt64 = 0
                    var sealedSize = UInt64.max
                    while offset < sealedSize {
                        let (headers, piece) = try await exchange(.GET, ArchiveSyncAPI.blobSealedPath(caseID, sha256) + "?offset=\(offset)",
                                                                  limit: ArchiveSyncAPI.maximumFetchBytes)
                        guard let size = headers.first(name: ArchiveSyncAPI.sealedSizeHeader).flatMap(UInt64.init), !(piece.readableBytes == 0 && offset < size) else {
                            throw .refused(status: 200, "the archive's answer for blob \(sha256) at offset \(offset) is not the piece docs/ARCHIVE.md describes")
                        }
                        sealedSize = size
                        let bytes = Array(buffer: piece)
                        try await local { _ throws(ArchiveError) in try restore.write(bytes) }
                        offset += UInt64(bytes.count)
                    }
                    try await local { _ throws(ArchiveError) in try restore.commit() }
                } catch {
                    restore.discard()
                    throw error
                }
                fetched += 1
            }
        }
        return fetched
    }

    private func sealedHash(_ path: String, _ caseID: String, _ blob: BlobReference) async throws(ArchiveSyncError) -> String {
        guard let file = SealedFile(path: path) else {
            throw .local(.blob(caseID: caseID, sha256: blob.hex, reason: "its sealed file \(path) is missing"))
        }
        var hasher = SHA256()
        do {
            while let piece = try await file.read(upToCount: target.chunkBytes), !piece.isEmpty { hasher.update(data: piece) }
        } catch {
            throw .local(.blob(caseID: caseID, sha256: blob.hex, reason: "cannot read its sealed file: \(error)"))
        }
        return Array(hasher.finalize()).hexString
    }

    private func request<Answer: Decodable>(_ method: HTTPMethod, _ path: String, json: some Encodable) async throws(ArchiveSyncError) -> Answer {
        let encoder = JSONEncoder()
        guard let data = try? encoder.encode(json) else { throw .local(.database("cannot encode the upload of \(path)")) }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        return try await request(method, path, body: ByteBuffer(bytes: data), headers: headers)
    }

    private func request<Answer: Decodable>(_ method: HTTPMethod, _ path: String, body: ByteBuffer? = nil,
                                            headers: HTTPHeaders = [:], timeout: TimeAmount? = nil) async throws(ArchiveSyncError) -> Answer {
        let (_, bytes) = try await exchange(method, path, body: body, headers: headers, timeout: timeout)
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(bytes.readableBytesView)) else {
            throw .refused(status: 200, "\(path) answered with something that is not the JSON docs/ARCHIVE.md describes")
        }
        return answer
    }

    /// One authenticated request; a status other than 200 becomes `refused` with the server's reason.
    private func exchange(_ method: HTTPMethod, _ path: String, body: ByteBuffer? = nil, headers: HTTPHeaders = [:],
                          timeout: TimeAmount? = nil, limit: Int = 1 << 20) async throws(ArchiveSyncError) -> (HTTPHeaders, ByteBuffer) {
        var request = HTTPClientRequest(url: target.url + path)
        request.method = method
        request.headers = headers
        request.headers.add(name: "Authorization", value: "Bearer \(target.token)")
        if let body { request.body = .bytes(body) }
        let status: Int
        let answerHeaders: HTTPHeaders
        let bytes: ByteBuffer
        do {
            let response = try await http.execute(request, timeout: timeout ?? self.timeout)
            status = Int(response.status.code)
            answerHeaders = response.headers
            bytes = try await response.body.collect(upTo: limit)
        } catch {
            throw .unreachable("\(target.url): \(error)")
        }
        guard status == 200 else {
            let message = (try? JSONDecoder().decode(SyncErrorBody.self, from: Data(bytes.readableBytesView)).error) ?? String(buffer: bytes)
            throw .refused(status: status, message)
        }
        return (answerHeaders, bytes)
    }
}

/// The one owner of a sealed blob file's handle while it is uploaded, used by one task at a
/// time; each read runs on NIO's thread pool, so file I/O never blocks the cooperative pool.
final class SealedFile: @unchecked Sendable {
    private let handle: FileHandle

    init?(path: String) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        self.handle = handle
    }

    func read(upToCount count: Int) async throws -> Data? {
        try await NIOThreadPool.singleton.runIfActive { try self.handle.read(upToCount: count) }
    }

    deinit { try? handle.close() }
}
