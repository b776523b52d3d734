import Foundation
import SightlineTesting

/// The evidence archive, measured through `sightline-archive-writer` (release build):
/// `ingest_mb_s` (1,000 distinct photos of 1 MB), `recording_ingest_mb_s`, `verify_mb_s`,
/// `export_s_per_gb` and `rss_mb_peak` for a 1 GB recording streamed from a file, and
/// `kill9_cycles` / `lost_items`: the writer SIGKILLed at random moments, then every item it
/// acknowledged looked up in the verified archive; `sync_mb_s`: the 1,000 photos uploaded to a
/// `sightline-archive` process on loopback (`archive-sync` runs only the photos and the sync);
/// `sync_mb_s_postgres`: the same into a `sightline-archive` storing in a PostgreSQL server of
/// its own (unix socket, fsync on), blobs as rows.
enum ArchiveSuite {
    static let recordingBytes = 1_000_000_000
    static let killCycles = 100

    static func run() async throws -> [(String, Double)] {
        let photos = try TemporaryDirectory(prefix: "sightline-bench-archive-photos")
        let photoReport = try writer(["--photos", photos.path, "1000", "1000000"])
        let sync = try await syncRate(photos)

        let recordingDirectory = try TemporaryDirectory(prefix: "sightline-bench-archive-recording")
        let recording = recordingDirectory.file("recording.bin")
        try writeRecording(recording)
        let ingest = try writer(["--ingest", recordingDirectory.path, recording])

        let kills = try TemporaryDirectory(prefix: "sightline-bench-archive-kill")
        var random = SeededGenerator(seed: 2026)
        let outcome = try await ArchiveWriterKills.run(directory: kills, cycles: killCycles, random: &random)
        guard outcome.selfExits.isEmpty else { throw TestFailure("the writer exited on its own: \(outcome.selfExits)") }
        let verify = try CommandLineTool.run("sightline-archive-writer", ["--verify", kills.path, outcome.acknowledgementFile])
        let lost = verify.stdout.split(separator: "\n").filter { $0.hasPrefix("lost ") }.count
        guard verify.stdout.contains("intact") || lost > 0 else { throw TestFailure("the archive does not verify after the kills:\n\(verify.stdout)") }

        return [
            ("ingest_mb_s", photoReport["ingest_mb_s"] ?? .nan),
            ("recording_ingest_mb_s", ingest["ingest_mb_s"] ?? .nan),
            ("rss_mb_peak", ingest["rss_mb_peak"] ?? .nan),
            ("verify_mb_s", ingest["verify_mb_s"] ?? .nan),
            ("export_s_per_gb", ingest["export_s_per_gb"] ?? .nan),
            ("kill9_cycles", Double(killCycles)),
            ("lost_items", Double(lost)),
            ("sync_mb_s", sync),
        ]
    }

    /// `bench/run archive-sync`: the sync part alone, on a shared machine where the whole suite
    /// (a 1 GB recording, 100 kill cycles) takes too long.
    static func runSync() async throws -> [(String, Double)] {
        let photos = try TemporaryDirectory(prefix: "sightline-bench-archive-photos")
        _ = try writer(["--photos", photos.path, "1000", "1000000"])
        let embedded = try await syncRate(photos)
        // A device remembers what it synced: the PostgreSQL run gets photos of its own.
        let morePhotos = try TemporaryDirectory(prefix: "sightline-bench-archive-photos")
        _ = try writer(["--photos", morePhotos.path, "1000", "1000000"])
        let postgres = try PostgresServer(durable: true)
        try await postgres.start()
        defer { postgres.stop() }
        return [("sync_mb_s", embedded), ("sync_mb_s_postgres", try await syncRate(morePhotos, database: postgres.url))]
    }

    /// Uploads the archive in `directory` to a fresh `sightline-archive` on loopback (its data
    /// on the same disk, in `database` when given) and returns the sealed megabytes per second.
    static func syncRate(_ directory: TemporaryDirectory, database: String? = nil) async throws -> Double {
        let server = try ArchiveServerProcess(database: database)
        try await server.start()
        defer { server.stop() }
        let report = try writer(["--sync", directory.path, server.url, server.deviceToken])
        guard (report["blobs"] ?? 0) >= 1000 else { throw TestFailure("the sync pass uploaded \(report["blobs"] ?? 0) blobs, not the 1,000 photos") }
        return report["sync_mb_s"] ?? .nan
    }

    /// Runs the helper and parses the one JSON object it prints.
    static func writer(_ arguments: [String]) throws -> [String: Double] {
        let result = try CommandLineTool.run("sightline-archive-writer", arguments)
        guard result.status == 0, let report = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Double] else {
            throw TestFailure("sightline-archive-writer \(arguments.first ?? "") failed (\(result.status)): \(result.stdout)\(result.stderr)")
        }
        return report
    }

    /// A recording of distinct 1 MB blocks, written a block at a time (the bench itself must
    /// not hold it in memory either).
    static func writeRecording(_ path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw TestFailure("cannot create \(path)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var random = SeededGenerator(seed: 1)
        var block = [UInt8](repeating: 0, count: 1_000_000)
        for index in block.indices { block[index] = UInt8.random(in: 0...255, using: &random) }
        for index in 0..<(recordingBytes / block.count) {
            withUnsafeBytes(of: UInt64(index)) { for (offset, byte) in $0.enumerated() { block[offset] = byte } }
            try handle.write(contentsOf: block)
        }
    }
}
