import Foundation

/// SIGKILLs `sightline-archive-writer` (which files evidence as fast as it can) at random
/// moments, again and again in one directory: the crash test and the `archive` benchmark both
/// use it to show that every acknowledged item survives.
public enum ArchiveWriterKills {
    public struct Outcome: Sendable {
        /// Every `ack CASE ITEM SHA256` line the writers printed before they died.
        public var acknowledged: [(caseID: String, itemID: String)]
        /// Cycles in which the writer exited on its own instead of being killed (a failure).
        public var selfExits: [(cycle: Int, status: Int32)]
        /// All ack lines, one per line, for `sightline-archive-writer --verify DIRECTORY FILE`.
        public var acknowledgementFile: String
    }

    /// - Parameter lifetime: how long each writer runs before the kill, drawn at random.
    public static func run(directory: TemporaryDirectory, cycles: Int, lifetime: ClosedRange<Int> = 20...200,
                           random: inout some RandomNumberGenerator) async throws -> Outcome {
        var outcome = Outcome(acknowledged: [], selfExits: [], acknowledgementFile: directory.file("acks"))
        var lines = ""
        for cycle in 0..<cycles {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: BuiltProducts.path(of: "sightline-archive-writer"))
            process.arguments = [directory.path, "\(cycle + 1)"]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            try await Task.sleep(for: .milliseconds(Int.random(in: lifetime, using: &random)))
            kill(process.processIdentifier, SIGKILL)
            // Read before waiting: a writer that outran the pipe's buffer would never exit otherwise.
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            if process.terminationReason != .uncaughtSignal { outcome.selfExits.append((cycle, process.terminationStatus)) }
            for line in text.split(separator: "\n") where line.hasPrefix("ack ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 {
                    outcome.acknowledged.append((String(parts[1]), String(parts[2])))
                    lines += line + "\n"
                }
            }
        }
        try lines.write(toFile: outcome.acknowledgementFile, atomically: true, encoding: .utf8)
        return outcome
    }
}
