import Foundation
import SightlineArchive
import SightlineArchiveServer
import SightlineCore
import SightlineSync
import SightlineTesting
import Testing

@Suite("Sync against a sightline-archive process")
struct ArchiveRestartTests {
    @Test("Archive SIGKILLed mid-upload and restarted: the device resumes where the server stopped, no duplicates, chains verified",
          .timeLimit(.minutes(5)), arguments: TestStore.allCases)
    func resumesAfterKill(store: TestStore) async throws {
        guard store.isAvailable() else { return }
        let postgres = try store == .postgres ? PostgresServer() : nil
        try await postgres?.start()
        defer { postgres?.stop() }
        let server = try ArchiveServerProcess(database: postgres?.url)
        try await server.start()
        // The test's own view of the store, as a second server sharing it would have.
        let observer = try await server.storage()
        let device = try DeviceArchive()
        let caseID = try device.fileCase(photos: 1, size: 16 << 20)
        try device.fileCase(photos: 3, size: 200_000, reference: "WO-2")
        let client = device.client(server.url, token: server.deviceToken, chunkBytes: 256 * 1024)
        let upload = Task { try await client.syncAll() }

        // Kill the server once a good part of the big blob is durable there.
        let sha = try device.archive.projection(caseID).items.first?.item.blob?.hex ?? ""
        let deadline = ContinuousClock.now + .seconds(120)
        while try await observer.receivedBytes(caseID, sha) < 3 << 20 {
            guard ContinuousClock.now < deadline else { throw TestFailure("the upload did not reach 3 MiB within 2 minutes") }
            try await Task.sleep(for: .milliseconds(5))
        }
        server.kill()
        await #expect(throws: ArchiveSyncError.self) { try await upload.value }
        let counts = try device.archive.syncCounts(caseID)
        #expect(counts.syncedEntries == 0 && counts.syncedBlobs == 0)
        let kept = Int(try await observer.receivedBytes(caseID, sha))

        let restarted = try server.restarted()
        try await restarted.start()
        // As the daemon's sync loop does, a pass that finds the archive unreachable is tried
        // again: on a loaded machine the first connection has been refused just after the
        // restarted server answered its health check. A server that stays away still fails.
        func syncRetryingUnreachable(attempts: Int) async throws -> ArchiveSyncPass {
            for attempt in 1..<attempts {
                do {
                    return try await client.syncAll()
                } catch .unreachable(let message) {
                    print("sync after the restart, attempt \(attempt): unreachable (\(message)); server log:\n\(restarted.log)")
                    try await Task.sleep(for: .seconds(1))
                }
            }
            return try await client.syncAll()
        }
        let resumed = try await syncRetryingUnreachable(attempts: 5)
        // Only what the killed server did not hold went again.
        let sealedSize = Int(ChunkedBlobFormat.sealedSize(plaintextSize: 16 << 20))
        #expect(kept > 0)
        #expect(resumed.bytes <= UInt64(sealedSize - kept + 3 * 300_000))
        #expect(resumed.blobs == 4)
        restarted.stop()

        for id in try device.archive.caseIDs() {
            try await expectServerHolds(id, of: device, storage: observer)
        }
        #expect(try await observer.blobs(of: caseID).count == 1)
        #expect(try await observer.receivedBytes(caseID, sha) == 0)
        if let sqlite = observer as? SQLiteArchiveStorage {
            // Owner-only storage: directories 0700, files 0600.
            for path in [restarted.dataDirectory, restarted.dataDirectory + "/blobs/\(caseID)"] {
                #expect((try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) == 0o700, "\(path)")
            }
            for path in [restarted.dataDirectory + "/archive.sqlite", sqlite.blobPath(caseID, sha)] {
                #expect((try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) == 0o600, "\(path)")
            }
        }
        await observer.close()
        #expect(try device.archive.syncCounts() == ArchiveSyncCounts(syncedEntries: 6, syncedBlobs: 4))
    }
}

extension ArchiveServerProcess {
    /// The server's store, opened from the test: its database, or its data directory (SQLite in
    /// WAL mode allows a second reader).
    func storage() async throws -> any ArchiveStorage {
        guard let database else { return try SQLiteArchiveStorage(directory: dataDirectory) }
        return try await PostgresArchiveStorage.open(try ArchiveDatabaseURL(database, defaultUser: ""), password: nil)
    }
}

