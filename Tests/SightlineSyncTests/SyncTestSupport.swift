import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SightlineArchive
import SightlineArchiveServer
import SightlineCore
import SightlineServerAccess
import SightlineSync
import SightlineTesting
import Testing

/// The stores the archive server's tests run against: the embedded one and PostgreSQL.
enum TestStore: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    var testDescription: String { rawValue }

    /// Why this store cannot be tested here, printed by a test that skips; nil under CI, where a
    /// missing PostgreSQL must fail the run (scripts/install-deps installs it).
    var unavailable: String? {
        guard self == .postgres, ProcessInfo.processInfo.environment["CI"] == nil else { return nil }
        return PostgresServer.unavailable.map { "skipped against PostgreSQL: \($0)" }
    }

    /// Returns false (after saying why) when the test cannot run against this store here.
    func isAvailable() -> Bool {
        if let unavailable { print(unavailable) }
        return unavailable == nil
    }
}

/// A store for a test: PostgreSQL on a server of the test's own (or on `shared`, which the
/// caller stops), or SQLite in `directory`.
struct TestStorage: Sendable {
    let storage: any ArchiveStorage
    let postgres: PostgresServer?

    static func make(_ store: TestStore, directory: String, shared: PostgresServer? = nil) async throws -> TestStorage {
        switch store {
        case .sqlite:
            return TestStorage(storage: try SQLiteArchiveStorage(directory: directory), postgres: nil)
        case .postgres:
            let server = try shared ?? PostgresServer()
            if shared == nil { try await server.start() }
            return TestStorage(storage: try await PostgresArchiveStorage.open(try ArchiveDatabaseURL(server.url, defaultUser: ""), password: nil),
                               postgres: shared == nil ? server : nil)
        }
    }

    func close() async {
        await storage.close()
        postgres?.stop()
    }
}

/// `sightline-archive` in this process on a free loopback port, with the store under test.
final class ArchiveServerHarness: Sendable {
    static let deviceToken = "device-token-0123456789abcdef"
    static let otherToken = "other-token-0123456789abcdef"

    let directory: TemporaryDirectory
    let store: TestStorage
    let port: Int
    private let task: Task<Void, any Error>

    var storage: any ArchiveStorage { store.storage }

    private init(directory: TemporaryDirectory, store: TestStorage, port: Int, scheme: String, task: Task<Void, any Error>) {
        self.directory = directory
        self.store = store
        self.port = port
        self.scheme = scheme
        self.task = task
    }

    let scheme: String

    /// - Parameter sharing: a PostgreSQL server another harness stores in too (store `.postgres`).
    static func start(tls: Bool = false, store kind: TestStore = .sqlite, sharing: PostgresServer? = nil) async throws -> ArchiveServerHarness {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-server")
        let certificate = try tls ? TestCertificate(directory: directory.path) : nil
        let store = try await TestStorage.make(kind, directory: directory.file("data"), shared: sharing)
        let tokens = try DeviceTokens(text: "device \(deviceToken)\nother \(otherToken)\n")
        var logger = Logger(label: "archive-under-test")
        logger.logLevel = .warning
        let (running, continuation) = AsyncStream<ArchiveServer.Running>.makeStream()
        let app = try ArchiveServer.makeApplication(
            ArchiveServer.Configuration(host: "127.0.0.1", port: 0, tls: certificate.map { ServerTLS.Files(certificatePath: $0.certificatePath, keyPath: $0.keyPath) },
                                        deviceTokens: tokens, storage: store.storage), logger: logger) { continuation.yield($0) }
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = running.makeAsyncIterator()
        guard let started = await iterator.next() else { throw TestFailure("the archive server did not start") }
        return ArchiveServerHarness(directory: directory, store: store, port: started.port, scheme: started.scheme, task: task)
    }

    var url: String { "\(scheme)://127.0.0.1:\(port)" }
    /// The certificate a TLS harness serves (TestCertificate's file name).
    var certificatePath: String { directory.file("relay.crt") }

    func stop() async {
        task.cancel()
        _ = try? await task.value
        await store.close()
    }
}

/// A device's archive in a temporary directory, with its own identity key.
struct DeviceArchive {
    let directory: TemporaryDirectory
    let archive: EvidenceArchive
    let identity: Curve25519.Signing.PrivateKey

