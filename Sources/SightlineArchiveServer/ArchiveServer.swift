import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SightlineCore
import SightlineServerAccess
import SightlineSystem

/// `sightline-archive`: the organisation's archive that devices sync their cases to
/// (docs/ARCHIVE.md, "Sync"). HTTP with device tokens in the relay's token file format; TLS
/// with a configured certificate, plain HTTP only on loopback.
public enum ArchiveServer {
    public struct Configuration: Sendable {
        public var host: String
        /// 0 lets the kernel choose (tests read it from `onRunning`).
        public var port: Int
        public var tls: ServerTLS.Files?
        public var deviceTokens: DeviceTokens
        public var storage: any ArchiveStorage

        public init(host: String, port: Int, tls: ServerTLS.Files? = nil, deviceTokens: DeviceTokens, storage: any ArchiveStorage) {
            self.host = host
            self.port = port
            self.tls = tls
            self.deviceTokens = deviceTokens
            self.storage = storage
        }
    }

    public typealias ConfigurationError = ServerConfigurationError

    public struct Running: Sendable {
        public let port: Int
        public let scheme: String
    }

    public static func makeApplication(
        _ configuration: Configuration, logger: Logger = Logger(label: "sightline-archive"),
        onRunning: @escaping @Sendable (Running) async -> Void = { _ in }
    ) throws(ConfigurationError) -> some ApplicationProtocol {
        let tlsConfiguration = try configuration.tls.map { files throws(ConfigurationError) in try ServerTLS.load(files) }
        guard tlsConfiguration != nil || ServerTLS.isLoopback(host: configuration.host) else {
            throw ConfigurationError(description: "refusing to listen on \(configuration.host) without TLS: pass --tls-certificate and --tls-key, or use a loopback address such as 127.0.0.1:8444")
        }
        let router = Router()
        router.get("/health") { _, _ in ["status": "ok", "version": SightlineVersion.current] }
        let metrics = ArchiveMetrics()
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                     body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        SyncRoutes(receiver: ArchiveReceiver(storage: configuration.storage), tokens: configuration.deviceTokens, metrics: metrics,
                   logger: logger).register(on: router)
        let scheme = tlsConfiguration == nil ? "http" : "https"
        let server: HTTPServerBuilder
        if let tlsConfiguration {
            do {
                server = try .tls(.http1(), tlsConfiguration: tlsConfiguration)
            } catch {
                throw ConfigurationError(description: "TLS setup failed with \(configuration.tls?.certificatePath ?? "") and its key: \(error)")
            }
        } else {
            server = .http1()
        }
        return Application(
            router: router, server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "sightline-archive"),
            onServerRunning: { channel in
                await onRunning(Running(port: channel.localAddress?.port ?? configuration.port, scheme: scheme))
            },
            logger: logger)
    }

    /// Runs until SIGTERM or SIGINT, logging to the journal and telling systemd when ready.
    public static func run(_ configuration: Configuration) async throws {
        let level = LogLevelSetting(.info)
        LoggingSystem.bootstrap { label in JournalLogHandler(label: label, level: level) }
        let logger = Logger(label: "sightline-archive")
        let notifier = SystemdNotifier()
        let app = try makeApplication(configuration, logger: logger) { running in
            let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
            let bound = "\(running.scheme)://\(host):\(running.port)"
            logger.info("archive ready", metadata: ["listen": "\(bound)", "devices": "\(configuration.deviceTokens.names.count)"])
            notifier.ready(status: "serving \(bound) for \(configuration.deviceTokens.names.count) provisioned devices")
        }
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        // Requests have drained: now the store's connections can go.
        await configuration.storage.close()
        notifier.stopping(status: "stopped")
    }
}