@Suite("sightline-archive's configuration")
struct ArchiveServerConfigurationTests {
    @Test("Exits 78 with what to fix: readable token file, no tokens, plain HTTP beyond loopback, half a TLS pair, no data directory")
    func refusesBadConfiguration() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-config")
        let tokens = directory.file("devices")
        try Data("glasses-1 abcdefghijklmnop0123\n".utf8).write(to: URL(fileURLWithPath: tokens))
        let data = ["--data-dir", directory.file("data")]
        chmod(tokens, 0o644)
        let open = try CommandLineTool.run("sightline-archive", ["--listen", "127.0.0.1:18444", "--device-tokens", tokens] + data)
        #expect(open.status == 78 && open.stderr.contains("chmod 600"), "\(open.stderr)")
        chmod(tokens, 0o600)
        let none = try CommandLineTool.run("sightline-archive", ["--listen", "127.0.0.1:18444"] + data)
        #expect(none.status == 78 && none.stderr.contains("--device-tokens"), "\(none.stderr)")
        let network = try CommandLineTool.run("sightline-archive", ["--listen", "0.0.0.0:18444", "--device-tokens", tokens] + data)
        #expect(network.status == 78 && network.stderr.contains("--tls-certificate"), "\(network.stderr)")
        let half = try CommandLineTool.run("sightline-archive", ["--device-tokens", tokens, "--tls-key", tokens] + data)
        #expect(half.status == 78 && half.stderr.contains("go together"), "\(half.stderr)")
        let nowhere = try CommandLineTool.run("sightline-archive", ["--device-tokens", tokens], environment: ["STATE_DIRECTORY": ""])
        #expect(nowhere.status == 78 && nowhere.stderr.contains("--data-dir"), "\(nowhere.stderr)")
        let relative = try CommandLineTool.run("sightline-archive", ["--device-tokens", tokens, "--data-dir", "data"])
        #expect(relative.status == 78 && relative.stderr.contains("absolute"), "\(relative.stderr)")
    }
}

@Suite("sightline-archive on a full disk")
struct ArchiveFullDiskTests {
    /// The archive's data on a 2 MB tmpfs (private mount namespace): uploading 6 MB answers 507
    /// with the disk-full advice and keeps nothing half-stored; once the file system grows, the
    /// device's next pass completes and the copy verifies.
    @Test func aFullDiskAnswers507AndSyncResumes() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-full")
        let mountPoint = directory.file("mnt")
        mkdir(mountPoint, 0o700)
        let device = directory.file("device")
        let photos = try CommandLineTool.run("sightline-archive-writer", ["--photos", device, "6", "1000000"])
        #expect(photos.status == 0, "\(photos.stderr)")
        let token = "full-disk-token-0123456789"
        let tokens = directory.file("tokens")
        guard FileManager.default.createFile(atPath: tokens, contents: Data("device \(token)\n".utf8), attributes: [.posixPermissions: 0o600]) else {
            throw TestFailure("cannot write \(tokens)")
        }
        let port = try LoopbackPort.free()
        let script = """
            set -u
            dir=$1 out=$2 server=$3 writer=$4 device=$5 tokens=$6 port=$7 token=$8
            mount -t tmpfs -o size=2m,mode=0700 tmpfs "$dir" || exit 77
            "$server" --listen 127.0.0.1:$port --device-tokens "$tokens" --data-dir "$dir/data" > "$out/server.log" 2>&1 &
            pid=$!
            for i in $(seq 100); do curl -sf http://127.0.0.1:$port/health > /dev/null && break; sleep 0.1; done
            "$writer" --sync "$device" http://127.0.0.1:$port "$token" > "$out/sync1" 2> "$out/err1"; echo $? > "$out/status1"
            mount -o remount,size=32m "$dir"
            "$writer" --sync "$device" http://127.0.0.1:$port "$token" > "$out/sync2" 2> "$out/err2"; echo $? > "$out/status2"
            kill $pid; wait $pid
            """
        let run = try CommandLineTool.run("/usr/bin/unshare", ["--mount", "sh", "-c", script, "sh", mountPoint, directory.path,
                                                                BuiltProducts.path(of: "sightline-archive"), BuiltProducts.path(of: "sightline-archive-writer"),
                                                                device, tokens, "\(port)", token])
        if run.status == 77 || run.stderr.contains("unshare failed") || run.stderr.contains("Operation not permitted") {
            print("skipped the full-disk test: this environment cannot mount a tmpfs in a private namespace (\(run.stderr))")
            return
        }
        func read(_ name: String) -> String { (try? String(contentsOfFile: directory.file(name), encoding: .utf8)) ?? "" }
        #expect(read("status1").trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        #expect(read("err1").contains("(507)") && read("err1").contains("disk is full"), "\(read("err1"))\n\(read("server.log"))")
        #expect(read("status2").trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(read("err2"))")
        #expect(read("sync2").contains("\"blobs\": "), "\(read("sync2"))")
        #expect(try CommandLineTool.run("sightline-archive-writer", ["--verify", device]).stdout.hasPrefix("intact"))
    }
}
