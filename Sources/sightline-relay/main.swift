import ArgumentParser
import Foundation
import SightlineCore
import SightlineRelay
import SightlineServerAccess

@main
struct SightlineRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sightline-relay",
        abstract: "The Sightline relay that devices and remote experts dial out to.",
        discussion: "See docs/RELAY.md for TLS, the token file and the limits.",
        version: SightlineVersion.current)

    @Option(name: .long, help: ArgumentHelp("Address to serve on (loopback only without TLS).", valueName: "HOST:PORT"))
    var listen: String = "127.0.0.1:8443"

    @OptionGroup var access: ServerAccessOptions

    @Option(name: .customLong("viewer-dir"), help: ArgumentHelp("Serve the viewer from this directory instead of the bundled copy.", valueName: "DIRECTORY"))
    var viewerDirectory: String?

    @Option(name: .customLong("public-url"), help: ArgumentHelp("How devices and browsers reach this relay, e.g. https://relay.example.com (printed only).", valueName: "URL"))
    var publicURL: String?

    func run() async throws {
        do {
            try await RelayServer.run(try makeConfiguration())
        } catch let error as ServerConfigurationError {
            ServerAccessOptions.exitForConfiguration("sightline-relay", error.description)
        } catch let error as DeviceTokens.LoadError {
            ServerAccessOptions.exitForConfiguration("sightline-relay", error.description)
        }
    }

    private func makeConfiguration() throws -> RelayServer.Configuration {
        guard let address = ListenAddress(listen) else {
            throw ServerConfigurationError(description: "--listen \(listen) is not HOST:PORT, e.g. 127.0.0.1:8443 or [::1]:8443")
        }
        if let publicURL, URL(string: publicURL)?.scheme == nil {
            throw ServerConfigurationError(description: "--public-url \(publicURL) is not a URL such as https://relay.example.com")
        }
        return RelayServer.Configuration(
            listen: address, tls: try access.tlsFiles(), deviceTokens: try access.tokens(purpose: "connect"),
            viewerDirectory: viewerDirectory, publicURL: publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 })
    }
}
