import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import SightlineCore

/// The organisation-wide store: everything in one PostgreSQL database — pinned keys, cases,
/// journal entries, checkpoints, blob records and the sealed blob bytes themselves (rows of at
/// most 4 MiB in `blob_chunks`) — so several `sightline-archive` servers can share it. The same
/// guarantees as the embedded store: a chunk is appended at exactly the offset the upload holds
/// (the `uploads` row is locked for it) or refused as `conflict`; a journal append takes the
/// case's row lock and checks its entry count in the same transaction; every write transaction
/// runs with `synchronous_commit = on`, so a returned call is on the database's disk.
public final class PostgresArchiveStorage: ArchiveStorage {
    public let url: ArchiveDatabaseURL
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger

    /// Rows of `blob_chunks` hold at most this many bytes: a chunk upload (up to 8 MiB) is split.
    public static let rowBytes = 4 << 20

    /// The schema, one list of statements per version; a database records the versions it has
    /// in `sightline_schema`. Append new versions, never edit a released one.
    public static let migrations: [[String]] = [
        [
            "CREATE TABLE devices (name text PRIMARY KEY, public_key bytea NOT NULL, pinned_at bigint NOT NULL)",
            "CREATE TABLE cases (id text PRIMARY KEY, device text NOT NULL, entry_count bigint NOT NULL)",
            """
            CREATE TABLE journal_entries (case_id text NOT NULL REFERENCES cases (id), sequence bigint NOT NULL,
                hash bytea NOT NULL, canonical bytea NOT NULL, PRIMARY KEY (case_id, sequence))
            """,
            """
            CREATE TABLE checkpoints (case_id text NOT NULL REFERENCES cases (id), sequence bigint NOT NULL, entry_hash bytea NOT NULL,
                signed_at bigint NOT NULL, public_key bytea NOT NULL, signature bytea NOT NULL, PRIMARY KEY (case_id, sequence))
            """,
            """
            CREATE TABLE blobs (case_id text NOT NULL, sha256 text NOT NULL, plaintext_size bigint NOT NULL, sealed_size bigint NOT NULL,
                sealed_sha256 text NOT NULL, committed_at bigint NOT NULL, PRIMARY KEY (case_id, sha256))
            """,
            "CREATE TABLE uploads (case_id text NOT NULL, sha256 text NOT NULL, received bigint NOT NULL, PRIMARY KEY (case_id, sha256))",
            """
            CREATE TABLE blob_chunks (case_id text NOT NULL, sha256 text NOT NULL, start_offset bigint NOT NULL, bytes bytea NOT NULL,
                PRIMARY KEY (case_id, sha256, start_offset))
            """,
            // Chunks are bytes already compressed-looking (sealed): do not spend CPU on TOAST compression.
            "ALTER TABLE blob_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL",
        ],
    ]

    /// Taken while migrating, so servers starting together apply a version once.
    static let migrationLock: Int64 = 0x5349_4748_544c_4e31

