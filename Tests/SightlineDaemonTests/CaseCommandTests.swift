import Foundation
import SightlineControlClient
import SightlineCore
import SightlineTesting
import Testing

@Suite("Case commands", .serialized)
struct CaseCommandTests {
    static let checker = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/verify-case-export").path

    @Test("sightctl case open, list, show, close, verify and export against the real daemon")
    func caseLifecycle() async throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        try await daemon.waitUntilServing()
        let socket = ["--socket", daemon.socketPath]
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase

        #expect(try CommandLineTool.run("sightctl", ["case", "list"] + socket).stdout.hasPrefix("no cases yet"))
        let opened = try CommandLineTool.run("sightctl", ["case", "open", "WO-77", "--asset", "Pumpe P-3", "--title", "Leck", "--json"] + socket)
        #expect(opened.status == 0, "\(opened.stderr)")
        let summary = try decoder.decode(CaseSummary.self, from: Data(opened.stdout.utf8))
        #expect(summary.reference == "WO-77" && summary.asset == "Pumpe P-3" && summary.state == "open" && summary.entries == 1)
        let id = summary.id

        let list = try CommandLineTool.run("sightctl", ["case", "list", "--json"] + socket)
        #expect(try decoder.decode([CaseSummary].self, from: Data(list.stdout.utf8)).map(\.id) == [id])
        let show = try CommandLineTool.run("sightctl", ["case", "show", id] + socket)
        #expect(show.stdout.contains("reference: WO-77") && show.stdout.contains("journal:   1 entries"), "\(show.stdout)")

        // Participants and consents.
        let added = try CommandLineTool.run("sightctl", ["case", "participant", id, "tech-1", "--name", "Ana Tech", "--role", "technician"] + socket)
        #expect(added.status == 0 && added.stdout.contains("1 participant(s)"), "\(added.stdout)\(added.stderr)")
        let badRole = try CommandLineTool.run("sightctl", ["case", "participant", id, "x", "--name", "X", "--role", "boss"] + socket)
        #expect(badRole.status == 1 && badRole.stderr.contains("technician, expert"), "\(badRole.stderr)")
        let consent = try CommandLineTool.run("sightctl", ["case", "consent", id, "tech-1", "--scope", "recording", "--granted", "--call", "c-9"] + socket)
        #expect(consent.status == 0, "\(consent.stderr)")
        let stranger = try CommandLineTool.run("sightctl", ["case", "consent", id, "nobody", "--scope", "video", "--refused"] + socket)
        #expect(stranger.status == 1 && stranger.stderr.contains("not a participant"), "\(stranger.stderr)")
        let people = try CommandLineTool.run("sightctl", ["case", "show", id] + socket).stdout
        #expect(people.contains("participant: tech-1 Ana Tech (technician)") && people.contains("consent:   tech-1 granted recording"), "\(people)")

        // The person's own export (GDPR Art. 15).
        let personZip = daemon.directory.file("person.zip")
        let person = try CommandLineTool.run("sightctl", ["privacy", "export", "--person", "tech-1", "--out", personZip] + socket)
        #expect(person.status == 0, "\(person.stderr)")
        let listing = try CommandLineTool.run("/usr/bin/python3", ["-c", """
            import json, sys, zipfile
            z = zipfile.ZipFile(sys.argv[1]); p = json.loads(z.read("person.json"))
            print(sorted(z.namelist()), p["person_id"], [c["case_id"] for c in p["cases"]], len(p["cases"][0]["consents"]))
            """, personZip])
        #expect(listing.stdout.contains("tech-1 ['\(id)'] 1") && listing.stdout.contains("manifest.json.sig"), "\(listing.stdout)\(listing.stderr)")
        let nobody = try CommandLineTool.run("sightctl", ["privacy", "export", "--person", "nobody", "--out", daemon.directory.file("n.zip")] + socket)
        #expect(nobody.status == 1 && nobody.stderr.contains("no case references person nobody"), "\(nobody.stderr)")
        // Erasure (GDPR Art. 17): the person is a participant but made nothing, so nothing changes.
        let erase = try CommandLineTool.run("sightctl", ["privacy", "erase", "--person", "tech-1"] + socket)
        #expect(erase.status == 0 && erase.stdout.hasPrefix("person tech-1: 0 item(s) erased, 0 restricted"), "\(erase.stdout)\(erase.stderr)")
        let eraseNobody = try CommandLineTool.run("sightctl", ["privacy", "erase", "--person", "nobody"] + socket)
        #expect(eraseNobody.status == 1 && eraseNobody.stderr.contains("no case references person nobody"), "\(eraseNobody.stderr)")

