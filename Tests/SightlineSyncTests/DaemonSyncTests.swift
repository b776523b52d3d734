import Crypto
import Foundation
import SightlineArchiveServer
import SightlineCore
import SightlineTesting
import Testing

/// The real daemon (test-pattern camera) syncing to a real `sightline-archive` process.
@Suite("Daemon sync to the organisation's archive", .serialized)
struct DaemonSyncTests {
    private static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }

    /// A daemon whose `sync.*` keys point at `server` (started or not).
    private static func daemon(syncingTo server: ArchiveServerProcess, deleteAfterSync: Bool = false,
                               metricsPort: Int? = nil) async throws -> (DaemonProcess, [String]) {
        let directory = try TemporaryDirectory(prefix: "sightlined-sync")
        let tokenFile = directory.file("archive-token")
        guard FileManager.default.createFile(atPath: tokenFile, contents: Data("\(server.deviceToken)\n".utf8), attributes: [.posixPermissions: 0o600]) else {
            throw TestFailure("cannot write \(tokenFile)")
        }
        let daemon = try DaemonProcess(configuration: """
            camera:
              device: test-pattern
              width: 320
              height: 240
              fps: 15
            sync:
              url: \(server.url)
              token_file: \(tokenFile)
              interval_s: 5
              delete_after_sync: \(deleteAfterSync)

            """ + (metricsPort.map { "metrics:\n  enabled: true\n  listen: 127.0.0.1:\($0)\n" } ?? ""), directory: directory)
        try daemon.start()
        try await daemon.waitUntilServing()
        return (daemon, ["--socket", daemon.socketPath])
    }

    /// Files one test-pattern snapshot in the active case (retrying until the first frame exists).
    private static func snapshot(_ socket: [String]) async throws {
        for _ in 0..<100 {
            if try CommandLineTool.run("sightctl", ["snapshot", "--json"] + socket).status == 0 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("sightctl snapshot never succeeded")
    }

    private static func detail(_ id: String, _ socket: [String]) throws -> CaseDetail {
        try decoder().decode(CaseDetail.self, from: Data(try CommandLineTool.run("sightctl", ["case", "show", id, "--json"] + socket).stdout.utf8))
    }

    /// The server's copy of the case verifies (chain, signatures, blobs present) and holds
    /// `entries` entries; each of its blobs equals the device's sealed file where that still exists.
    private static func expectServerVerifies(_ id: String, entries: UInt64, server: ArchiveServerProcess, device: DaemonProcess) async throws {
        let storage = try await server.storage()
        let journal = try await storage.journal(id)
        #expect(UInt64(journal.entries.count) == entries)
        let blobs = try await storage.blobs(of: id)
        let key = try Curve25519.Signing.PublicKey(rawRepresentation: journal.checkpoints.first?.publicKey ?? [])
        let result = JournalVerifier.verify(caseID: id, entries: journal.entries, checkpoints: journal.checkpoints, trustedKey: key) { blob in
            blobs[blob.hex] == nil ? "missing on the server" : nil
        }
        if case .failure(let link) = result { throw TestFailure("the server's copy does not verify: \(link)") }
        for sha in blobs.keys {
            let local = device.stateDirectory + "/archive/blobs/\(id)/\(sha)"
            if let deviceBytes = FileManager.default.contents(atPath: local) {
                #expect(try await storedBytes(id, sha, in: storage) == Array(deviceBytes))
            }
        }
    }

    @Test("Offline, the device keeps filing; once the archive is up it catches up, on demand and in the background", .timeLimit(.minutes(3)))
    func offlineThenCatchUp() async throws {
        let server = try ArchiveServerProcess()
        let metricsPort = try LoopbackPort.free()
        let (daemon, socket) = try await Self.daemon(syncingTo: server, metricsPort: metricsPort)
        let id = try CommandLineTool.run("sightctl", ["case", "open", "WO-SYNC"] + socket).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        for _ in 0..<3 { try await Self.snapshot(socket) }

        let offline = try CommandLineTool.run("sightctl", ["case", "sync", "--now"] + socket)
        #expect(offline.status == 1 && offline.stderr.contains("not reachable"), "\(offline.stdout)\(offline.stderr)")
        let pending = try Self.detail(id, socket)
        // Blobs are counted by content: two frames of the still test pattern may be one blob.
        let blobs = UInt64(Set(pending.items.compactMap(\.sha256)).count)
        #expect(pending.sync == ArchiveSyncCounts(pendingEntries: 4, pendingBlobs: blobs))
        #expect(try CommandLineTool.run("sightctl", ["case", "show", id] + socket).stdout
            .contains("sync:      0 entries and 0 blobs synced, 4 entries and \(blobs) blobs pending"))

        try await server.start()
        let synced = try CommandLineTool.run("sightctl", ["case", "sync", "--now", "--json"] + socket)
        #expect(synced.status == 0, "\(synced.stderr)")
        let report = try Self.decoder().decode(SyncReport.self, from: Data(synced.stdout.utf8))
        // The background loop's retry may have sent part of it first; together they sent all.
        #expect(report.counts == ArchiveSyncCounts(syncedEntries: 4, syncedBlobs: blobs), "\(report)")
        #expect(report.uploadedEntries != nil && report.status.lastError == nil)
        try await Self.expectServerVerifies(id, entries: 4, server: server, device: daemon)

        // New evidence goes up by itself within the interval (5 s) plus a pass.
        try await Self.snapshot(socket)
        let deadline = ContinuousClock.now + .seconds(60)
        while try Self.detail(id, socket).sync?.pendingEntries != 0 {
            guard ContinuousClock.now < deadline else { throw TestFailure("the background sync did not catch up within 60 s:\n\(daemon.log)") }
            try await Task.sleep(for: .milliseconds(200))
        }
        try await Self.expectServerVerifies(id, entries: 5, server: server, device: daemon)
        #expect(try CommandLineTool.run("sightctl", ["case", "verify", "--all"] + socket).status == 0)
        let metrics = try CommandLineTool.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(metricsPort)/metrics"]).stdout
        func counter(_ name: String) -> Double {
            metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? -1
        }
        #expect(counter("sightline_sync_uploaded_entries_total") == 5, "\(metrics)")
        #expect(counter("sightline_sync_failures_total") >= 1)
        #expect(counter("sightline_sync_uploaded_bytes_total") > 0)
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0)
    }

    @Test("delete_after_sync removes the local ciphertext only after confirmation; verify passes; export fetches it back, or says why it cannot", .timeLimit(.minutes(3)))
    func deleteAfterSync() async throws {
        let server = try ArchiveServerProcess()
        try await server.start()
        let (daemon, socket) = try await Self.daemon(syncingTo: server, deleteAfterSync: true)
        let id = try CommandLineTool.run("sightctl", ["case", "open", "WO-DELETE"] + socket).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        for _ in 0..<2 { try await Self.snapshot(socket) }
        let blobs = UInt64(Set(try Self.detail(id, socket).items.compactMap(\.sha256)).count)
        let blobDirectory = daemon.stateDirectory + "/archive/blobs/\(id)"

        let synced = try CommandLineTool.run("sightctl", ["case", "sync", "--now"] + socket)
        #expect(synced.status == 0 && synced.stdout.contains("removed \(blobs) local blob files"), "\(synced.stdout)\(synced.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: blobDirectory).isEmpty)
        try await Self.expectServerVerifies(id, entries: 3, server: server, device: daemon)
        #expect(try await server.storage().blobs(of: id).count == Int(blobs))
        #expect(try Self.detail(id, socket).sync == ArchiveSyncCounts(syncedEntries: 3, syncedBlobs: blobs, removedBlobs: blobs))

        let verify = try CommandLineTool.run("sightctl", ["case", "verify", id] + socket)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        // The export fetches the content back from the archive; the next pass removes it again.
        let export = try CommandLineTool.run("sightctl", ["case", "export", id, "--out", daemon.directory.file("x.zip")] + socket)
        #expect(export.status == 0, "\(export.stdout)\(export.stderr)")
        let checker = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/verify-case-export").path
        let check = try CommandLineTool.run("/usr/bin/python3", [checker, daemon.directory.file("x.zip")])
        #expect(check.status == 0 && check.stdout.contains("2 evidence files"), "\(check.stdout)\(check.stderr)")
        // (A background pass may have removed it already.)
        let again = try CommandLineTool.run("sightctl", ["case", "sync", "--now"] + socket)
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: blobDirectory).isEmpty)
        // With the archive down the export says why it cannot be made, and nothing changes.
        server.stop()
        let offline = try CommandLineTool.run("sightctl", ["case", "export", id, "--out", daemon.directory.file("y.zip")] + socket)
        #expect(offline.status == 1 && offline.stderr.contains("could not be fetched back"), "\(offline.stderr)")
        #expect(try CommandLineTool.run("sightctl", ["case", "verify", id] + socket).status == 0)
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0)
    }
}
