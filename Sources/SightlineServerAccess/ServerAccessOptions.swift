import ArgumentParser
import Foundation

/// A configuration a server cannot start with; the message says what to change.
public struct ServerConfigurationError: Error, Sendable, CustomStringConvertible {
    public let description: String

    public init(description: String) {
        self.description = description
    }
}

/// The command-line options every server devices dial out to shares: TLS files and the device
/// token file. Parsed into the types the servers take, with messages that name the option.
public struct ServerAccessOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("tls-certificate"), help: ArgumentHelp("PEM certificate chain, leaf first.", valueName: "FILE"))
    public var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("PEM private key of the certificate.", valueName: "FILE"))
    public var tlsKey: String?

    @Option(name: .customLong("device-tokens"), help: ArgumentHelp("Token file: one `NAME TOKEN` line per device, mode 0600.", valueName: "FILE"))
    public var deviceTokens: String?

    public init() {}

    /// Both files, or nil for loopback-only plain HTTP.
    public func tlsFiles() throws(ServerConfigurationError) -> ServerTLS.Files? {
        switch (tlsCertificate, tlsKey) {
        case (let certificate?, let key?): return .init(certificatePath: certificate, keyPath: key)
        case (nil, nil): return nil
        default: throw ServerConfigurationError(description: "--tls-certificate and --tls-key go together: pass both, or neither for loopback-only plain HTTP")
        }
    }

    /// The provisioned devices; `purpose` says what a device could not do without them.
    public func tokens(purpose: String) throws -> DeviceTokens {
        guard let deviceTokens else {
            throw ServerConfigurationError(description: "--device-tokens FILE is required: without it no device can \(purpose) (format in docs/RELAY.md)")
        }
        return try DeviceTokens(contentsOf: deviceTokens)
    }

    /// Configuration errors end with EX_CONFIG (78, sysexits.h), so a supervisor can tell a
    /// configuration to fix from a crash (`RestartPreventExitStatus=78` in a unit).
    public static func exitForConfiguration(_ program: String, _ message: String) -> Never {
        FileHandle.standardError.write(Data("\(program): \(message)\n".utf8))
        Foundation.exit(78)
    }
}