        let closed = try CommandLineTool.run("sightctl", ["case", "close", id, "--reason", "repaired"] + socket)
        #expect(closed.status == 0 && closed.stdout.contains("closed"), "\(closed.stderr)")
        let again = try CommandLineTool.run("sightctl", ["case", "close", id] + socket)
        #expect(again.status == 1 && again.stderr.contains("already closed"), "\(again.stderr)")
        let unknown = try CommandLineTool.run("sightctl", ["case", "show", "no-such-case"] + socket)
        #expect(unknown.status == 1 && unknown.stderr.contains("no case no-such-case"), "\(unknown.stderr)")

        // Legal hold and an on-demand purge (nothing has expired yet).
        let noReason = try CommandLineTool.run("sightctl", ["case", "hold", id, "--reason", ""] + socket)
        #expect(noReason.status == 1 && noReason.stderr.contains("needs its reason"), "\(noReason.stderr)")
        let hold = try CommandLineTool.run("sightctl", ["case", "hold", id, "--reason", "warranty dispute"] + socket)
        #expect(hold.status == 0 && hold.stdout.contains("[legal hold: warranty dispute]"), "\(hold.stderr)")
        #expect(try CommandLineTool.run("sightctl", ["case", "show", id] + socket).stdout.contains("hold:      warranty dispute"))
        let release = try CommandLineTool.run("sightctl", ["case", "release", id] + socket)
        #expect(release.status == 0 && !release.stdout.contains("legal hold"), "\(release.stderr)")
        let purge = try CommandLineTool.run("sightctl", ["case", "purge"] + socket)
        #expect(purge.status == 0 && purge.stdout.hasPrefix("purged 0 item(s)"), "\(purge.stdout)\(purge.stderr)")

        let verify = try CommandLineTool.run("sightctl", ["case", "verify", id] + socket)
        #expect(verify.status == 0 && verify.stdout.hasPrefix("ok      \(id): 6 entries"), "\(verify.stdout)\(verify.stderr)")

        let out = daemon.directory.file("export.zip")
        let export = try CommandLineTool.run("sightctl", ["case", "export", id, "--out", out] + socket)
        #expect(export.status == 0, "\(export.stderr)")
        let identity = try await ControlClient(socketPath: daemon.socketPath).get(ControlAPI.identityPath, as: IdentityInfo.self)
        let check = try CommandLineTool.run("/usr/bin/python3", [Self.checker, out, "--fingerprint", identity.fingerprint])
        #expect(check.status == 0 && check.stdout.hasPrefix("OK case \(id): 6 entries"), "\(check.stdout)")

