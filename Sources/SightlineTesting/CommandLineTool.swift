import Foundation

/// Runs one of the project's executables (or any program) to completion and keeps its output.
public enum CommandLineTool {
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// `run`, waiting on a thread of its own. Swift Testing runs a process's tests on the
    /// cooperative pool, which has one thread per core: a test that blocks one of them for
    /// minutes (the kernel lab) leaves every other test of the process a single thread, and
    /// the next blocking wait anywhere stalls them all.
    public static func runOnOwnThread(_ tool: String, _ arguments: [String], prefix: [String] = [],
                                      environment: [String: String] = [:]) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Swift.Result { try run(tool, arguments, prefix: prefix, environment: environment) }) }.start()
        }
    }

    /// - Parameter prefix: a command that wraps the tool, e.g. `setpriv --reuid=65534 …`.
    public static func run(_ tool: String, _ arguments: [String], prefix: [String] = [], environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        let executable = tool.hasPrefix("/") ? tool : BuiltProducts.path(of: tool)
        if prefix.isEmpty {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: prefix[0])
            process.arguments = Array(prefix.dropFirst()) + [executable] + arguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let directory = try TemporaryDirectory(prefix: "sightline-tool")
        let outPath = directory.file("out"), errPath = directory.file("err")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        try process.run()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus,
            stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }
}
