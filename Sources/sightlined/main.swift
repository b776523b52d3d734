import ArgumentParser
import Foundation
import SightlineCore
import SightlineDaemon

@main
struct Sightlined: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sightlined",
        abstract: "The Sightline device daemon: camera, audio, voice commands and the encrypted stream to the remote expert.",
        discussion: "Runs in the foreground; under systemd it reports readiness and watchdog pings (Type=notify).",
        version: SightlineVersion.current)

    @Option(name: .long, help: ArgumentHelp("Configuration file.", valueName: "PATH"))
    var config: String?

    func run() async throws {
        let configuration: DaemonConfiguration
        let path: String?
        do {
            (configuration, path) = try SightlineDaemon.loadConfiguration(explicitPath: config)
        } catch {
            for diagnostic in error.diagnostics {
                FileHandle.standardError.write(Data("\(diagnostic)\n".utf8))
            }
            FileHandle.standardError.write(Data("sightlined: configuration rejected; nothing was started or changed\n".utf8))
            throw ExitCode(SightlineDaemon.exitConfigurationError)
        }
        do {
            try await SightlineDaemon.run(configuration: configuration, configurationPath: path)
        } catch let failure as SightlineDaemon.StartupFailure {
            FileHandle.standardError.write(Data("sightlined: \(failure.description)\n".utf8))
            throw ExitCode(failure.status)
        }
    }
}
