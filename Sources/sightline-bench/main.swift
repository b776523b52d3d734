import Foundation
import SightlineControlClient
import SightlineCore
import SightlineTesting

try await Bench.main()

/// Runs one benchmark suite against the release binaries and writes flat JSON results.
/// Usage: sightline-bench SUITE OUTPUT.json
/// (Called from top-level code: `@main` only works in a single-file executable target.)
struct Bench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 3 else {
            FileHandle.standardError.write(Data("usage: sightline-bench SUITE OUTPUT.json (suites: startup, camera, hotplug, stream, relay, voice, audio, archive, archive-sync)\n".utf8))
            exit(64)
        }
        let results: [(String, Double)]
        switch arguments[1] {
        case "startup": results = try await StartupSuite.run()
        case "camera", "camera-guest", "camera-ustreamer": results = try await CameraSuite.run(arguments[1], output: arguments[2])
        case "hotplug", "hotplug-guest": results = try await HotplugSuite.run(arguments[1], output: arguments[2])
        case "stream": results = try await StreamSuite.run()
        case "relay": results = try await RelayLoad.measure()
        case "voice": results = try await VoiceSuite.run()
        case "audio": results = try await AudioSuite.run()
        case "archive": results = try await ArchiveSuite.run()
        case "archive-sync": results = try await ArchiveSuite.runSync()
        default:
            FileHandle.standardError.write(Data("unknown suite \(arguments[1]); known: startup, camera, hotplug, stream, relay, voice, audio, archive, archive-sync\n".utf8))
            exit(64)
        }
        let width = results.map(\.0.count).max() ?? 0
        print("\(arguments[1])")
        for (key, value) in results {
            print("  \(key.padding(toLength: width, withPad: " ", startingAt: 0))  \(String(format: "%.3f", value))")
        }
        let json = "{\n" + results.map { "  \"\($0.0)\": \($0.1.isFinite ? "\($0.1)" : "null")" }.joined(separator: ",\n") + "\n}\n"
        try json.write(toFile: arguments[2], atomically: true, encoding: .utf8)
    }
}

enum Statistics {
    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((p / 100 * Double(sorted.count - 1)).rounded(.up))
        return sorted[min(rank, sorted.count - 1)]
    }
}

/// `cold_start_to_ready_ms`: exec to READY=1 on a fresh state directory (identity key created),
/// median of several runs; `rss_mb_idle`: resident memory after 3 s idle with the test pattern
/// running; `control_request_ms_p99`: status requests over the control socket.
enum StartupSuite {
    static func run() async throws -> [(String, Double)] {
        var startTimes: [Double] = []
        for _ in 0..<7 {
            let directory = try TemporaryDirectory(prefix: "sightline-bench")
            let notify = try NotifySocketListener(path: directory.file("notify.sock"))
            defer { notify.stop() }
            let daemon = try DaemonProcess(environment: ["NOTIFY_SOCKET": notify.path], directory: directory)
            let started = ContinuousClock.now
            try daemon.start()
            guard let ready = await notify.waitFor("READY=1", timeout: .seconds(30)) else {
                throw TestFailure("no READY=1:\n\(daemon.log)")
            }
            startTimes.append(milliseconds(ready.at - started))
            daemon.signal(SIGTERM)
            _ = await daemon.waitForExit(timeout: .seconds(15))
        }

        let daemon = try DaemonProcess()
        try daemon.start()
        try await daemon.waitUntilServing()
        try await Task.sleep(for: .seconds(3))
        let rss = residentMegabytes(pid: daemon.pid)
        let client = ControlClient(socketPath: daemon.socketPath)
        var requestTimes: [Double] = []
        for index in 0..<1_100 {
            let started = ContinuousClock.now
            _ = try await client.get(ControlAPI.statusPath, as: DaemonStatus.self)
            if index >= 100 { requestTimes.append(milliseconds(ContinuousClock.now - started)) }
        }
        daemon.signal(SIGTERM)
        _ = await daemon.waitForExit(timeout: .seconds(15))
        return [
            ("cold_start_to_ready_ms", Statistics.percentile(startTimes, 50)),
            ("rss_mb_idle", rss),
            ("control_request_ms_p50", Statistics.percentile(requestTimes, 50)),
            ("control_request_ms_p99", Statistics.percentile(requestTimes, 99)),
        ]
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Statistics.seconds(duration) * 1_000
    }

    /// VmRSS from /proc/PID/status, in MiB.
    static func residentMegabytes(pid: Int32) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return .nan }
        return kilobytes / 1024
    }
}
