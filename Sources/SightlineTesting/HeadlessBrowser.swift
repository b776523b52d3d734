import Foundation

/// A headless browser driven over WebDriver: what the viewer tests need from Chromium and
/// Firefox alike, so one test body runs in both.
public protocol HeadlessBrowser: Actor {
    /// Navigates and waits for the page's load event.
    func open(_ url: String) async throws
    /// Runs `script` as a WebDriver asynchronous script: it receives `arguments` and must call
    /// `arguments[arguments.length - 1]` with its (JSON-serialisable) result.
    func executeAsync(_ script: String, arguments: [WebDriverValue]) async throws -> WebDriverValue
    /// The visible viewport as PNG.
    func screenshot() async throws -> Data
    /// The page's console since the last call: the first place to look when a script fails.
    func browserLog() async throws -> [String]
    /// Ends the session and makes sure every browser process is gone.
    func quit() async
}

/// Which browser a test runs in.
public enum BrowserKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case chromium, firefox

    public var description: String { rawValue }

    /// Why this browser cannot run here (tests skip with it), or nil.
    public var unavailableReason: String? {
        switch self {
        case .chromium: HeadlessChromium.unavailableReason
        case .firefox: HeadlessFirefox.unavailableReason
        }
    }

    /// The kinds installed here: CI installs both (scripts/install-deps test), so there none is missing.
    public static var available: [BrowserKind] { allCases.filter { $0.unavailableReason == nil } }

    public func start(scriptTimeout: Duration = .seconds(60)) async throws -> any HeadlessBrowser {
        switch self {
        case .chromium: try await HeadlessChromium.start(scriptTimeout: scriptTimeout)
        case .firefox: try await HeadlessFirefox.start(scriptTimeout: scriptTimeout)
        }
    }
}

/// A browser or its driver failed; the description says how.
public struct BrowserFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A script rejected or threw; `name` and `code` are the JavaScript error's, if it had them.
public struct BrowserScriptError: Error, CustomStringConvertible {
    public let message: String
    public let name: String?
    public let code: String?
    public var description: String { "JavaScript \(name ?? "error")\(code.map { " [\($0)]" } ?? ""): \(message)" }
}

extension HeadlessBrowser {
    public func executeAsync(_ script: String) async throws -> WebDriverValue {
        try await executeAsync(script, arguments: [])
    }

    /// Runs `body` as the body of an `async function` with `arguments` as its parameters
    /// (`arguments[0]`, …) and returns what it returns; a rejection becomes `BrowserScriptError`.
    public func evaluate(_ body: String, arguments: [WebDriverValue] = []) async throws -> WebDriverValue {
        let script = """
            const done = arguments[arguments.length - 1];
            const args = Array.prototype.slice.call(arguments, 0, -1);
            (async function () { \(body)
            }).apply(null, args).then(
                (value) => done({ ok: true, value: value === undefined ? null : value }),
                (error) => done({ ok: false, message: String((error && error.stack) || error),
                                  name: error && error.name ? String(error.name) : null,
                                  code: error && error.code !== undefined ? String(error.code) : null }));
            """
        let result = try await executeAsync(script, arguments: arguments)
        guard result["ok"]?.bool == true else {
            throw BrowserScriptError(
                message: result["message"]?.string ?? "\(result)", name: result["name"]?.string, code: result["code"]?.string)
        }
        return result["value"] ?? .null
    }
}

/// The viewer lab only ever talks to 127.0.0.1.
func requireLoopback(_ url: String) throws {
    guard let host = URL(string: url)?.host, host == "127.0.0.1" else {
        throw BrowserFailure("refusing to open \(url): the viewer lab only talks to 127.0.0.1")
    }
}