    private init(url: ArchiveDatabaseURL, client: PostgresClient, logger: Logger) {
        self.url = url
        self.client = client
        self.logger = logger
        // Immediate where available: `run()` marks the pool running before its first suspension,
        // so a request right after `open` does not find it "not running yet" (a logged warning).
        if #available(macOS 26, *) {
            runner = Task.immediate { await client.run() }
        } else {
            runner = Task { await client.run() }
        }
    }

    deinit { runner.cancel() }

    /// Connects once to prove the database is there and brings its schema up to date, then
    /// serves from a connection pool. Fails (the server exits 78) when the database cannot be
    /// reached, refuses the role or has a schema newer than this build knows.
    public static func open(_ url: ArchiveDatabaseURL, password: String?, logger: Logger = Logger(label: "sightline-archive.postgres"))
        async throws(ArchiveStorageError) -> PostgresArchiveStorage {
        if let file = url.rootCertificates, ((try? NIOSSLCertificate.fromPEMFile(file)) ?? []).isEmpty {
            throw .failure("sslrootcert \(file) holds no PEM certificate: point it at the CA that signed the database's certificate")
        }
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: try connectionConfiguration(url, password: password), id: 0, logger: logger)
        } catch {
            throw .failure("cannot reach the archive database \(url): \(describe(error)); check that PostgreSQL runs there, "
                           + "that role \(url.user) and database \(url.database) exist (createuser/createdb) and, if it asks for one, --database-password-file")
        }
        do {
            _ = try await migrate(connection, logger: logger)
            try? await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
        let client: PostgresClient
        do {
            client = PostgresClient(configuration: try clientConfiguration(url, password: password), backgroundLogger: logger)
        } catch {
            throw .failure("cannot set up TLS for the archive database \(url): \(error)")
        }
        return PostgresArchiveStorage(url: url, client: client, logger: logger)
    }

    /// Stops the connection pool.
    public func close() async {
        runner.cancel()
        await runner.value
    }

    // MARK: Configuration

    private static let startupParameters = [("synchronous_commit", "on"), ("application_name", "sightline-archive")]

    static func connectionConfiguration(_ url: ArchiveDatabaseURL, password: String?) throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch url.endpoint {
        case .unixSocket(let path):
            configuration = .init(unixSocketPath: path, username: url.user, password: password, database: url.database)
        case .tcp(let host, let port):
            let context = try NIOSSLContext(configuration: tlsConfiguration(url))
            let tls: PostgresConnection.Configuration.TLS = switch url.tls {
            case .disable: .disable
            case .prefer: .prefer(context)
            case .require: .require(context)
            }
            configuration = .init(host: host, port: port, username: url.user, password: password, database: url.database, tls: tls)
        }
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    /// Verifies the database's certificate and host name, against `sslrootcert` when given.
    static func tlsConfiguration(_ url: ArchiveDatabaseURL) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let file = url.rootCertificates { configuration.trustRoots = .file(file) }
        return configuration
    }

    static func clientConfiguration(_ url: ArchiveDatabaseURL, password: String?) throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        switch url.endpoint {
        case .unixSocket(let path):
            configuration = .init(unixSocketPath: path, username: url.user, password: password, database: url.database)
        case .tcp(let host, let port):
            let tls: PostgresClient.Configuration.TLS = switch url.tls {
            case .disable: .disable
            case .prefer: .prefer(tlsConfiguration(url))
            case .require: .require(tlsConfiguration(url))
            }
            configuration = .init(host: host, port: port, username: url.user, password: password, database: url.database, tls: tls)
        }
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    // MARK: Schema

    /// Applies the versions the database lacks, in one transaction under an advisory lock;
    /// returns the version it was at and the one it is at now.
    @discardableResult
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws(ArchiveStorageError) -> (from: Int, to: Int) {
        try await mapErrors {
            try await connection.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
                try await connection.query("CREATE TABLE IF NOT EXISTS sightline_schema (version integer PRIMARY KEY, applied_at bigint NOT NULL)", logger: logger)
                var current = 0
                for try await version in try await connection.query("SELECT coalesce(max(version), 0) FROM sightline_schema", logger: logger).decode(Int.self) {
                    current = version
                }
                guard current <= migrations.count else {
                    throw ArchiveStorageError.failure("the archive database has schema version \(current), but this sightline-archive knows "
                                                      + "versions up to \(migrations.count): run the newer sightline-archive that migrated it")
                }
                for version in (current + 1)..<(migrations.count + 1) {
                    for statement in migrations[version - 1] { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                    try await connection.query("INSERT INTO sightline_schema (version, applied_at) VALUES (\(version), \(now()))", logger: logger)
                    logger.notice("archive database migrated", metadata: ["version": "\(version)"])
                }
                return (current, migrations.count)
            }
        }
    }

    // MARK: Errors

    /// SQLSTATEs that mean "another request got there first": the caller re-reads and retries.
    private static let raceStates: Set<String> = ["23505", "40001", "40P01"]

    /// The store's errors from whatever PostgresNIO threw; a closure's own error passes through.
    private static func mapErrors<T>(_ body: () async throws -> T) async throws(ArchiveStorageError) -> T {
        do {
            return try await body()
        } catch {
            var error: any Error = error
            if let transaction = error as? PostgresTransactionError {
                error = transaction.closureError ?? transaction.commitError ?? transaction.beginError ?? transaction
            }
            if let storageError = error as? ArchiveStorageError { throw storageError }
            if let psql = error as? PSQLError, let state = psql.serverInfo?[.sqlState] {
                if raceStates.contains(state) { throw .conflict("a concurrent request changed the same record (SQLSTATE \(state)); retry") }
                if state == "53100" { throw .full("the archive database's disk is full: nothing was stored; free space there, devices retry") }
            }
            throw .failure("archive database: \(describe(error))")
        }
    }

    private func database<T>(_ body: () async throws -> T) async throws(ArchiveStorageError) -> T {
        try await Self.mapErrors(body)
    }

    /// PSQLError's `description` hides everything on purpose; the server's message and code are
    /// what an operator needs (they hold no bound values).
    static func describe(_ error: any Error) -> String {
        guard let psql = error as? PSQLError else { return "\(error)" }
        if let info = psql.serverInfo {
            return "\(info[.message] ?? "error") (SQLSTATE \(info[.sqlState] ?? "?"))"
        }
        if let underlying = psql.underlying { return "\(psql.code): \(underlying)" }
        return "\(psql.code)"
    }

    private static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    private static func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

    // MARK: Keys and cases

    public func pinnedKey(device: String) async throws(ArchiveStorageError) -> [UInt8]? {
        try await database {
            for try await key in try await client.query("SELECT public_key FROM devices WHERE name = \(device)", logger: logger).decode(ByteBuffer.self) {
                return Self.bytes(key)
            }
            return nil
        }
    }

    public func pinKey(device: String, offered: [UInt8]) async throws(ArchiveStorageError) -> [UInt8] {
        try await database {
            try await client.query("""
                INSERT INTO devices (name, public_key, pinned_at) VALUES (\(device), \(ByteBuffer(bytes: offered)), \(Self.now()))
                ON CONFLICT (name) DO NOTHING
                """, logger: logger)
            // A separate statement: it sees the row a concurrent server pinned first.
            guard let pinned = try await pinnedKey(device: device) else { throw ArchiveStorageError.conflict("device \(device)'s key vanished; upload again") }
            return pinned
        }
    }

    public func claimCase(_ caseID: String, device: String) async throws(ArchiveStorageError) -> String {
        try await database {
            try await client.query("INSERT INTO cases (id, device, entry_count) VALUES (\(caseID), \(device), 0) ON CONFLICT (id) DO NOTHING", logger: logger)
            guard let owner = try await owner(of: caseID) else { throw ArchiveStorageError.conflict("case \(caseID) vanished while it was claimed; upload again") }
            return owner
        }
    }

    public func owner(of caseID: String) async throws(ArchiveStorageError) -> String? {
        try await database {
            for try await device in try await client.query("SELECT device FROM cases WHERE id = \(caseID)", logger: logger).decode(String.self) {
                return device
            }
            return nil
        }
    }

    // MARK: Journal

    public func journal(_ caseID: String) async throws(ArchiveStorageError) -> (entries: [StoredJournalEntry], checkpoints: [JournalCheckpoint]) {
        try await database {
            // One snapshot for both: an append committing in between must not show entries without their checkpoints.
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", logger: logger)
                var entries: [StoredJournalEntry] = []
                let entryRows = try await connection.query(
                    "SELECT sequence, hash, canonical FROM journal_entries WHERE case_id = \(caseID) ORDER BY sequence", logger: logger)
                for try await (sequence, hash, canonical) in entryRows.decode((Int64, ByteBuffer, ByteBuffer).self) {
                    entries.append(StoredJournalEntry(sequence: UInt64(clamping: sequence), hash: Self.bytes(hash), canonical: Self.bytes(canonical)))
                }
                var checkpoints: [JournalCheckpoint] = []
                let checkpointRows = try await connection.query("""
                    SELECT sequence, entry_hash, signed_at, public_key, signature FROM checkpoints WHERE case_id = \(caseID) ORDER BY sequence
                    """, logger: logger)
                for try await (sequence, entryHash, signedAt, publicKey, signature)
                    in checkpointRows.decode((Int64, ByteBuffer, Int64, ByteBuffer, ByteBuffer).self) {
                    checkpoints.append(JournalCheckpoint(caseID: caseID, sequence: UInt64(clamping: sequence), entryHash: Self.bytes(entryHash),
                                                         signedAt: signedAt, publicKey: Self.bytes(publicKey), signature: Self.bytes(signature)))
                }
                return (entries, checkpoints)
            }
        }
    }

    public func appendJournal(_ caseID: String, after count: UInt64, entries: [StoredJournalEntry],
                              checkpoints: [JournalCheckpoint]) async throws(ArchiveStorageError) {
        try await database {
            try await client.withTransaction(logger: logger) { connection in
                // The case's row lock serialises appends to one case across every server sharing the database.
                var stored: Int64 = -1
                for try await held in try await connection.query("SELECT entry_count FROM cases WHERE id = \(caseID) FOR UPDATE", logger: logger).decode(Int64.self) {
                    stored = held
                }
                guard stored == Int64(count) else {
                    throw ArchiveStorageError.conflict("case \(caseID) changed while the upload was checked (it now holds \(stored) entries); upload again")
                }
                for entry in entries {
                    try await connection.query("""
                        INSERT INTO journal_entries (case_id, sequence, hash, canonical)
                        VALUES (\(caseID), \(Int64(entry.sequence)), \(ByteBuffer(bytes: entry.hash)), \(ByteBuffer(bytes: entry.canonical)))
                        """, logger: logger)
                }
                for checkpoint in checkpoints {
                    try await connection.query("""
                        INSERT INTO checkpoints (case_id, sequence, entry_hash, signed_at, public_key, signature)
                        VALUES (\(checkpoint.caseID), \(Int64(checkpoint.sequence)), \(ByteBuffer(bytes: checkpoint.entryHash)), \(checkpoint.signedAt),
                                \(ByteBuffer(bytes: checkpoint.publicKey)), \(ByteBuffer(bytes: checkpoint.signature)))
                        """, logger: logger)
                }
                try await connection.query("UPDATE cases SET entry_count = \(Int64(count) + Int64(entries.count)) WHERE id = \(caseID)", logger: logger)
            }
        }
    }

    // MARK: Blobs

    private static let blobColumns = "sha256, plaintext_size, sealed_size, sealed_sha256"

    private func blobRecords(_ caseID: String, _ rows: PostgresRowSequence) async throws -> [StoredBlob] {
        var blobs: [StoredBlob] = []
        for try await (sha256, plaintextSize, sealedSize, sealedSHA256) in rows.decode((String, Int64, Int64, String).self) {
            blobs.append(StoredBlob(caseID: caseID, sha256: sha256, plaintextSize: UInt64(clamping: plaintextSize),
                                    sealedSize: UInt64(clamping: sealedSize), sealedSHA256: sealedSHA256))
        }
        return blobs
    }

    public func blobs(of caseID: String) async throws(ArchiveStorageError) -> [String: StoredBlob] {
        try await database {
            let rows = try await client.query("SELECT \(unescaped: Self.blobColumns) FROM blobs WHERE case_id = \(caseID)", logger: logger)
            return Dictionary(try await blobRecords(caseID, rows).map { ($0.sha256, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    public func blob(_ caseID: String, _ sha256: String) async throws(ArchiveStorageError) -> StoredBlob? {
        try await database {
            let rows = try await client.query("SELECT \(unescaped: Self.blobColumns) FROM blobs WHERE case_id = \(caseID) AND sha256 = \(sha256)", logger: logger)
            return try await blobRecords(caseID, rows).first
        }
    }

    public func receivedBytes(_ caseID: String, _ sha256: String) async throws(ArchiveStorageError) -> UInt64 {
        try await database {
            for try await received in try await client.query(
                "SELECT received FROM uploads WHERE case_id = \(caseID) AND sha256 = \(sha256)", logger: logger).decode(Int64.self) {
                return UInt64(clamping: received)
            }
            return 0
        }
    }

    public func appendChunk(_ caseID: String, _ sha256: String, offset: UInt64, _ bytes: [UInt8]) async throws(ArchiveStorageError) -> UInt64 {
        try await database {
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("""
                    INSERT INTO uploads (case_id, sha256, received) VALUES (\(caseID), \(sha256), 0) ON CONFLICT (case_id, sha256) DO NOTHING
                    """, logger: logger)
                // The upload's row lock: appends to one blob take turns, whichever server they reach.
                var held: Int64 = 0
                for try await received in try await connection.query(
                    "SELECT received FROM uploads WHERE case_id = \(caseID) AND sha256 = \(sha256) FOR UPDATE", logger: logger).decode(Int64.self) {
                    held = received
                }
                guard held == Int64(offset) else {
                    throw ArchiveStorageError.conflict("append at \(offset) (the server holds \(held) bytes)")
                }
                var start = 0
                while start < bytes.count {
                    let end = min(bytes.count, start + Self.rowBytes)
                    try await connection.query("""
                        INSERT INTO blob_chunks (case_id, sha256, start_offset, bytes)
                        VALUES (\(caseID), \(sha256), \(held + Int64(start)), \(ByteBuffer(bytes: bytes[start..<end])))
                        """, logger: logger)
                    start = end
                }
                let now = held + Int64(bytes.count)
                try await connection.query("UPDATE uploads SET received = \(now) WHERE case_id = \(caseID) AND sha256 = \(sha256)", logger: logger)
                return UInt64(now)
            }
        }
    }

    /// Streams the rows of one blob's bytes in order; rows of a concurrent append that has not
    /// committed are not seen.
    private func readChunks(_ caseID: String, _ sha256: String, _ body: ([UInt8]) throws -> Void) async throws {
        let rows = try await client.query(
            "SELECT bytes FROM blob_chunks WHERE case_id = \(caseID) AND sha256 = \(sha256) ORDER BY start_offset", logger: logger)
        for try await piece in rows.decode(ByteBuffer.self) { try body(Self.bytes(piece)) }
    }

    public func readUpload(_ caseID: String, _ sha256: String, _ body: ([UInt8]) throws -> Void) async throws(ArchiveStorageError) {
        guard try await receivedBytes(caseID, sha256) > 0 else { throw .conflict("no upload of blob \(sha256) in case \(caseID)") }
        try await database { try await readChunks(caseID, sha256, body) }
    }

    public func readBlob(_ caseID: String, _ sha256: String, offset: UInt64, count: Int) async throws(ArchiveStorageError) -> [UInt8] {
        guard let blob = try await blob(caseID, sha256) else { throw .conflict("case \(caseID) has no committed blob \(sha256)") }
        guard offset <= blob.sealedSize else { throw .conflict("blob \(sha256) of case \(caseID) is shorter than offset \(offset)") }
        let start = Int64(offset), end = Int64(min(blob.sealedSize, offset + UInt64(count)))
        return try await database {
            // The rows that overlap [start, end), cut to it: at most two rows for a piece no
            // larger than a row.
            var bytes: [UInt8] = []
            for try await (rowStart, piece) in try await client.query("""
                SELECT start_offset, bytes FROM blob_chunks WHERE case_id = \(caseID) AND sha256 = \(sha256)
                    AND start_offset < \(end) AND start_offset + length(bytes) > \(start) ORDER BY start_offset
                """, logger: logger).decode((Int64, ByteBuffer).self) {
                let view = piece.readableBytesView
                let from = Int(max(0, start - rowStart)), to = Int(min(Int64(view.count), end - rowStart))
                bytes += view[(view.startIndex + from)..<(view.startIndex + to)]
            }
            return bytes
        }
    }

    public func commitUpload(_ blob: StoredBlob) async throws(ArchiveStorageError) {
        try await database {
            try await client.withTransaction(logger: logger) { connection in
                var held: Int64 = -1
                for try await received in try await connection.query(
                    "SELECT received FROM uploads WHERE case_id = \(blob.caseID) AND sha256 = \(blob.sha256) FOR UPDATE", logger: logger).decode(Int64.self) {
                    held = received
                }
                // The receiver read exactly sealedSize bytes; an append since then would make the record lie.
                guard held == Int64(blob.sealedSize) else {
                    throw ArchiveStorageError.conflict("the upload of blob \(blob.sha256) changed while it was checked (it holds \(held) bytes); commit again")
                }
                try await connection.query("""
                    INSERT INTO blobs (case_id, sha256, plaintext_size, sealed_size, sealed_sha256, committed_at)
                    VALUES (\(blob.caseID), \(blob.sha256), \(Int64(blob.plaintextSize)), \(Int64(blob.sealedSize)), \(blob.sealedSHA256), \(Self.now()))
                    ON CONFLICT (case_id, sha256) DO UPDATE SET plaintext_size = excluded.plaintext_size, sealed_size = excluded.sealed_size,
                        sealed_sha256 = excluded.sealed_sha256, committed_at = excluded.committed_at
                    """, logger: logger)
                // The chunks stay: they are the blob's bytes now.
                try await connection.query("DELETE FROM uploads WHERE case_id = \(blob.caseID) AND sha256 = \(blob.sha256)", logger: logger)
            }
        }
    }

    public func discardUpload(_ caseID: String, _ sha256: String) async throws(ArchiveStorageError) {
        try await database {
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("""
                    DELETE FROM blob_chunks WHERE case_id = \(caseID) AND sha256 = \(sha256)
                        AND NOT EXISTS (SELECT 1 FROM blobs WHERE case_id = \(caseID) AND sha256 = \(sha256))
                    """, logger: logger)
                try await connection.query("DELETE FROM uploads WHERE case_id = \(caseID) AND sha256 = \(sha256)", logger: logger)
            }
        }
    }
}
