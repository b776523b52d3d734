import Foundation
import SightlineArchive
import SightlineCore
import SightlineSync
import SightlineSystem

/// Test helper for the archive's crash, disk-full and memory tests. Keys live in DIRECTORY
/// (created on first use), the archive in DIRECTORY/archive.
///
///     sightline-archive-writer DIRECTORY [SEED]
///         Files evidence as fast as it can, forever, and writes `ack CASE ITEM SHA256` to
///         stdout (one write(2) per line) after each item is acknowledged. Exits 1 with the
///         archive's message when a write fails (e.g. the disk is full).
///     sightline-archive-writer --verify DIRECTORY [ACK-FILE...]
///         Verifies every case and checks that each item acknowledged in the ACK-FILEs is there;
///         prints `intact CASES ITEMS` or the problems and exits 1.
///     sightline-archive-writer --photos DIRECTORY COUNT BYTES
///         Files COUNT photos of BYTES each into one case and prints the rate as JSON.
///     sightline-archive-writer --ingest DIRECTORY FILE
///         Files FILE as one video recording, verifies and exports the case, and prints the
///         timings and the peak resident memory (VmHWM) as JSON.
///     sightline-archive-writer --sync DIRECTORY URL TOKEN
///         Syncs every case to the `sightline-archive` at URL and prints the sealed bytes sent,
///         the rate and the peak resident memory as JSON.
struct ArchiveWriter {
    let directory: String
    let archive: EvidenceArchive

    init(directory: String, chunkSize: Int = ChunkedBlobFormat.defaultChunkSize) throws {
        self.directory = directory
        let identity = try DeviceIdentityStore(stateDirectory: directory).loadOrCreate()
        let key = try ArchiveKeyStore(keyFilePath: (directory as NSString).appendingPathComponent("archive.key"), credentialsDirectory: nil)
            .loadOrCreate()
        archive = try EvidenceArchive(directory: (directory as NSString).appendingPathComponent("archive"), archiveKey: key,
                                      signingKey: identity, chunkSize: chunkSize)
    }

    /// xorshift64*: reproducible content without the cost of the system CSPRNG.
    struct ContentGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 2_685_821_657_736_338_717
        }
    }

    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    func fileForever(seed: UInt64) throws -> Never {
        var random = ContentGenerator(state: max(1, seed))
        var caseID = try archive.openCase(CaseDetails(reference: "WO-\(random.next() % 10_000)", asset: "pump"))
        Self.say("case \(caseID)")
        var count = 0
        while true {
            count += 1
            if count % 25 == 0 {
                try archive.close(caseID)
                caseID = try archive.openCase(CaseDetails(reference: "WO-\(random.next() % 10_000)"))
                Self.say("case \(caseID)")
            }
            let item: EvidenceItem
            if random.next() % 4 == 0 {
                item = try archive.file(EvidenceDraft(kind: .textNote, capturedAt: EvidenceArchive.systemClock(), text: "note \(count)"), into: caseID)
            } else {
                let size = Int(random.next() % 120_000)
                var bytes = [UInt8](repeating: 0, count: size)
                for index in stride(from: 0, to: size, by: 8) {
                    withUnsafeBytes(of: random.next()) { word in
                        for offset in 0..<min(8, size - index) { bytes[index + offset] = word[offset] }
                    }
                }
                item = try archive.file(EvidenceDraft(kind: .photo, capturedAt: EvidenceArchive.systemClock(), mediaType: "image/jpeg"),
                                        content: .bytes(bytes), into: caseID)
            }
            Self.say("ack \(caseID) \(item.id) \(item.blob?.hex ?? "-")")
        }
    }

    func verify(acknowledgements: [String]) throws -> Bool {
        var projections: [String: CaseProjection] = [:]
        var intact = true
        for result in try archive.verifyAll() {
            switch result {
            case .success(let projection): projections[projection.caseID] = projection
            case .failure(let link):
                Self.say("broken \(link)")
                intact = false
            }
        }
        var items = 0
        for path in acknowledgements {
            for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") where line.hasPrefix("ack ") {
                let parts = line.split(separator: " ").map(String.init)
                guard parts.count == 4 else { continue }
                if projections[parts[1]]?.item(parts[2]) == nil {
                    Self.say("lost \(parts[1]) \(parts[2])")
                    intact = false
                }
                items += 1
            }
        }
        if intact { Self.say("intact \(projections.count) \(items)") }
        return intact
    }

    func ingest(_ path: String) throws {
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.doubleValue ?? 0
        let caseID = try archive.openCase(CaseDetails(reference: "INGEST"))
        var started = Date()
        try archive.file(EvidenceDraft(kind: .videoRecording, capturedAt: EvidenceArchive.systemClock(), mediaType: "video/mp4"),
                         content: .file(path: path), into: caseID)
        let ingestSeconds = Date().timeIntervalSince(started)
        started = Date()
        guard case .success = archive.verify(caseID) else { throw ArchiveError.rejected(caseID: caseID, reason: "does not verify") }
        let verifySeconds = Date().timeIntervalSince(started)
        started = Date()
        let export = (directory as NSString).appendingPathComponent("ingest-export.zip")
        _ = try archive.export(caseID, to: export)
        let exportSeconds = Date().timeIntervalSince(started)
        unlink(export)
        let megabytes = size / 1_000_000
        Self.say(String(format: #"{"bytes": %.0f, "ingest_mb_s": %.1f, "verify_mb_s": %.1f, "export_s_per_gb": %.1f, "rss_mb_peak": %.1f}"#,
                        size, megabytes / ingestSeconds, megabytes / verifySeconds, exportSeconds / (size / 1e9), Self.peakResidentMegabytes()))
    }

    func photos(count: Int, bytes: Int) throws {
        var random = ContentGenerator(state: 7)
        let caseID = try archive.openCase(CaseDetails(reference: "PHOTOS"))
        var photo = [UInt8](repeating: 0, count: bytes)
        let started = Date()
        for _ in 0..<count {
            // A different photo each time, so nothing is deduplicated.
            for index in stride(from: 0, to: min(bytes, 64), by: 8) {
                withUnsafeBytes(of: random.next()) { word in
                    for offset in 0..<min(8, bytes - index) { photo[index + offset] = word[offset] }
                }
            }
            try archive.file(EvidenceDraft(kind: .photo, capturedAt: EvidenceArchive.systemClock(), mediaType: "image/jpeg"),
                             content: .bytes(photo), into: caseID)
        }
        let seconds = Date().timeIntervalSince(started)
        Self.say(String(format: #"{"photos": %d, "bytes_each": %d, "ingest_mb_s": %.1f, "photos_per_s": %.1f, "rss_mb_peak": %.1f}"#,
                        count, bytes, Double(count * bytes) / 1e6 / seconds, Double(count) / seconds, Self.peakResidentMegabytes()))
    }

    /// VmHWM from /proc/self/status: the most memory this process ever had resident.
    static func peakResidentMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return -1 }
        return (Double(line.split(separator: " ").dropFirst().first ?? "") ?? -1) / 1024
    }
}

