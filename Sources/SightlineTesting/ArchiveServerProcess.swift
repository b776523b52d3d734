import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `sightline-archive` as a process on a 127.0.0.1 port with one provisioned device, for tests
/// that kill it mid-upload and benchmarks. A restart (`restarted()`) keeps the port, the token,
/// the data directory and the database. With `database` (a URL, e.g. `PostgresServer.url`) it
/// stores in PostgreSQL instead of its data directory.
public final class ArchiveServerProcess: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let process = Process()
    public let port: Int
    public let deviceToken: String
    public let dataDirectory: String
    public let logPath: String
    public let database: String?
    public let databasePasswordFile: String?

    public var url: String { "http://127.0.0.1:\(port)" }
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public init(directory: TemporaryDirectory? = nil, port: Int? = nil, deviceToken: String? = nil, database: String? = nil,
                databasePasswordFile: String? = nil) throws {
        self.database = database
        self.databasePasswordFile = databasePasswordFile
        self.directory = try directory ?? TemporaryDirectory(prefix: "sightline-archive")
        self.port = try port ?? LoopbackPort.free()
        self.deviceToken = deviceToken ?? (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        dataDirectory = self.directory.file("data")
        let tokens = self.directory.file("device-tokens")
        // 0600 directly, not through umask (per process; parallel tests would race on it).
        guard FileManager.default.createFile(atPath: tokens, contents: Data("test-device \(self.deviceToken)\n".utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw TestFailure("cannot write \(tokens)")
        }
        logPath = self.directory.file("archive-\(UUID().uuidString.prefix(8)).log")
        process.executableURL = URL(fileURLWithPath: BuiltProducts.path(of: "sightline-archive"))
        process.arguments = ["--listen", "127.0.0.1:\(self.port)", "--device-tokens", tokens]
            + (database.map { ["--database", $0] } ?? ["--data-dir", dataDirectory])
            + (databasePasswordFile.map { ["--database-password-file", $0] } ?? [])
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
    }

    /// A new process over the same directory, port and token (the old one must have exited).
    public func restarted() throws -> ArchiveServerProcess {
        try ArchiveServerProcess(directory: directory, port: port, deviceToken: deviceToken, database: database,
                                 databasePasswordFile: databasePasswordFile)
    }

    /// Starts the server and waits until `/health` answers.
    public func start(timeout: Duration = .seconds(30)) async throws {
        try process.run()
        let deadline = ContinuousClock.now + timeout
        let session = URLSession(configuration: .ephemeral)
        while ContinuousClock.now < deadline {
            if !process.isRunning { throw TestFailure("sightline-archive exited with \(process.terminationStatus):\n\(log)") }
            if let health = URL(string: "\(url)/health"), let (_, response) = try? await session.data(from: health),
               (response as? HTTPURLResponse)?.statusCode == 200 {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("sightline-archive did not answer /health within \(timeout):\n\(log)")
    }

    /// SIGKILL: no chance to finish what it was writing.
    public func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }
}
