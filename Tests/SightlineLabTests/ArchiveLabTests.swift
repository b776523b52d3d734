import Foundation
import SightlineControlClient
import SightlineCore
import SightlineTesting
import Testing

/// The evidence archive on a file system that runs full, inside the kernel lab (the only place
/// a test may mount a tmpfs).
extension DeviceLab {
    @Suite("Evidence archive on a full disk")
    struct ArchiveLabTests {
        @Test("snapshots until the state directory is full: 507 with the archive's message, nothing corrupted, filing resumes with space")
        func fullDiskIsRefusedAndRecovers() async throws {
            let daemon = try DaemonProcess(configuration: "camera:\n  device: test-pattern\n  width: 640\n  height: 480\n  fps: 5\n")
            try FileManager.default.createDirectory(atPath: daemon.stateDirectory, withIntermediateDirectories: true)
            // Room for the identity, the archive database and some stills of the test pattern.
            let mount = try CommandLineTool.run("/bin/mount", ["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", daemon.stateDirectory])
            try #require(mount.status == 0, "cannot mount a tmpfs: \(mount.stderr)")
            defer { _ = try? CommandLineTool.run("/bin/umount", ["-l", daemon.stateDirectory]) }
            try daemon.start()
            try await daemon.waitUntilServing()
            let socket = ["--socket", daemon.socketPath]
            let opened = try CommandLineTool.run("sightctl", ["case", "open", "WO-FULL"] + socket)
            #expect(opened.status == 0, "\(opened.stderr)")
            let caseID = opened.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase

            /// Snapshots (in process: a sightctl per still is slow under TCG) until one is refused;
            /// the number filed and the refusal's text.
            let client = ControlClient(socketPath: daemon.socketPath)
            func fillUntilRefused(limit: Int) async throws -> (filed: Int, refusal: String) {
                var filed = 0
                for _ in 0..<limit {
                    do {
                        let info = try await client.post(ControlAPI.snapshotPath, json: [String: String](), as: SnapshotInfo.self)
                        #expect(info.path == nil && info.caseId == caseID, "not filed in the case, or a plaintext copy: \(info)")
                        filed += 1
                    } catch let failure as ControlClient.Failure {
                        guard failure.description.contains("no frame captured yet") else { return (filed, failure.description) }
                        try await Task.sleep(for: .milliseconds(200))
                    }
                }
                return (filed, "")
            }
            let first = try await fillUntilRefused(limit: 400)
            #expect(first.filed > 3, "too few stills before the disk was full")
            #expect(first.refusal.contains("disk is full"), "\(first.refusal)")
            #expect(first.refusal.contains("Free space"), "the refusal does not say what to do: \(first.refusal)")
            #expect(daemon.process.isRunning)
            let status = try CommandLineTool.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                                                  "--unix-socket", daemon.socketPath, "http://localhost" + ControlAPI.snapshotPath])
            #expect(status.stdout == "507", "a full disk answers \(status.stdout)")
            let full = try CommandLineTool.run("sightctl", ["case", "verify", "--all"] + socket)
            #expect(full.status == 0 && full.stdout.contains("ok"), "\(full.stdout)\(full.stderr)")
            let evidence = (try? FileManager.default.contentsOfDirectory(atPath: "\(daemon.stateDirectory)/evidence")) ?? []
            #expect(evidence.isEmpty, "plaintext copies under evidence/: \(evidence)")

            // More room: filing resumes at once, and everything still verifies.
            let grow = try CommandLineTool.run("/bin/mount", ["-o", "remount,size=4m", daemon.stateDirectory])
            #expect(grow.status == 0, "\(grow.stderr)")
            let second = try await fillUntilRefused(limit: 3)
            #expect(second.filed == 3, "filing did not resume: \(second.refusal)")
            let after = try CommandLineTool.run("sightctl", ["case", "verify", caseID] + socket)
            #expect(after.status == 0, "\(after.stdout)\(after.stderr)")
            let detail = try CommandLineTool.run("sightctl", ["case", "show", caseID, "--json"] + socket)
            #expect(try decoder.decode(CaseDetail.self, from: Data(detail.stdout.utf8)).items.count == first.filed + 3)
            daemon.signal(SIGTERM)
            #expect(await daemon.waitForExit(timeout: .seconds(20)) == 0)
        }
    }
}
