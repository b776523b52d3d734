import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SightlineSystem

/// Debian's Chromium, headless, driven through Debian's chromedriver over W3C WebDriver (plain
/// JSON over HTTP, so no client library). Everything listens on and talks to 127.0.0.1 only,
/// and Chromium is told to resolve no host names at all, so a test can reach nothing else.
///
/// The HTTP is a few lines over a loopback socket (`LoopbackHTTP`): FoundationNetworking's
/// URLSession refuses chromedriver's responses ("Failed writing header": chromedriver writes
/// `Content-Length:250`, without the optional space, which libcurl's glue cannot parse).
///
/// chromedriver runs in its own process group (Foundation's `Process` starts children that
/// way) and Chromium inherits it: `quit()`, and `deinit` as a safety net, kill the whole group.
public actor HeadlessChromium: HeadlessBrowser {
    public static let chromedriverPath = "/usr/bin/chromedriver"
    public static let chromiumPath = "/usr/bin/chromium"

    /// Whether the viewer lab can run here; tests skip with this reason when it cannot.
    public static var unavailableReason: String? {
        let fileManager = FileManager.default
        if !fileManager.isExecutableFile(atPath: chromedriverPath) {
            return "\(chromedriverPath) is missing: install Debian's chromium and chromium-driver (scripts/install-deps test)"
        }
        if !fileManager.isExecutableFile(atPath: chromiumPath) {
            return "\(chromiumPath) is missing: install Debian's chromium (scripts/install-deps test)"
        }
        return nil
    }

    /// The flags measured to work on build machines without display, GPU or large /dev/shm
    /// (LAB-NOTES, "Browser"), plus quiet defaults and a resolver that resolves nothing.
    public static let defaultArguments = [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions", "--password-store=basic",
        // IP literals go through the rules too: 127.0.0.1 must be excluded explicitly.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ]

    public typealias Failure = BrowserFailure
    public typealias ScriptError = BrowserScriptError

    private let driver: Process
    /// chromedriver's process id, which is also the process group of every Chromium process.
    public nonisolated let driverProcessID: Int32
    private let http: LoopbackHTTP
    private let sessionID: String
    private let profile: TemporaryDirectory
    private var running = true

    private init(driver: Process, http: LoopbackHTTP, sessionID: String, profile: TemporaryDirectory) {
        self.driver = driver
        driverProcessID = driver.processIdentifier
        self.http = http
        self.sessionID = sessionID
        self.profile = profile
    }

    /// Starts chromedriver on a free loopback port and opens one browser session.
    /// - Parameter scriptTimeout: how long `executeAsync` waits for a script's callback.
    public static func start(
        windowWidth: Int = 1280, windowHeight: Int = 800, scriptTimeout: Duration = .seconds(60),
        extraArguments: [String] = []
    ) async throws -> HeadlessChromium {
        if let reason = unavailableReason { throw Failure(reason) }
        let profile = try TemporaryDirectory(prefix: "sightline-chromium")
        let logPath = profile.file("chromedriver.log")
        // The port is free when we ask; chromedriver takes it a moment later. A lost race
        // shows up as chromedriver exiting, and we try the next free port.
        for _ in 0..<3 {
            let port = try LoopbackPort.free()
            let driver = Process()
            driver.executableURL = URL(fileURLWithPath: chromedriverPath)
            // No --allowed-ips/--allowed-origins: with either, chromedriver listens beyond loopback.
            driver.arguments = ["--port=\(port)", "--log-path=\(logPath)"]
            driver.standardOutput = FileHandle.nullDevice
            driver.standardError = FileHandle.nullDevice
            let http = LoopbackHTTP(port: port)
            try driver.run()
            guard await waitUntilReady(driver: driver, http: http) else {
                killGroup(of: driver)
                continue
            }
            let capabilities: WebDriverValue = [
                "capabilities": [
                    "alwaysMatch": [
                        "browserName": "chrome",
                        "goog:chromeOptions": [
                            "binary": .string(chromiumPath),
                            "args": .array((defaultArguments + [
                                "--user-data-dir=\(profile.file("profile"))",
                                "--window-size=\(windowWidth),\(windowHeight)",
                            ] + extraArguments).map(WebDriverValue.string)),
                        ],
                        "goog:loggingPrefs": ["browser": "ALL"],
                        "timeouts": ["script": .number(Double(scriptTimeout.components.seconds * 1000)), "pageLoad": 30000],
                    ],
                ],
            ]
            do {
                let created = try await request(http, "POST", "/session", body: capabilities)
                guard let sessionID = created["sessionId"]?.string else { throw Failure("chromedriver returned no session id: \(created)") }
                return HeadlessChromium(driver: driver, http: http, sessionID: sessionID, profile: profile)
            } catch {
                killGroup(of: driver)
                let log = (try? String(contentsOfFile: logPath, encoding: .utf8))?.suffix(2000) ?? ""
                throw Failure("Chromium did not start through chromedriver: \(error)\n\(log)")
            }
        }
        // The profile directory (and this log) goes when `profile` does: quote the log now.
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8))?.suffix(2000) ?? "(no chromedriver log)"
        throw Failure("chromedriver did not become ready on a loopback port in three tries:\n\(log)")
    }

    /// Navigates and waits for the page's load event (WebDriver's default page-load strategy).
    public func open(_ url: String) async throws {
        try requireLoopback(url)
        _ = try await command("POST", "url", body: ["url": .string(url)])
    }

    public func executeAsync(_ script: String, arguments: [WebDriverValue]) async throws -> WebDriverValue {
        try await command("POST", "execute/async", body: ["script": .string(script), "args": .array(arguments)])
    }

    public func screenshot() async throws -> Data {
        let value = try await command("GET", "screenshot")
        guard let text = value.string, let png = Data(base64Encoded: text) else { throw Failure("screenshot was not base64 PNG") }
        return png
    }

    /// The browser console since the last call ("LEVEL message" lines): the first place to
    /// look when a page script fails.
    public func browserLog() async throws -> [String] {
        let value = try await command("POST", "se/log", body: ["type": "browser"])
        return (value.array ?? []).map { "\($0["level"]?.string ?? "?") \($0["message"]?.string ?? "")" }
    }

    /// Ends the session, then makes sure chromedriver and every Chromium process are gone.
    public func quit() async {
        guard running else { return }
        running = false
        _ = try? await Self.request(http, "DELETE", "/session/\(sessionID)", body: nil)
        Self.signalGroup(of: driver, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(3)
        while driver.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        Self.killGroup(of: driver)
    }

    deinit {
        // Safety net for a test that threw before `quit()`.
        if running { Self.killGroup(of: driver) }
    }

    // MARK: WebDriver plumbing

    private func command(_ method: String, _ path: String, body: WebDriverValue? = nil) async throws -> WebDriverValue {
        guard running else { throw Failure("the browser was already quit") }
        return try await Self.request(http, method, "/session/\(sessionID)/\(path)", body: body)
    }

    /// One WebDriver call; returns the response's `value`, or throws its `error`/`message`.
    private static func request(_ http: LoopbackHTTP, _ method: String, _ path: String, body: WebDriverValue?) async throws -> WebDriverValue {
        let response = try await http.send(method, path, body: try body.map { try JSONEncoder().encode($0) })
        let decoded = try? JSONDecoder().decode(WebDriverValue.self, from: response.body)
        let value = decoded?["value"] ?? .null
        guard (200..<300).contains(response.status) else {
            let error = value["error"]?.string ?? "HTTP \(response.status)"
            let message = value["message"]?.string ?? String(decoding: response.body.prefix(500), as: UTF8.self)
            throw Failure("WebDriver \(method) \(path): \(error): \(message)")
        }
        return value
    }

    private static func waitUntilReady(driver: Process, http: LoopbackHTTP) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline, driver.isRunning {
            if let status = try? await request(http, "GET", "/status", body: nil),
               status["ready"]?.bool == true {
                return true
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// chromedriver leads its own process group (Foundation starts children with `setpgid`),
    /// and Chromium's processes stay in it; `kill(-pgid)` reaches them all.
    private static func signalGroup(of process: Process, _ signal: Int32) {
        let pid = process.processIdentifier
        guard pid > 0 else { return }
        _ = kill(-pid, signal)
    }

    private static func killGroup(of process: Process) {
        signalGroup(of: process, SIGKILL)
        process.waitUntilExit()
    }
}

/// HTTP/1.1 to one port on 127.0.0.1, a connection per request: all WebDriver needs. Blocking
/// socket calls run on this client's own serial queue, never on the cooperative pool.
public struct LoopbackHTTP: Sendable {
    public struct Response: Sendable {
        public let status: Int
        public let body: Data
    }

    public let port: Int
    /// Long enough for a WebDriver asynchronous script to reach its own timeout first.
    public var timeoutSeconds = 180
    private let queue = DispatchQueue(label: "sightline.loopback-http")

    public init(port: Int) {
        self.port = port
    }

    public func send(_ method: String, _ path: String, body: Data? = nil) async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try exchange(method, path, body: body) }) }
        }
    }

    private func exchange(_ method: String, _ path: String, body: Data?) throws -> Response {
        let descriptor = try LoopbackPort.connect(port, timeoutSeconds: timeoutSeconds)
        defer { close(descriptor) }

        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\nAccept: application/json\r\n"
        if let body { request += "Content-Type: application/json; charset=utf-8\r\nContent-Length: \(body.count)\r\n" }
        request += "\r\n"
        try writeAll(descriptor, Data(request.utf8) + (body ?? Data()))

        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Range<Data.Index>?
        var contentLength: Int?
        var status = 0
        while true {
            if let end = headerEnd, let length = contentLength, received.count - end.upperBound >= length { break }
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("recv from 127.0.0.1:\(port)", errno: errno)
            }
            if count == 0 { break }  // the server closed: the body is what we have
            received.append(contentsOf: buffer[0..<count])
            if headerEnd == nil, let end = received.range(of: Data("\r\n\r\n".utf8)) {
                headerEnd = end
                (status, contentLength) = try Self.parseHead(received[received.startIndex..<end.lowerBound])
            }
        }
        guard let end = headerEnd else { throw HeadlessChromium.Failure("127.0.0.1:\(port) closed before a complete HTTP response") }
        var body = Data(received[end.upperBound...])
        if let contentLength { body = body.prefix(contentLength) }
        return Response(status: status, body: body)
    }

    /// Status code and Content-Length; header names are case-insensitive and the space after
    /// the colon is optional (RFC 9112), which is exactly what chromedriver relies on.
    private static func parseHead(_ head: Data) throws -> (status: Int, contentLength: Int?) {
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw HeadlessChromium.Failure("not an HTTP/1.x status line: \(lines.first ?? "")")
        }
        var contentLength: Int?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "content-length" { contentLength = Int(value) }
            if name == "transfer-encoding", value.lowercased() != "identity" {
                throw HeadlessChromium.Failure("unsupported Transfer-Encoding \(value)")
            }
        }
        return (status, contentLength)
    }

    private func writeAll(_ descriptor: Int32, _ data: Data) throws {
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.send(descriptor, raw.baseAddress.map { $0 + offset }, raw.count - offset, Int32(MSG_NOSIGNAL))
                if written < 0 {
                    if errno == EINTR { continue }
                    throw SystemError("send to 127.0.0.1:\(port)", errno: errno)
                }
                offset += written
            }
        }
    }
}

