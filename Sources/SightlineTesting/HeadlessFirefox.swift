import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SightlineSystem

/// Debian's Firefox ESR, headless, driven through Marionette, the WebDriver protocol built
/// into Firefox itself. Debian packages no geckodriver (the usual HTTP front end), so this
/// speaks Marionette directly: a TCP connection on 127.0.0.1, each message `LENGTH:JSON`,
/// commands `[0, id, "WebDriver:Name", {params}]`, answers `[1, id, error, result]`.
///
/// The profile's preferences switch off every background service and send any request for a
/// host other than 127.0.0.1 to a proxy port where nothing listens, so a test reaches nothing
/// else. Firefox leads its own process group (Foundation's `Process` starts children that way)
/// and its content processes stay in it: `quit()`, and `deinit` as a safety net, kill the group.
public actor HeadlessFirefox: HeadlessBrowser {
    public static let firefoxPath = "/usr/bin/firefox-esr"

    public static var unavailableReason: String? {
        FileManager.default.isExecutableFile(atPath: firefoxPath)
            ? nil : "\(firefoxPath) is missing: install Debian's firefox-esr (scripts/install-deps test)"
    }

    /// user.js for the test profile. `marionette.port` 0 lets Firefox pick a free port and
    /// write it to `MarionetteActivePort` in the profile, so parallel browsers never collide.
    static let preferences: [String: String] = [
        "marionette.port": "0",
        // Everything not on 127.0.0.1 goes to the discard port, where nothing answers.
        "network.proxy.type": "1",
        "network.proxy.http": "\"127.0.0.1\"", "network.proxy.http_port": "9",
        "network.proxy.ssl": "\"127.0.0.1\"", "network.proxy.ssl_port": "9",
        "network.proxy.socks": "\"127.0.0.1\"", "network.proxy.socks_port": "9",
        "network.proxy.no_proxies_on": "\"127.0.0.1\"",
        "network.proxy.allow_hijacking_localhost": "false",
        "network.dns.disablePrefetch": "true", "network.prefetch-next": "false",
        "network.captive-portal-service.enabled": "false", "network.connectivity-service.enabled": "false",
        "app.update.disabledForTesting": "true", "extensions.update.enabled": "false",
        "browser.safebrowsing.malware.enabled": "false", "browser.safebrowsing.phishing.enabled": "false",
        "datareporting.policy.dataSubmissionEnabled": "false", "datareporting.healthreport.uploadEnabled": "false",
        "toolkit.telemetry.reportingpolicy.firstRun": "false",
        // Studies and experiments would fetch their recipes (and log an error when they cannot).
        "app.normandy.enabled": "false", "app.shield.optoutstudies.enabled": "false",
        "messaging-system.rsexperimentloader.enabled": "false",
        "browser.shell.checkDefaultBrowser": "false", "browser.startup.homepage_override.mstone": "\"ignore\"",
        // Page console messages on stdout, which `browserLog()` reads back.
        "devtools.console.stdout.content": "true",
        // A fake microphone and camera, granted without a prompt (Chromium's --use-fake-* flags).
        "media.navigator.streams.fake": "true", "media.navigator.permission.disabled": "true",
    ]

    private let process: Process
    /// Firefox's process id, which is also the process group of all its processes.
    public nonisolated let processID: Int32
    private let connection: MarionetteConnection
    private let profile: TemporaryDirectory
    private var logOffset = 0
    private var running = true
    /// What this harness's own descriptors point to, as `/proc/self/fd` shows them: the
    /// Marionette socket (`socket:[inode]`) and the profile directory its console log lies in.
    /// A teardown test looks for these after `quit()`, rather than counting every descriptor of
    /// a process whose other tests open and close their own meanwhile.
    public nonisolated let descriptorTargets: [String]

    private init(process: Process, connection: MarionetteConnection, profile: TemporaryDirectory) {
        self.process = process
        processID = process.processIdentifier
        self.connection = connection
        self.profile = profile
        descriptorTargets = [connection.descriptorTarget, profile.path].compactMap { $0 }
    }

    /// Lets a page start Web Audio without a click (Chromium's `--autoplay-policy=no-user-gesture-required`):
    /// a script run over Marionette is no user gesture.
    public static let autoplayPreferences = ["media.autoplay.default": "0", "media.autoplay.block-webaudio": "false"]

    /// Starts Firefox with a fresh profile and opens one WebDriver session.
    /// - Parameters:
    ///   - extraPreferences: more `user.js` preferences (values as JavaScript literals), over the defaults.
    ///   - environment: variables added to Firefox's environment. Firefox's audio engine needs
    ///     an output to run at all: without a sound card give it a PulseAudio server
    ///     (`PULSE_SERVER`, and `PULSE_SINK` for where the page's sound goes).
    public static func start(scriptTimeout: Duration = .seconds(60), windowWidth: Int = 1280, windowHeight: Int = 800,
                             extraPreferences: [String: String] = [:], environment extraEnvironment: [String: String] = [:]) async throws -> HeadlessFirefox {
        if let reason = unavailableReason { throw BrowserFailure(reason) }
        let profile = try TemporaryDirectory(prefix: "sightline-firefox")
        let allPreferences = preferences.merging(extraPreferences) { $1 }
        let userJS = allPreferences.sorted { $0.key < $1.key }.map { "user_pref(\"\($0.key)\", \($0.value));" }.joined(separator: "\n")
        try Data((userJS + "\n").utf8).write(to: URL(fileURLWithPath: profile.file("user.js")))
        guard FileManager.default.createFile(atPath: profile.file("console.log"), contents: nil) else {
            throw BrowserFailure("cannot create the browser's console log in \(profile.path)")
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: profile.file("console.log")))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: firefoxPath)
        process.arguments = ["--headless", "--marionette", "--no-remote", "--profile", profile.path,
                             "--width", "\(windowWidth)", "--height", "\(windowHeight)", "about:blank"]
        var environment = ProcessInfo.processInfo.environment
        environment["MOZ_HEADLESS"] = "1"
        environment["MOZ_CRASHREPORTER_DISABLE"] = "1"
        environment.merge(extraEnvironment) { $1 }
        process.environment = environment
        process.standardOutput = log
        process.standardError = log
        try process.run()
        do {
            let port = try await activePort(in: profile, process: process)
            let connection = try MarionetteConnection(port: port)
            _ = try await connection.command("WebDriver:NewSession", [
                "capabilities": ["alwaysMatch": [
                    "timeouts": ["script": .number(Double(scriptTimeout.components.seconds * 1000)), "pageLoad": 30000],
                ]],
            ])
            return HeadlessFirefox(process: process, connection: connection, profile: profile)
        } catch {
            killGroup(of: process)
            let output = (try? String(contentsOfFile: profile.file("console.log"), encoding: .utf8))?.suffix(2000) ?? ""
            throw BrowserFailure("Firefox did not start a Marionette session: \(error)\n\(output)")
        }
    }

    public func open(_ url: String) async throws {
        try requireLoopback(url)
        _ = try await command("WebDriver:Navigate", ["url": .string(url)])
    }

    public func executeAsync(_ script: String, arguments: [WebDriverValue]) async throws -> WebDriverValue {
        try await command("WebDriver:ExecuteAsyncScript", ["script": .string(script), "args": .array(arguments)])["value"] ?? .null
    }

    public func screenshot() async throws -> Data {
        let value = try await command("WebDriver:TakeScreenshot", ["full": false])["value"]
        guard let text = value?.string, let png = Data(base64Encoded: text) else { throw BrowserFailure("screenshot was not base64 PNG") }
        return png
    }

    /// What the page logged to its console since the last call (Firefox writes it to stdout).
    public func browserLog() async throws -> [String] {
        let data = (try? Data(contentsOf: URL(fileURLWithPath: profile.file("console.log")))) ?? Data()
        guard data.count > logOffset else { return [] }
        let text = String(decoding: data[logOffset...], as: UTF8.self)
        logOffset = data.count
        return text.split(separator: "\n").map(String.init).filter(Self.isPageMessage)
    }

    /// Firefox's stdout mixes the page's console (`console.error: "text"`, arguments printed
    /// as values, so a string is quoted) and its uncaught errors (`JavaScript error: URL, line
    /// N: …`) with messages of Firefox's own components (`console.error: RSLoader: …`).
    static func isPageMessage(_ line: String) -> Bool {
        if line.hasPrefix("JavaScript error: http://127.0.0.1") { return true }
        guard line.hasPrefix("console."), let colon = line.range(of: ": ") else { return false }
        let message = line[colon.upperBound...]
        return message.wholeMatch(of: /[A-Za-z][\w.-]*: .*/) == nil && message.wholeMatch(of: /[A-Za-z][\w.-]*:/) == nil
    }

    public func quit() async {
        guard running else { return }
        running = false
        _ = try? await connection.command("Marionette:Quit", [:])
        connection.close()
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        Self.killGroup(of: process)
    }

    deinit {
        if running {
            connection.close()
            Self.killGroup(of: process)
        }
    }

    private func command(_ name: String, _ parameters: [String: WebDriverValue]) async throws -> WebDriverValue {
        guard running else { throw BrowserFailure("the browser was already quit") }
        return try await connection.command(name, parameters)
    }

    /// Firefox writes the port it listens on into the profile once Marionette is up.
    private static func activePort(in profile: TemporaryDirectory, process: Process) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { throw BrowserFailure("firefox-esr exited with \(process.terminationStatus)") }
            if let text = try? String(contentsOfFile: profile.file("MarionetteActivePort"), encoding: .utf8),
               let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return port
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BrowserFailure("Marionette did not report its port within 60 s")
    }

    private static func killGroup(of process: Process) {
        let pid = process.processIdentifier
        guard pid > 0 else { return }
        _ = kill(-pid, SIGKILL)
        process.waitUntilExit()
    }
}

