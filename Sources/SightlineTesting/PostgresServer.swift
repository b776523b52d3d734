import Foundation

/// A real PostgreSQL server of its own for a test: `initdb` and `postgres` in a temporary
/// directory, listening on a unix socket there (and, with `tls`, on a free 127.0.0.1 port with
/// that certificate), trust authentication for the one role. PostgreSQL refuses to run as root, so under root (CI) it
/// runs as the `postgres` user the Debian package creates, owning the directory. Stopped with
/// a fast shutdown (SIGINT) when the test is done.
public final class PostgresServer: @unchecked Sendable {
    public static let binDirectory = "/usr/lib/postgresql/15/bin"
    static let serviceUser = "postgres"

    public let directory: TemporaryDirectory
    public let process = Process()
    /// The role the tests connect as: `postgres` under root, else the current user.
    public let role: String
    public let logPath: String
    private let runAs: [String]

    /// Where the socket is; also the `host=` of the URL.
    public var socketDirectory: String { directory.path }
    /// The port of the socket (and of 127.0.0.1 with `tls`).
    public let port: Int
    /// The default database on the socket, for `sightline-archive --database`.
    public var url: String { "postgresql:///postgres?host=\(socketDirectory)&port=\(port)&user=\(role)" }
    /// The default database over TCP on 127.0.0.1 (with `tls` only).
    public var tcpURL: String { "postgres://\(role)@127.0.0.1:\(port)/postgres" }
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: "\(binDirectory)/postgres") }

    /// Why tests against PostgreSQL cannot run here, or nil when they can. Under CI a missing
    /// server is a failure (scripts/install-deps installs it), elsewhere the tests say why they skip.
    public static var unavailable: String? {
        guard !isInstalled else { return nil }
        return "PostgreSQL 15 is not installed (\(binDirectory)/postgres); run `scripts/install-deps test` (apt package postgresql)"
    }

    /// Creates the cluster. `durable: false` turns off fsync, for tests that kill the archive
    /// server, not the database; a benchmark keeps it on. With `password` the role needs it
    /// (SCRAM) instead of being trusted.
    public init(durable: Bool = false, password: String? = nil, tls: TestCertificate? = nil) throws {
        if let reason = Self.unavailable { throw TestFailure(reason) }
        directory = try TemporaryDirectory(prefix: "sightline-postgres")
        logPath = directory.file("postgres.log")
        if geteuid() == 0 {
            guard let account = getpwnam(Self.serviceUser) else {
                throw TestFailure("running as root, but there is no `\(Self.serviceUser)` user to run PostgreSQL as (the postgresql package creates it)")
            }
            guard chown(directory.path, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
                throw TestFailure("cannot chown \(directory.path) to \(Self.serviceUser): \(String(cString: strerror(errno)))")
            }
            role = Self.serviceUser
            runAs = ["/usr/bin/setpriv", "--reuid=\(Self.serviceUser)", "--regid=\(Self.serviceUser)", "--clear-groups", "--"]
        } else {
            role = ProcessInfo.processInfo.userName
            runAs = []
        }
        let data = directory.file("data")
        var authentication = ["--auth=trust"]
        if let password {
            let file = directory.file("initdb-password")
            guard FileManager.default.createFile(atPath: file, contents: Data("\(password)\n".utf8), attributes: [.posixPermissions: 0o600]),
                  runAs.isEmpty || chown(file, getpwnam(Self.serviceUser)?.pointee.pw_uid ?? 0, getpwnam(Self.serviceUser)?.pointee.pw_gid ?? 0) == 0 else {
                throw TestFailure("cannot write \(file) for initdb")
            }
            authentication = ["--auth=scram-sha-256", "--pwfile=\(file)"]
        }
        let initdb = try Self.run(runAs + ["\(Self.binDirectory)/initdb", "-D", data, "-U", role, "--no-sync", "--no-locale", "-E", "UTF8"] + authentication)
        guard initdb.status == 0 else { throw TestFailure("initdb failed (\(initdb.status)):\n\(initdb.output)") }

        var listen = ["-c", "listen_addresses=", "-c", "port=5432"]
        if let tls {
            // The server reads them as its own user, the key only from a file no one else can read.
            let certificate = directory.file("server.crt"), key = directory.file("server.key")
            for (source, copy) in [(tls.certificatePath, certificate), (tls.keyPath, key)] {
                try FileManager.default.copyItem(atPath: source, toPath: copy)
                guard chmod(copy, 0o600) == 0, runAs.isEmpty || chown(copy, getpwnam(Self.serviceUser)?.pointee.pw_uid ?? 0,
                                                                       getpwnam(Self.serviceUser)?.pointee.pw_gid ?? 0) == 0 else {
                    throw TestFailure("cannot hand \(copy) to the server")
                }
            }
            port = try LoopbackPort.free()
            listen = ["-c", "listen_addresses=127.0.0.1", "-c", "port=\(port)", "-c", "ssl=on",
                      "-c", "ssl_cert_file=\(certificate)", "-c", "ssl_key_file=\(key)"]
        } else {
            port = 5432
        }
        let command = runAs + ["\(Self.binDirectory)/postgres", "-D", data, "-k", directory.path] + listen
            + ["-c", "fsync=\(durable ? "on" : "off")", "-c", "max_connections=50"]
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
    }

    private static func run(_ command: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// Starts the server and waits until it accepts connections (`pg_isready`).
    public func start(timeout: Duration = .seconds(60)) async throws {
        try process.run()
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !process.isRunning { throw TestFailure("postgres exited with \(process.terminationStatus):\n\(log)") }
            if try Self.run(["\(Self.binDirectory)/pg_isready", "-q", "-h", socketDirectory, "-p", "\(port)", "-U", role]).status == 0 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("postgres did not accept connections within \(timeout):\n\(log)")
    }

    /// Fast shutdown: rolls back open transactions and exits cleanly. The cluster (about 40 MB)
    /// goes at once: a test process may exit before the directory's owner is released.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGINT)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory.file("data"))
    }

    deinit { stop() }
}
