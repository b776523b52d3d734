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

    func run() async throws {
        do {
            guard let address = ListenAddress(listen) else {
                throw ServerConfigurationError(description: "--listen \(listen) is not HOST:PORT, e.g. 127.0.0.1:8444 or [::1]:8444")
            }
            guard let directory = dataDirectory ?? ProcessInfo.processInfo.environment["STATE_DIRECTORY"], directory.hasPrefix("/") else {
                throw ServerConfigurationError(description: "--data-dir needs an absolute DIRECTORY (or run under systemd with StateDirectory=)")
            }
            try await ArchiveServer.run(ArchiveServer.Configuration(
                host: address.host, port: address.port, tls: try access.tlsFiles(), deviceTokens: try access.tokens(purpose: "sync"),
                storage: try SQLiteArchiveStorage(directory: directory)))
        } catch let error as ServerConfigurationError {
            ServerAccessOptions.exitForConfiguration("sightline-archive", error.description)
        } catch let error as DeviceTokens.LoadError {
            ServerAccessOptions.exitForConfiguration("sightline-archive", error.description)
        } catch let error as ArchiveStorageError {
            ServerAccessOptions.exitForConfiguration("sightline-archive", error.description)
        }
    }
}
