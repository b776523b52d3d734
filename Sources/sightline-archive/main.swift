import ArgumentParser
import Foundation
import SightlineArchiveServer
import SightlineCore
import SightlineServerAccess

@main
struct SightlineArchiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sightline-archive",
        abstract: "The organisation's archive that Sightline devices sync their cases to.",
        discussion: "See docs/ARCHIVE.md (\"Sync\") for the protocol and storage; the token file is the relay's format (docs/RELAY.md).",
        version: SightlineVersion.current)

    @Option(name: .long, help: ArgumentHelp("Address to serve on (loopback only without TLS).", valueName: "HOST:PORT"))
    var listen: String = "127.0.0.1:8444"

    @OptionGroup var access: ServerAccessOptions

    @Option(name: .customLong("data-dir"), help: ArgumentHelp("Where the archive keeps its database and blobs (created 0700); default $STATE_DIRECTORY.", valueName: "DIRECTORY"))
    var dataDirectory: String?

    @Option(name: .long, help: ArgumentHelp(
        "PostgreSQL for an organisation-wide archive several servers share: postgres://USER@HOST[:PORT]/DB or postgresql:///DB?host=/run/postgresql. Default: SQLite and files in --data-dir.",
        valueName: "URL"))
    var database: String?

    @Option(name: .customLong("database-password-file"), help: ArgumentHelp("File (mode 0600) holding the database role's password, if it needs one.", valueName: "FILE"))
    var databasePasswordFile: String?

    /// The store: PostgreSQL when --database names one, else the embedded store in the data directory.
    func storage() async throws -> any ArchiveStorage {
        guard let database else {
            guard databasePasswordFile == nil else {
                throw ServerConfigurationError(description: "--database-password-file goes with --database URL; without --database the archive uses SQLite in --data-dir")
            }
            guard let directory = dataDirectory ?? ProcessInfo.processInfo.environment["STATE_DIRECTORY"], directory.hasPrefix("/") else {
                throw ServerConfigurationError(description: "--data-dir needs an absolute DIRECTORY (or run under systemd with StateDirectory=)")
            }
            return try SQLiteArchiveStorage(directory: directory)
        }
        let url: ArchiveDatabaseURL
        do {
            url = try ArchiveDatabaseURL(database, defaultUser: ProcessInfo.processInfo.userName)
        } catch {
            throw ServerConfigurationError(description: error.description)
        }
        let password = try databasePasswordFile.map { path throws in
            let bytes = try SecretFile.read(path, what: "database password file")
            // One line, as `echo SECRET > FILE` leaves it.
            return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .newlines)
        }
        return try await PostgresArchiveStorage.open(url, password: password)
    }

    func run() async throws {
        do {
            guard let address = ListenAddress(listen) else {
                throw ServerConfigurationError(description: "--listen \(listen) is not HOST:PORT, e.g. 127.0.0.1:8444 or [::1]:8444")
            }
            let tls = try access.tlsFiles()
            let tokens = try access.tokens(purpose: "sync")
            try await ArchiveServer.run(ArchiveServer.Configuration(
                host: address.host, port: address.port, tls: tls, deviceTokens: tokens, storage: try await storage()))
        } catch let error as ServerConfigurationError {
            ServerAccessOptions.exitForConfiguration("sightline-archive", error.description)
        } catch let error as DeviceTokens.LoadError {
            ServerAccessOptions.exitForConfiguration("sightline-archive", error.description)
        } catch let error as ArchiveStorageError {
            ServerAccessOptions.exitForConfiguration("sightline-archive", error.description)
        }
    }
}