extension ArchiveWriter {
    func sync(url: String, token: String) async throws {
        let client = ArchiveSyncClient(archive: archive, target: ArchiveSyncTarget(url: url, token: token))
        let started = Date()
        let pass = try await client.syncAll()
        let seconds = Date().timeIntervalSince(started)
        guard try archive.syncCounts().pendingEntries == 0 else { throw ArchiveError.database("entries are still pending after the sync pass") }
        Self.say(String(format: #"{"bytes": %llu, "blobs": %llu, "entries": %llu, "sync_mb_s": %.1f, "rss_mb_peak": %.1f}"#,
                        pass.bytes, pass.blobs, pass.entries, Double(pass.bytes) / 1e6 / seconds, Self.peakResidentMegabytes()))
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    switch arguments.first {
    case "--verify" where arguments.count >= 2:
        exit(try ArchiveWriter(directory: arguments[1]).verify(acknowledgements: Array(arguments.dropFirst(2))) ? 0 : 1)
    case "--photos" where arguments.count == 4:
        try ArchiveWriter(directory: arguments[1]).photos(count: Int(arguments[2]) ?? 1000, bytes: Int(arguments[3]) ?? 1_000_000)
    case "--ingest" where arguments.count == 3:
        try ArchiveWriter(directory: arguments[1]).ingest(arguments[2])
    case "--sync" where arguments.count == 4:
        try await ArchiveWriter(directory: arguments[1]).sync(url: arguments[2], token: arguments[3])
    case let directory? where !directory.hasPrefix("-"):
        // Small chunks so that a kill lands inside multi-chunk blobs often.
        try ArchiveWriter(directory: directory, chunkSize: 16 * 1024)
            .fileForever(seed: arguments.count > 1 ? UInt64(arguments[1]) ?? 1 : UInt64(getpid()))
    default:
        FileHandle.standardError.write(Data("usage: sightline-archive-writer DIRECTORY [SEED] | --verify DIRECTORY [ACK-FILE...] | --photos DIRECTORY COUNT BYTES | --ingest DIRECTORY FILE | --sync DIRECTORY URL TOKEN\n".utf8))
        exit(64)
    }
} catch {
    FileHandle.standardError.write(Data("sightline-archive-writer: \(error)\n".utf8))
    exit(1)
}