    init(chunkSize: Int = ChunkedBlobFormat.defaultChunkSize) throws {
        directory = try TemporaryDirectory(prefix: "sightline-sync-device")
        identity = Curve25519.Signing.PrivateKey()
        archive = try EvidenceArchive(directory: directory.file("archive"), archiveKey: SymmetricKey(size: .bits256), signingKey: identity,
                                      chunkSize: chunkSize)
    }

    /// Files `count` photos of `size` random bytes into a new case and returns the case id.
    @discardableResult
    func fileCase(photos count: Int, size: Int, reference: String = "WO-1") throws -> String {
        let caseID = try archive.openCase(CaseDetails(reference: reference))
        for index in 0..<count {
            let words = (0..<(size + 7) / 8).map { _ in UInt64.random(in: 0...UInt64.max) }
            let bytes = Array(words.withUnsafeBytes { $0.prefix(size) })
            try archive.file(EvidenceDraft(kind: .photo, capturedAt: EpochMilliseconds(index), mediaType: "image/jpeg"), content: .bytes(bytes), into: caseID)
        }
        return caseID
    }

    func client(_ server: String, token: String = ArchiveServerHarness.deviceToken, deleteAfterSync: Bool = false,
                chunkBytes: Int = 256 * 1024, http: HTTPClient = .shared) -> ArchiveSyncClient {
        // The servers here answer, if slowly: these tests run beside dozens of others on two
        // cores, and a pass against a debug-built archive on PostgreSQL once ran out of the
        // device's deadlines (5 s for a case's first request, before calling the archive
        // offline; 30 s then for the others). The offline case is the daemon's own test, with
        // the defaults.
        ArchiveSyncClient(archive: archive, target: ArchiveSyncTarget(url: server, token: token, deleteAfterSync: deleteAfterSync, chunkBytes: chunkBytes),
                          http: http, timeout: .seconds(60), probeTimeout: .seconds(30))
    }
}

/// Checks that the server holds exactly the device's journal of `caseID`, that the chain and
/// signatures verify there against the device's key, and that every blob is byte for byte the
/// device's sealed file.
func expectServerHolds(_ caseID: String, of device: DeviceArchive, storage: any ArchiveStorage) async throws {
    let local = try device.archive.storedJournal(caseID)
    let remote = try await storage.journal(caseID)
    guard remote.entries == local.entries else { throw TestFailure("the server holds \(remote.entries.count) entries, the device \(local.entries.count)") }
    let blobs = try await storage.blobs(of: caseID)
    let result = JournalVerifier.verify(caseID: caseID, entries: remote.entries, checkpoints: remote.checkpoints,
                                        trustedKey: device.identity.publicKey) { blob in
        blobs[blob.hex] == nil ? "missing on the server" : nil
    }
    if case .failure(let link) = result { throw TestFailure("the server's copy does not verify: \(link)") }
    for (sha, _) in blobs {
        let serverBytes = try await storedBytes(caseID, sha, in: storage)
        let deviceBytes = FileManager.default.contents(atPath: device.archive.sealedBlobPath(caseID: caseID, sha256: sha)).map(Array.init)
        if let deviceBytes, serverBytes != deviceBytes { throw TestFailure("blob \(sha) differs between device and server") }
    }
}

/// A committed blob's sealed bytes as the store reads them back (a record without bytes throws).
func storedBytes(_ caseID: String, _ sha: String, in storage: any ArchiveStorage) async throws -> [UInt8] {
    var bytes: [UInt8] = []
    try await storage.readBlob(caseID, sha) { bytes += $0 }
    return bytes
}

/// One raw request to the archive server, for tests that send what a correct client never would.
func rawRequest(_ url: String, _ method: HTTPMethod, token: String = ArchiveServerHarness.deviceToken, body: [UInt8]? = nil,
                headers: [(String, String)] = []) async throws -> (status: Int, body: String) {
    var request = HTTPClientRequest(url: url)
    request.method = method
    request.headers.add(name: "Authorization", value: "Bearer \(token)")
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 1 << 20)
    return (Int(response.status.code), String(buffer: bytes))
}

/// The archive server's `/metrics`, as series → value.
func archiveMetrics(_ url: String) async throws -> [String: Double] {
    let answer = try await rawRequest(url + "/metrics", .GET)
    guard answer.status == 200 else { throw TestFailure("/metrics answered \(answer.status)") }
    var values: [String: Double] = [:]
    for line in answer.body.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        values[String(line[..<space])] = value
    }
    return values
}

func jsonBytes(_ value: some Encodable) throws -> [UInt8] { Array(try JSONEncoder().encode(value)) }
