import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `sightline-relay` on a free 127.0.0.1 port with one provisioned device token, for tests and
/// benchmarks that need the real relay.
public final class RelayProcess: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let process = Process()
    public let port: Int
    public let deviceToken: String
    /// Tokens of further provisioned devices (`load-device-N`), for load tests that need more
    /// sessions than one device may hold.
    public let extraDeviceTokens: [String]
    /// The token file to give the daemon (`relay.token_file`).
    public let deviceTokenFile: String
    public let logPath: String

    /// TLS from a certificate and key the test made; nil for plain WebSocket on loopback.
    public let tls: (certificate: String, key: String)?

    public var webSocketURL: String { "\(tls == nil ? "ws" : "wss")://127.0.0.1:\(port)" }
    public var httpURL: String { "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)" }
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// - Parameters:
    ///   - listenAddress: where to listen; anything but loopback needs `tls`.
    ///   - port: the port; a free one by default.
    ///   - deviceToken: the test device's token; a fresh one by default (a restarted relay keeps its own).
    public init(extraArguments: [String] = [], extraDevices: Int = 0, listenAddress: String = "127.0.0.1", port: Int? = nil,
                tls: (certificate: String, key: String)? = nil, deviceToken: String? = nil) throws {
        directory = try TemporaryDirectory(prefix: "sightline-relay")
        self.port = try port ?? LoopbackPort.free()
        self.tls = tls
        func randomToken() -> String { (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }
        self.deviceToken = deviceToken ?? randomToken()
        extraDeviceTokens = (0..<extraDevices).map { _ in randomToken() }
        deviceTokenFile = directory.file("relay-token")
        let tokens = directory.file("device-tokens")
        logPath = directory.file("relay.log")
        // Created 0600 (the relay and the daemon refuse token files others can read). Not through
        // umask: it is per process, and tests starting relays in parallel would race on it.
        let extraLines = extraDeviceTokens.enumerated().map { "load-device-\($0.offset) \($0.element)\n" }.joined()
        for (path, text) in [(tokens, "test-device \(self.deviceToken)\n" + extraLines), (deviceTokenFile, "\(self.deviceToken)\n")] {
            guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw TestFailure("cannot write \(path)")
            }
        }
        process.executableURL = URL(fileURLWithPath: BuiltProducts.path(of: "sightline-relay"))
        let tlsArguments = tls.map { ["--tls-certificate", $0.certificate, "--tls-key", $0.key] } ?? []
        process.arguments = ["--listen", "\(listenAddress):\(self.port)", "--device-tokens", tokens] + tlsArguments + extraArguments
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
    }

    /// Starts the relay and waits until `/health` answers (with TLS: until it logs that it is ready).
    public func start(timeout: Duration = .seconds(30)) async throws {
        try process.run()
        let deadline = ContinuousClock.now + timeout
        let session = URLSession(configuration: .ephemeral)
        while ContinuousClock.now < deadline {
            if !process.isRunning { throw TestFailure("sightline-relay exited with \(process.terminationStatus):\n\(log)") }
            if tls != nil {
                if log.contains("relay ready") { return }
            } else if let url = URL(string: "\(httpURL)/health"),
               let (_, response) = try? await session.data(from: url), (response as? HTTPURLResponse)?.statusCode == 200 {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("sightline-relay did not answer /health within \(timeout):\n\(log)")
    }

    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }
}
