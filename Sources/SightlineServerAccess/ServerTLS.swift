import NIOSSL

/// TLS for the servers devices dial out to (relay, archive): a PEM certificate chain and key
/// checked at startup, and the rule that plain HTTP is only for loopback.
public enum ServerTLS {
    /// PEM files: the certificate chain (leaf first) and its private key.
    public struct Files: Sendable {
        public var certificatePath: String
        public var keyPath: String

        public init(certificatePath: String, keyPath: String) {
            self.certificatePath = certificatePath
            self.keyPath = keyPath
        }
    }

    /// True for hosts that only this machine can reach (the same rule as `ListenAddress.isLoopback`,
    /// for any port): the only places a server may listen without TLS.
    public static func isLoopback(host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.") && host.split(separator: ".").count == 4
    }

    /// Loads the chain and key and builds a context at once, so a key that does not belong to
    /// the certificate fails at startup with a message, not on the first connection.
    public static func load(_ files: Files) throws(ServerConfigurationError) -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certificatePath)
        } catch {
            throw ServerConfigurationError(description: "cannot read TLS certificate \(files.certificatePath) (\(error)): pass --tls-certificate with a readable PEM certificate chain, leaf first")
        }
        guard !chain.isEmpty else {
            throw ServerConfigurationError(description: "TLS certificate file \(files.certificatePath) holds no PEM certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: files.keyPath, format: .pem)
        } catch {
            throw ServerConfigurationError(description: "cannot read TLS private key \(files.keyPath) (\(error)): pass --tls-key with the PEM key of the certificate, readable by the server's user")
        }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        do {
            _ = try NIOSSLContext(configuration: tls)
        } catch {
            throw ServerConfigurationError(description: "TLS key \(files.keyPath) does not work with certificate \(files.certificatePath) (\(error)): check that they belong together")
        }
        return tls
    }
}