/// One Marionette connection. Commands are answered in order, one at a time; the blocking
/// socket calls run on the connection's own serial queue, never on the cooperative pool.
final class MarionetteConnection: @unchecked Sendable {
    // @unchecked: `descriptor`, `received` and `nextID` are touched only on `queue`.
    private let descriptor: Int32
    private let queue = DispatchQueue(label: "sightline.marionette")
    private var received: [UInt8] = []
    private var nextID = 0

    init(port: Int) throws {
        descriptor = try LoopbackPort.connect(port, timeoutSeconds: 180)
        // The server greets first: {"applicationType":"gecko","marionetteProtocol":3}.
        let hello = try queue.sync { try readMessage() }
        guard hello["marionetteProtocol"]?.int == 3 else {
            Glibc.close(descriptor)
            throw BrowserFailure("not a Marionette protocol 3 server: \(hello)")
        }
    }

    func command(_ name: String, _ parameters: [String: WebDriverValue]) async throws -> WebDriverValue {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try self.exchange(name, parameters) }) }
        }
    }

    func close() {
        queue.sync { _ = shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    /// The socket as `/proc/self/fd` names it (`socket:[inode]`); nil if it cannot be read.
    var descriptorTarget: String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)")
    }

    deinit { Glibc.close(descriptor) }

    private func exchange(_ name: String, _ parameters: [String: WebDriverValue]) throws -> WebDriverValue {
        nextID += 1
        let id = nextID
        let body = try JSONEncoder().encode(WebDriverValue.array([0, .number(Double(id)), .string(name), .object(parameters)]))
        try writeAll(Array("\(body.count):".utf8) + Array(body))
        while true {
            let answer = try readMessage()
            // Answers to commands we gave up on (none today) are skipped, not mistaken for ours.
            guard answer[0] == 1, answer[1]?.int == id else { continue }
            if let error = answer[2], !error.isNull {
                throw BrowserFailure("Marionette \(name): \(error["error"]?.string ?? "error"): \(error["message"]?.string ?? "\(error)")")
            }
            return answer[3] ?? .null
        }
    }

    private func readMessage() throws -> WebDriverValue {
        while true {
            if let colon = received.firstIndex(of: UInt8(ascii: ":")) {
                guard let length = Int(String(decoding: received[..<colon], as: UTF8.self)), length >= 0 else {
                    throw BrowserFailure("Marionette sent a malformed length prefix")
                }
                let start = colon + 1
                if received.count - start >= length {
                    let message = Data(received[start..<(start + length)])
                    received.removeFirst(start + length)
                    return try JSONDecoder().decode(WebDriverValue.self, from: message)
                }
            }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw BrowserFailure("the Marionette connection closed (\(count < 0 ? String(cString: strerror(errno)) : "EOF"))") }
            received.append(contentsOf: buffer[0..<count])
        }
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError("send to Marionette", errno: errno)
            }
            offset += written
        }
    }
}