/// TCP ports on 127.0.0.1.
public enum LoopbackPort {
    /// A blocking TCP socket connected to 127.0.0.1:`port`, with send and receive timeouts.
    static func connect(_ port: Int, timeoutSeconds: Int) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SystemError("socket", errno: errno) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0,
              setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0,
              connected == 0
        else {
            let error = SystemError("connect 127.0.0.1:\(port)", errno: errno)
            close(descriptor)
            throw error
        }
        return descriptor
    }

    /// A port that nothing listens on at the moment of asking.
    public static func free() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw SystemError("socket", errno: errno) }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw SystemError("bind 127.0.0.1:0", errno: errno) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw SystemError("getsockname", errno: errno) }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A JSON value as WebDriver sends and receives it: script arguments and results. (Named for
/// WebDriver so it cannot collide with the relay's own JSON type in tests that import both.)
public enum WebDriverValue: Sendable, Equatable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([WebDriverValue])
    case object([String: WebDriverValue])

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: WebDriverValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, WebDriverValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { $1 }))
    }
    public init(nilLiteral: ()) { self = .null }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([WebDriverValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: WebDriverValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    public subscript(key: String) -> WebDriverValue? {
        if case .object(let object) = self { object[key] } else { nil }
    }

    public subscript(index: Int) -> WebDriverValue? {
        if case .array(let array) = self, array.indices.contains(index) { array[index] } else { nil }
    }

    public var string: String? { if case .string(let value) = self { value } else { nil } }
    public var double: Double? { if case .number(let value) = self { value } else { nil } }
    public var int: Int? { double.flatMap { Int(exactly: $0) } }
    public var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    public var array: [WebDriverValue]? { if case .array(let value) = self { value } else { nil } }
    public var isNull: Bool { self == .null }

    /// Decodes this value as `type`, e.g. a test's own `Decodable` result struct.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: JSONEncoder().encode(self))
    }

    /// Binary data travels to and from scripts as lower-case hex.
    public static func hex(_ bytes: some Sequence<UInt8>) -> WebDriverValue {
        .string(bytes.map { String(format: "%02x", $0) }.joined())
    }

    public var description: String {
        (try? String(decoding: JSONEncoder().encode(self), as: UTF8.self)) ?? "<unencodable>"
    }
}
