import Foundation
import SightlineSystem

/// Where `swift build` put the project's executables: beside the test bundle.
public enum BuiltProducts {
    public static func path(of executable: String) -> String {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // The test runner may live inside the .xctest bundle on some platforms.
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent(executable).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return executable
    }
}

/// A scratch directory that is removed when the test is done with it.
public final class TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "sightline-test") throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw SystemError("mkdtemp", errno: errno) }
        path = String(cString: created)
    }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A real `sightlined` process started by a test, with its own configuration, state directory
/// and control socket, and its stderr kept for assertions.
public final class DaemonProcess: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let process = Process()
    public let configurationPath: String
    public let socketPath: String
    public let stateDirectory: String
    public let logPath: String

    /// - Parameters:
    ///   - configuration: YAML appended to the test's own keys (state directory, socket, metrics off).
    ///   - environment: extra variables, e.g. a fake `NOTIFY_SOCKET`.
    ///   - controlGroup: the group allowed besides root (the default group, sightline, may exist).
    public init(configuration extra: String = "", controlGroup: String = "sightline", environment: [String: String] = [:],
                directory: TemporaryDirectory? = nil) throws {
        let directory = try directory ?? TemporaryDirectory(prefix: "sightlined")
        self.directory = directory
        configurationPath = directory.file("sightlined.yaml")
        socketPath = directory.file("control.sock")
        stateDirectory = directory.file("state")
        logPath = directory.file("daemon.log")
        var yaml = "state_directory: \(stateDirectory)\ncontrol:\n  socket: \(socketPath)\n  group: \(controlGroup)\n"
        if !extra.contains("metrics:") { yaml += "metrics:\n  enabled: false\n" }
        yaml += extra
        // Speech recognition costs a model load and a core's share while audio flows: only the
        // tests that configure voice get it. Appended, so the test's own lines keep their numbers.
        if !extra.contains("voice:") { yaml += (yaml.hasSuffix("\n") ? "" : "\n") + "voice:\n  enabled: false\n" }
        try yaml.write(toFile: configurationPath, atomically: true, encoding: .utf8)

        process.executableURL = URL(fileURLWithPath: BuiltProducts.path(of: "sightlined"))
        process.arguments = ["--config", configurationPath]
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = nil
        env["WATCHDOG_USEC"] = nil
        env["JOURNAL_STREAM"] = nil
        env.merge(environment) { $1 }
        process.environment = env
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardError = log
        process.standardOutput = log
    }

    public func start() throws { try process.run() }

    public var pid: Int32 { process.processIdentifier }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the control socket accepts connections.
    public func waitUntilServing(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if UnixSocket.accepts(path: socketPath) { return }
            if !process.isRunning {
                throw TestFailure("sightlined exited with \(process.terminationStatus) before serving:\n\(log)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("sightlined did not serve \(socketPath) within \(timeout):\n\(log)")
    }

    /// Waits for the process to end; nil when it is still running at the deadline.
    public func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.isRunning ? nil : process.terminationStatus
    }

    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Open file descriptors of the daemon, from `/proc/PID/fd`.
    public func openDescriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Counts this process's open file descriptors.
public func openDescriptorCountOfThisProcess() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}