        // A changed row is named by `verify` and stops an export.
        let database = "\(daemon.stateDirectory)/archive/archive.sqlite"
        let tamper = try CommandLineTool.run("/usr/bin/python3", ["-c", """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1]); db.execute("UPDATE cases SET asset = 'Pumpe P-4'"); db.commit()
            """, database])
        #expect(tamper.status == 0, "\(tamper.stderr)")
        let broken = try CommandLineTool.run("sightctl", ["case", "verify", "--all"] + socket)
        #expect(broken.status == 1 && broken.stdout.contains("BROKEN") && broken.stdout.contains("column asset"), "\(broken.stdout)")
        let refused = try CommandLineTool.run("sightctl", ["case", "export", id, "--out", daemon.directory.file("bad.zip")] + socket)
        #expect(refused.status == 1 && refused.stderr.contains("does not verify"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: daemon.directory.file("bad.zip")))

        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0)
    }

    @Test("a call's record is filed in the active case, or in the unassigned case when none is open")
    func callRecordsAreFiled() async throws {
        let relay = try RelayProcess()
        try await relay.start()
        let daemon = try DaemonProcess(configuration: """
            camera:
              device: test-pattern
              width: 320
              height: 240
              fps: 15
            relay:
              url: \(relay.webSocketURL)
              token_file: \(relay.deviceTokenFile)

            """)
        try daemon.start()
        try await daemon.waitUntilServing()
        let client = ControlClient(socketPath: daemon.socketPath)
        let socket = ["--socket", daemon.socketPath]
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase

        // No case open: the call lands in the unassigned case.
        _ = try await client.post(ControlAPI.callPath, json: [String: String](), as: CallStatus.self)
        #expect(try CommandLineTool.run("sightctl", ["call", "end"] + socket).status == 0)
        let cases = try await client.get(ControlAPI.casesPath, as: [CaseSummary].self)
        #expect(cases.count == 1 && cases.first?.unassigned == true && cases.first?.items == 1, "\(cases)")
        let unassigned = try #require(cases.first)
        let stray = try #require(try await client.get(ControlAPI.casePath(unassigned.id), as: CaseDetail.self).items.first)

        let opened = try await client.post(ControlAPI.casesPath, json: CaseOpenRequest(reference: "WO-CALL"), as: CaseSummary.self)
        let call = try await client.post(ControlAPI.callPath, json: [String: String](), as: CallStatus.self)
        let link = try #require(call.invite)
        let invite = try #require(ExpertClient.Invite(link))
        let report = try await ExpertClient.run(invite, frames: 5, timeout: .seconds(60))
        #expect(report.framesOpened >= 5, "\(daemon.log)")
        let session = try #require(call.session)
        #expect(try CommandLineTool.run("sightctl", ["call", "end"] + socket).status == 0)

        let show = try CommandLineTool.run("sightctl", ["case", "show", opened.id, "--json"] + socket)
        let detail = try decoder.decode(CaseDetail.self, from: Data(show.stdout.utf8))
        let record = try #require(detail.items.first, "no call record in \(show.stdout)")
        #expect(record.kind == "call-record" && record.callId == session && record.retentionClass == "commercial-letter")
        #expect(record.callEncryption == "sframe-aes128gcm")
        #expect(record.callParticipantIds?.first == "device" && record.callParticipantIds?.count == 2, "\(record)")
        // The call filed while no case was open moves to the case it belongs to.
        let refile = try CommandLineTool.run("sightctl", ["case", "refile", stray.itemId, "--from", unassigned.id, "--to", opened.id] + socket)
        #expect(refile.status == 0 && refile.stdout.contains("2 items"), "refile: \(refile.stdout)\(refile.stderr)")
        let moved = try await client.get(ControlAPI.casePath(unassigned.id), as: CaseDetail.self)
        #expect(moved.items.first?.refiledToCaseId == opened.id)
        let again = try CommandLineTool.run("sightctl", ["case", "refile", stray.itemId, "--from", unassigned.id, "--to", opened.id] + socket)
        #expect(again.status == 1 && again.stderr.contains("already re-filed"), "\(again.stderr)")
        #expect(try CommandLineTool.run("sightctl", ["case", "verify", "--all"] + socket).status == 0)
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0)
    }

    @Test("sightctl snapshot files the photo in the active case; the export carries the JPEG")
    func snapshotsAreFiled() async throws {
        let daemon = try DaemonProcess(configuration: "camera:\n  device: test-pattern\n  width: 320\n  height: 240\n  fps: 15\n")
        try daemon.start()
        try await daemon.waitUntilServing()
        let socket = ["--socket", daemon.socketPath]
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let id = try CommandLineTool.run("sightctl", ["case", "open", "WO-PHOTO"] + socket).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        var snapshot: SnapshotInfo?
        for _ in 0..<50 {
            let result = try CommandLineTool.run("sightctl", ["snapshot", "--json"] + socket)
            if result.status == 0 {
                snapshot = try decoder.decode(SnapshotInfo.self, from: Data(result.stdout.utf8))
                break
            }
            try await Task.sleep(for: .milliseconds(100))  // the test pattern's first frame
        }
        let photo = try #require(snapshot)
        #expect(photo.caseId == id && photo.itemId != nil, "\(photo)")
        let text = try CommandLineTool.run("sightctl", ["snapshot"] + socket)
        #expect(text.stdout.contains("filed in case \(id) as item "), "\(text.stdout)\(text.stderr)")

        let detail = try decoder.decode(CaseDetail.self, from: Data(try CommandLineTool.run("sightctl", ["case", "show", id, "--json"] + socket).stdout.utf8))
        let item = try #require(detail.items.first { $0.itemId == photo.itemId })
        #expect(item.kind == "photo" && item.mediaType == "image/jpeg" && item.size == UInt64(photo.bytes))
        #expect(detail.items.count == 2)
        let out = daemon.directory.file("photo.zip")
        #expect(try CommandLineTool.run("sightctl", ["case", "export", id, "--out", out] + socket).status == 0)
        let check = try CommandLineTool.run("/usr/bin/python3", [Self.checker, out])
        #expect(check.status == 0 && check.stdout.contains("2 evidence files"), "\(check.stdout)")
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(15)) == 0)
    }
}
