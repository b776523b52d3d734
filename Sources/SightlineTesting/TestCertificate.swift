import Foundation

/// A self-signed relay certificate for 127.0.0.1 and localhost, made with the openssl tool, so
/// tests run the relay with TLS the way a site does: the device trusts exactly this certificate
/// (relay.ca_file) and the browser pins its public key.
public struct TestCertificate: Sendable {
    public let certificatePath: String
    public let keyPath: String
    /// Base64 of SHA-256 over the DER SubjectPublicKeyInfo: Chromium's
    /// `--ignore-certificate-errors-spki-list` takes it to trust this one key and no other.
    public let spkiSHA256: String

    public init(directory: String) throws {
        certificatePath = (directory as NSString).appendingPathComponent("relay.crt")
        keyPath = (directory as NSString).appendingPathComponent("relay.key")
        let made = try CommandLineTool.run("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=sightline-test-relay", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", keyPath, "-out", certificatePath,
        ])
        guard made.status == 0 else { throw TestFailure("openssl req failed: \(made.stderr)") }
        chmod(keyPath, 0o600)
        let publicKey = try CommandLineTool.run("/usr/bin/openssl", ["x509", "-in", certificatePath, "-noout", "-pubkey"])
        let der = try Self.openssl(["pkey", "-pubin", "-outform", "DER"], input: Data(publicKey.stdout.utf8))
        let digest = try Self.openssl(["dgst", "-sha256", "-binary"], input: der)
        spkiSHA256 = digest.base64EncodedString()
    }

    private static func openssl(_ arguments: [String], input: Data) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("openssl \(arguments.joined(separator: " ")) failed") }
        return output
    }
}
