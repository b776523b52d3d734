import ArgumentParser
import Foundation
import SightlineCore
import SightlineRelay

@main
struct SightlineRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sightline-relay",
        abstract: "The Sightline relay that devices and remote experts dial out to.",
        version: SightlineVersion.current)

    @Option(name: .long, help: ArgumentHelp("Address to serve on (loopback only until TLS is configured).", valueName: "HOST:PORT"))
    var listen: String = "127.0.0.1:8443"

    func run() async throws {
        guard let address = ListenAddress(listen) else {
            throw ValidationError("--listen \(listen) is not HOST:PORT, e.g. 127.0.0.1:8443")
        }
        do {
            try await RelayServer.run(.init(listen: address))
        } catch let refused as RelayServer.Refused {
            FileHandle.standardError.write(Data("sightline-relay: \(refused.description)\n".utf8))
            throw ExitCode(78)
        }
    }
}
