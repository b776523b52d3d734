import ArgumentParser
import Foundation
import SightlineCore
import SightlineRelay

@main
struct SightlineRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sightline-relay",
        abstract: "The Sightline relay that devices and remote experts dial out to.",
        discussion: "See docs/RELAY.md for TLS, the token file and the limits.",
        version: SightlineVersion.current)

    @Option(name: .long, help: ArgumentHelp("Address to serve on (loopback only without TLS).", valueName: "HOST:PORT"))
    var listen: String = "127.0.0.1:8443"

    @Option(name: .customLong("tls-certificate"), help: ArgumentHelp("PEM certificate chain, leaf first.", valueName: "FILE"))
    var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("PEM private key of the certificate.", valueName: "FILE"))
    var tlsKey: String?

    @Option(name: .customLong("device-tokens"), help: ArgumentHelp("Token file: one `NAME TOKEN` line per device, mode 0600.", valueName: "FILE"))
    var deviceTokens: String?

    @Option(name: .customLong("viewer-dir"), help: ArgumentHelp("Serve the viewer from this directory instead of the bundled copy.", valueName: "DIRECTORY"))
    var viewerDirectory: String?

    @Option(name: .customLong("public-url"), help: ArgumentHelp("How devices and browsers reach this relay, e.g. https://relay.example.com (printed only).", valueName: "URL"))
    var publicURL: String?

    func run() async throws {
        let configuration: RelayServer.Configuration
        do {
            configuration = try makeConfiguration()
        } catch {
            Self.fail("\(error)")
        }
        do {
            try await RelayServer.run(configuration)
        } catch let error as RelayServer.ConfigurationError {
            Self.fail(error.description)
        }
    }

    private func makeConfiguration() throws -> RelayServer.Configuration {
        guard let address = ListenAddress(listen) else {
            throw RelayServer.ConfigurationError(description: "--listen \(listen) is not HOST:PORT, e.g. 127.0.0.1:8443 or [::1]:8443")
        }
        let tls: RelayServer.TLSFiles?
        switch (tlsCertificate, tlsKey) {
        case (let certificate?, let key?): tls = .init(certificatePath: certificate, keyPath: key)
        case (nil, nil): tls = nil
        default: throw RelayServer.ConfigurationError(description: "--tls-certificate and --tls-key go together: pass both, or neither for loopback-only plain HTTP")
        }
        guard let deviceTokens else {
            throw RelayServer.ConfigurationError(description: "--device-tokens FILE is required: without it no device can connect (format in docs/RELAY.md)")
        }
        if let publicURL, URL(string: publicURL)?.scheme == nil {
            throw RelayServer.ConfigurationError(description: "--public-url \(publicURL) is not a URL such as https://relay.example.com")
        }
        return RelayServer.Configuration(
            listen: address, tls: tls, deviceTokens: try DeviceTokens(contentsOf: deviceTokens),
            viewerDirectory: viewerDirectory, publicURL: publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 })
    }

    /// Configuration errors end with EX_CONFIG (78, sysexits.h), so a supervisor can tell a
    /// configuration to fix from a crash (`RestartPreventExitStatus=78` in a unit).
    private static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("sightline-relay: \(message)\n".utf8))
        Foundation.exit(78)
    }
}