/// The sync routes: every one needs a device token. Storage that blocks (the embedded store)
/// moves its own work to NIO's thread pool.
struct SyncRoutes: Sendable {
    let receiver: ArchiveReceiver
    let tokens: DeviceTokens
    let metrics: ArchiveMetrics
    let logger: Logger

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v1/cases/{case}/journal") { request, context in
            try await handle(request, context, route: "journal_status") { device, caseID, _ async throws(SyncRefusal) in try await receiver.journalStatus(caseID, device: device) }
        }
        router.post("/v1/cases/{case}/journal") { request, context in
            let body = try await request.body.collect(upTo: ArchiveSyncAPI.maximumJournalBytes)
            return try await handle(request, context, route: "journal_upload") { device, caseID, _ async throws(SyncRefusal) in
                guard let upload = try? JSONDecoder().decode(SyncJournalUpload.self, from: Data(body.readableBytesView)) else {
                    throw SyncRefusal(.malformed, "the journal upload is not the JSON docs/ARCHIVE.md describes")
                }
                return try await receiver.receiveJournal(caseID, device: device, upload: upload)
            }
        }
        router.get("/v1/cases/{case}/blobs/{sha}") { request, context in
            try await handle(request, context, route: "blob_status") { device, caseID, sha async throws(SyncRefusal) in try await receiver.blobStatus(caseID, try blobAddress(sha), device: device) }
        }
        router.get("/v1/cases/{case}/blobs/{sha}/sealed") { request, context in
            let offset = request.uri.queryParameters.get("offset").flatMap { UInt64($0) } ?? 0
            return try await respond(request, context, route: "blob_sealed") { device, caseID, sha async throws(SyncRefusal) in
                let piece = try await receiver.sealedPiece(caseID, try blobAddress(sha), device: device, offset: offset)
                metrics.sent(bytes: piece.bytes.count)
                var headers: HTTPFields = [.contentType: "application/octet-stream", .cacheControl: "no-store"]
                if let name = HTTPField.Name(ArchiveSyncAPI.sealedSizeHeader) { headers[name] = "\(piece.sealedSize)" }
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: piece.bytes)))
            }
        }
        router.put("/v1/cases/{case}/blobs/{sha}") { request, context in
            let body = try await request.body.collect(upTo: ArchiveSyncAPI.maximumChunkBytes)
            let digest = HTTPField.Name(ArchiveSyncAPI.chunkDigestHeader).flatMap { request.headers[$0] }
            let offset = request.uri.queryParameters.get("offset").flatMap { UInt64($0) }
            return try await handle(request, context, route: "blob_chunk") { device, caseID, sha async throws(SyncRefusal) in
                guard let offset else { throw SyncRefusal(.malformed, "a chunk needs ?offset=N (bytes already held, from GET on the blob)") }
                let status = try await receiver.receiveChunk(caseID, try blobAddress(sha), device: device, offset: offset, digest: digest,
                                                             bytes: Array(buffer: body))
                metrics.received(bytes: body.readableBytes)
                return status
            }
        }
        router.post("/v1/cases/{case}/blobs/{sha}/commit") { request, context in
            let body = try await request.body.collect(upTo: 64 * 1024)
            return try await handle(request, context, route: "blob_commit") { device, caseID, sha async throws(SyncRefusal) in
                guard let commit = try? JSONDecoder().decode(SyncBlobCommit.self, from: Data(body.readableBytesView)) else {
                    throw SyncRefusal(.malformed, "the commit is not {\"plaintext_size\": N, \"sealed_sha256\": HEX}")
                }
                return try await receiver.commitBlob(caseID, try blobAddress(sha), device: device, commit: commit)
            }
        }
    }

    private func blobAddress(_ sha: String?) throws(SyncRefusal) -> String {
        guard let sha, ArchiveSyncAPI.isValidSHA256(sha) else { throw SyncRefusal(.malformed, "a blob address is 64 lower-case hex digits") }
        return sha
    }

    /// Authenticates, validates the case id, runs `body` and turns its answer or refusal into JSON.
    private func handle(
        _ request: Request, _ context: BasicRequestContext, route: String,
        _ body: @escaping @Sendable (_ device: String, _ caseID: String, _ sha: String?) async throws(SyncRefusal) -> some Encodable & Sendable
    ) async throws -> Response {
        try await respond(request, context, route: route) { device, caseID, sha async throws(SyncRefusal) in Self.json(.ok, try await body(device, caseID, sha)) }
    }

    /// Authenticates, validates the case id, runs `body`, turns a refusal into JSON, and counts
    /// the answer under `route`.
    private func respond(
        _ request: Request, _ context: BasicRequestContext, route: String,
        _ body: @escaping @Sendable (_ device: String, _ caseID: String, _ sha: String?) async throws(SyncRefusal) -> Response
    ) async throws -> Response {
        let response = try await answer(request, context, body)
        metrics.answered(route, status: Int(response.status.code))
        return response
    }

    private func answer(
        _ request: Request, _ context: BasicRequestContext,
        _ body: @escaping @Sendable (_ device: String, _ caseID: String, _ sha: String?) async throws(SyncRefusal) -> Response
    ) async throws -> Response {
        // Constant-time over every provisioned token (DeviceTokens): a wrong token takes as long as a right one.
        guard let device = tokens.deviceName(forAuthorization: request.headers[.authorization]) else {
            return Self.json(.unauthorized, SyncErrorBody(error: "missing or unknown device token: send `Authorization: Bearer TOKEN` with the token provisioned for this device"))
        }
        guard let caseID = context.parameters.get("case"), ArchiveSyncAPI.isValidCaseID(caseID) else {
            return Self.json(.badRequest, SyncErrorBody(error: "a case id is lower-case letters, digits and '-', at most 64"))
        }
        let sha = context.parameters.get("sha")
        do throws(SyncRefusal) {
            return try await body(device, caseID, sha)
        } catch let refusal {
            let status: HTTPResponse.Status = switch refusal.kind {
            case .malformed: .badRequest
            case .missing: .notFound
            case .forbidden: .forbidden
            case .conflict: .conflict
            case .tampered: .unprocessableContent
            case .full: .init(code: 507, reasonPhrase: "Insufficient Storage")
            case .storage: .internalServerError
            }
            logger.notice("sync refused", metadata: ["device": "\(device)", "case": "\(caseID)", "status": "\(status.code)", "reason": "\(refusal)"])
            return Self.json(status, SyncErrorBody(error: refusal.description))
        }
    }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
