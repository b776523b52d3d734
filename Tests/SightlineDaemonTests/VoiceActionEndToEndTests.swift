import Foundation
import SightlineControlClient
import SightlineCore
import SightlineTesting
import Testing

/// The whole path through a real PulseAudio server: a phrase synthesised by flite is played into
/// the null sink, the daemon captures the sink's monitor, recognises the command, runs the
/// action, fires the hook and journals it. Hooks that fail are reported while the daemon goes on.
@Suite("Voice actions end to end", .serialized)
struct VoiceActionEndToEndTests {
    static func status(_ daemon: DaemonProcess) async throws -> DaemonStatus {
        try await ControlClient(socketPath: daemon.socketPath).get(ControlAPI.statusPath, as: DaemonStatus.self)
    }

    /// Plays `phrases` (flite's slt, room tone underneath) into the null sink, each followed by its
    /// pause of room tone, and waits until pacat has played them all.
    func say(_ phrases: [String], pauses: [Double], lead: Double = 0, name: String, on server: PulseAudioServer) throws {
        var speech = SpeechSynthesizer.roomTone(seconds: lead)
        for (index, phrase) in phrases.enumerated() {
            speech += SpeechSynthesizer.inRoom(try SpeechSynthesizer.speak(phrase, voice: "slt"), seed: UInt64(speech.count + index))
            speech += SpeechSynthesizer.roomTone(seconds: pauses[index], seed: UInt64(speech.count + index + 1))
        }
        let raw = server.directory.file("\(name).raw")
        try Data(speech.withUnsafeBufferPointer { Data(buffer: $0) }).write(to: URL(fileURLWithPath: raw))
        let status = try server.play(rawFile: raw).wait()
        guard status == 0 else { throw TestFailure("pacat exited with \(status) playing \(name)") }
    }

    /// A loopback TCP port nobody listens on right now (the kernel's choice for port 0).
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("bind: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Polls `condition` until it holds; generous, because the machine may be loaded.
    /// An item's content, from a case export: filed media lives only encrypted in the archive.
    static func exportedContent(of itemId: String, in caseId: String, daemon: DaemonProcess) throws -> Data {
        let zip = daemon.directory.file("export-\(itemId).zip"), out = daemon.directory.file("content-\(itemId)")
        let export = try CommandLineTool.run("sightctl", ["case", "export", caseId, "--out", zip, "--socket", daemon.socketPath])
        guard export.status == 0 else { throw TestFailure("case export failed: \(export.stdout)\(export.stderr)") }
        let script = """
            import sys, zipfile
            archive = zipfile.ZipFile(sys.argv[1])
            name = next(n for n in archive.namelist() if n.startswith("evidence/" + sys.argv[2] + "."))
            open(sys.argv[3], "wb").write(archive.read(name))
            """
        let extract = try CommandLineTool.run("/usr/bin/python3", ["-c", script, zip, itemId, out])
        guard extract.status == 0 else { throw TestFailure("item \(itemId) not in the export: \(extract.stderr)") }
        return try Data(contentsOf: URL(fileURLWithPath: out))
    }

    /// A small built-in test pattern: the recordings and photos of these tests need a camera, not a real one.
    static let testPatternCamera = "camera:\n  device: test-pattern\n  width: 320\n  height: 240\n  fps: 10\n"

    static func waitFor(_ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("timed out waiting for \(what)")
    }

    @Test("spoken \"mark this step\" is captured from PulseAudio, runs, fires its hook and is journalled; a crashing hook is reported; a risky command taken back is cancelled; a spoken voice note ends at silence and is filed")
    func spokenCommandRunsHook() async throws {
        if let reason = PulseAudioServer.unavailableReason { print("skipped: \(reason)"); return }
        let server = try PulseAudioServer(sampleRate: 16000, channels: 1)
        try await server.start()
        let directory = try TemporaryDirectory(prefix: "sightline-hooks")
        let received = directory.file("hook-stdin.json")
        let hook = directory.file("record-hook")
        try "#!/bin/sh\ncat > \(received).tmp && mv \(received).tmp \(received)\n".write(toFile: hook, atomically: true, encoding: .utf8)
        let noteReceived = directory.file("note-hook-stdin.json")
        let noteHook = directory.file("note-hook")
        try "#!/bin/sh\ncat > \(noteReceived).tmp && mv \(noteReceived).tmp \(noteReceived)\n".write(toFile: noteHook, atomically: true, encoding: .utf8)
        chmod(noteHook, 0o755)
        let crash = directory.file("crash-hook")
        try "#!/bin/sh\necho zoom hook crashed >&2\nkill -SEGV $$\n".write(toFile: crash, atomically: true, encoding: .utf8)
        chmod(hook, 0o755)
        chmod(crash, 0o755)
        let daemon = try DaemonProcess(configuration: """
            # Rejected utterances are logged at debug: a failure then says what was heard.
            log_level: debug
            audio:
              backend: pulse
              capture_device: \(server.monitorSource)
              # The null sink is the microphone here: the daemon's spoken feedback must not
              # play into it, or it talks over (and into) the commands under test.
              playback_device: no_speaker_in_this_test
            camera:
              device: test-pattern
              width: 320
              height: 240
              fps: 5
            voice:
              enabled: true
            actions:
              cancel_window_ms: 6000
            hooks:
              run: ["mark_step=\(hook)", "zoom_in=\(crash)", "add_voice_note=\(noteHook)"]
              timeout_ms: 20000

            """, environment: ["PULSE_SERVER": server.server])
        try daemon.start()
        defer { daemon.signal(SIGKILL) }
        try await daemon.waitUntilServing()
        try await Self.waitFor("the recognizer to listen") { try await Self.status(daemon).voice?.listening == true }

        // A button press for an action this camera cannot do: answered, the crashing hook counted.
        let zoom = try CommandLineTool.run("sightctl", ["action", "zoom_in", "--socket", daemon.socketPath])
        #expect(zoom.status == 1)
        #expect(zoom.stdout.contains("zoom_in: unavailable"), "\(zoom.stdout)\(zoom.stderr)")
        try await Self.waitFor("the crashing hook to be counted") { try await Self.status(daemon).voice?.hookFailures == 1 }
        #expect(try await Self.status(daemon).voice?.lastHookFailure?.contains("killed by signal \(SIGSEGV)") == true)

        // Audio must flow before the phrase plays (an idle null sink starts in a block of about 2 s).
        try await Self.waitFor("captured audio") {
            let audio = try await ControlClient(socketPath: daemon.socketPath).get(ControlAPI.audioPath, as: AudioStatus.self)
            return (audio.capture?.frames ?? 0) >= 50
        }
        // Ordinary speech first: the recognizer's first utterance after a start scores low
        // (docs/VOICE.md), as it would on a site where people talk before the first command.
        try say(["the bearing on the left side is worn", "mark this step"], pauses: [1.0, 1.5], lead: 1.5, name: "phrase", on: server)

        do {
            try await Self.waitFor("the mark_step hook's stdin") { FileManager.default.fileExists(atPath: received) }
        } catch {
            print(daemon.log)
            print(try CommandLineTool.run("sightctl", ["audio", "--socket", daemon.socketPath]).stdout)
            print(try CommandLineTool.run("sightctl", ["status", "--socket", daemon.socketPath]).stdout)
            throw error
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let payload = try decoder.decode(HookPayload.self, from: Data(contentsOf: URL(fileURLWithPath: received)))
        #expect(payload.action == "mark_step" && payload.source == "voice" && payload.outcome == "done")
        #expect(payload.phrase == "mark this step")
        let identity = try await ControlClient(socketPath: daemon.socketPath).get(ControlAPI.identityPath, as: IdentityInfo.self)
        #expect(payload.device.fingerprint == identity.fingerprint)
        let caseID = try #require(payload.caseId)

        let journal = (daemon.stateDirectory as NSString).appendingPathComponent("voice/commands.jsonl")
        // The hook may run before the recognizer's journal line is appended: both follow the action.
        try await Self.waitFor("the command journal") { FileManager.default.fileExists(atPath: journal) }
        let lines = try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n")
        let entries = try lines.map { try JSONDecoder().decode(VoiceJournalEntry.self, from: Data($0.utf8)) }
        #expect(entries.map(\.action) == [.markStep], "\(lines)")
        #expect(entries.first?.result == "done")

        let detail = try await ControlClient(socketPath: daemon.socketPath).get(ControlAPI.casePath(caseID), as: CaseDetail.self)
        #expect(detail.items.contains { $0.kind == "text-note" && $0.itemId == payload.itemId })
        let event = try #require(detail.items.first { $0.kind == "voice-command" })
        #expect(event.text?.contains("\"phrase\":\"mark this step\"") == true, "\(event.text ?? "")")

        try await Self.waitFor("the hook run to be counted") { try await Self.status(daemon).voice?.hooksRun == 2 }
        let status = try await Self.status(daemon)
        #expect(status.voice?.lastCommand?.action == .markStep && status.voice?.lastCommand?.phrase == "mark this step")
        #expect(status.voice?.hookFailures == 1)
        let text = try CommandLineTool.run("sightctl", ["status", "--socket", daemon.socketPath])
        #expect(text.stdout.contains("voice:         listening, 2 actions, hooks 2 run, 1 failed, 0 dropped"), "\(text.stdout)")
        #expect(text.stdout.contains("\"mark this step\" mark_step (voice): done"), "\(text.stdout)")

        // A risky command said by mistake and taken back at once: nothing is recorded. The window
        // (6 s here) runs out while the note below plays.
        try say(["begin recording", "finish recording"], pauses: [0.7, 1.0], name: "oops", on: server)
        func journalEntries(_ action: VoiceAction) throws -> [String] {
            try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n")
                .map { try JSONDecoder().decode(VoiceJournalEntry.self, from: Data($0.utf8)) }.filter { $0.action == action }.map(\.result)
        }
        try await Self.waitFor("the cancelling command") { try !journalEntries(.stopRecording).isEmpty }
        #expect(try journalEntries(.stopRecording) == ["cancelled pending start_recording"])

        // A voice note: the command, a sentence, then silence ends it; the hook gets the filed note.
        try say(["add a voice note", "the pump seal is leaking oil at the front flange"], pauses: [0.8, 3.0], name: "note", on: server)
        do {
            try await Self.waitFor("the voice note's hook") { FileManager.default.fileExists(atPath: noteReceived) }
        } catch {
            print(daemon.log)
            throw error
        }
        let notePayload = try decoder.decode(HookPayload.self, from: Data(contentsOf: URL(fileURLWithPath: noteReceived)))
        #expect(notePayload.action == "add_voice_note" && notePayload.outcome == "done", "\(notePayload)")
        #expect(notePayload.artefacts.isEmpty, "a filed note leaves no plaintext file: \(notePayload.artefacts)")
        let wav = try WAVFile(data: Self.exportedContent(of: try #require(notePayload.itemId), in: try #require(notePayload.caseId), daemon: daemon))
        // The sentence (about 3 s) and the silence that ended it (1.5 s), not the whole recording.
        #expect(wav.sampleRate == 16000 && wav.duration > 3 && wav.duration < 8, "\(wav.duration) s")
        let noteCase = try await ControlClient(socketPath: daemon.socketPath).get(ControlAPI.casePath(try #require(notePayload.caseId)), as: CaseDetail.self)
        #expect(noteCase.items.contains { $0.itemId == notePayload.itemId && $0.kind == "audio-note" && $0.mediaType == "audio/wav" })
        try await Self.waitFor("the note's final journal line") { try journalEntries(.addVoiceNote).count == 2 }
        #expect(try journalEntries(.addVoiceNote) == ["pending: recording until silence or end_note", "done"])
        // Well past the cancelled recording's window: it never started.
        try await Task.sleep(for: .seconds(1))
        #expect(try journalEntries(.startRecording) == ["pending: runs in 6 s unless cancelled by stop_recording"])
        let evidence = (daemon.stateDirectory as NSString).appendingPathComponent("evidence/unassigned")
        // Nothing plaintext stays behind: no recording, no note (the folder may not exist at all).
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: evidence)) ?? []).allSatisfy { !$0.hasPrefix("recording-") && !$0.hasPrefix("note-") })

        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(20)) == 0)
    }

    @Test("from the control API: start/stop_recording file an H.264 recording, a second start is refused; take_photo files a JPEG; repeat_last; privacy")
    func recordingThroughControlAPI() async throws {
        let port = try Self.freeLoopbackPort()
        let daemon = try DaemonProcess(configuration: Self.testPatternCamera + """
            metrics:
              enabled: true
              listen: 127.0.0.1:\(port)

            """)
        try daemon.start()
        defer { daemon.signal(SIGKILL) }
        try await daemon.waitUntilServing()
        let client = ControlClient(socketPath: daemon.socketPath)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        func action(_ name: String) throws -> (Int32, ActionReport?) {
            let result = try CommandLineTool.run("sightctl", ["action", name, "--json", "--socket", daemon.socketPath])
            return (result.status, try? decoder.decode(ActionReport.self, from: Data(result.stdout.utf8)))
        }
        let (startStatus, start) = try action("start_recording")
        #expect(startStatus == 0)
        #expect(start?.outcome == .done && start?.source == .control, "a control request runs at once: \(String(describing: start))")
        let (againStatus, again) = try action("start_recording")
        #expect(againStatus == 1 && again?.outcome == .unavailable)
        try await Task.sleep(for: .seconds(2))
        let (stopStatus, stop) = try action("stop_recording")
        #expect(stopStatus == 0, "\(String(describing: stop))")
        let report = try #require(stop)
        #expect(report.outcome == .done && report.spoken == "Recording saved.")
        #expect(report.artefacts.isEmpty, "a filed recording leaves no plaintext file: \(report.artefacts)")
        let bytes = try Self.exportedContent(of: try #require(report.itemId), in: try #require(report.caseId), daemon: daemon)
        #expect(bytes.starts(with: [0, 0, 0, 1]) || bytes.starts(with: [0, 0, 1]), "not an Annex B stream")
        #expect(bytes.count > 1000)
        let detail = try await client.get(ControlAPI.casePath(try #require(report.caseId)), as: CaseDetail.self)
        let item = try #require(detail.items.first { $0.itemId == report.itemId })
        #expect(item.kind == "video-recording" && item.mediaType == "video/h264" && item.size == UInt64(bytes.count))
        let evidence = (daemon.stateDirectory as NSString).appendingPathComponent("evidence")
        let leftovers = (FileManager.default.enumerator(atPath: evidence)?.allObjects as? [String] ?? []).filter { $0.contains("recording-") }
        #expect(leftovers.isEmpty, "the recording's plaintext file stayed behind: \(leftovers)")
        let (_, none) = try action("stop_recording")
        #expect(none?.outcome == .unavailable)

        // A photo from a button: the full-resolution still, filed in the same case.
        let (photoStatus, photo) = try action("take_photo")
        #expect(photoStatus == 0 && photo?.outcome == .done, "\(String(describing: photo))")
        #expect(photo?.artefacts.isEmpty == true, "a filed photo leaves no plaintext file: \(String(describing: photo))")
        let photoCase = try await client.get(ControlAPI.casePath(try #require(photo?.caseId)), as: CaseDetail.self)
        #expect(photoCase.items.contains { $0.itemId == photo?.itemId && $0.kind == "photo" && $0.mediaType == "image/jpeg" && ($0.size ?? 0) > 1000 })
        let (_, again2) = try action("repeat_last")
        #expect(again2?.spoken == "Photo taken.")
        let (_, privacy) = try action("privacy_on")
        #expect(privacy?.outcome == .done)
        let (_, live) = try action("privacy_off")
        #expect(live?.outcome == .done)
        let status = try await client.get(ControlAPI.statusPath, as: DaemonStatus.self)
        #expect(status.voice?.enabled == false && status.voice?.actionsRun == 8, "\(String(describing: status.voice))")
        let metrics = try CommandLineTool.run("/usr/bin/curl", ["--silent", "--max-time", "10", "http://127.0.0.1:\(port)/metrics"]).stdout
        #expect(metrics.contains(#"sightline_actions_total{action="start_recording",outcome="unavailable"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"sightline_actions_total{action="take_photo",outcome="done"} 1"#))
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(20)) == 0)
    }

    @Test("a recording that reaches actions.recording_max_seconds stops by itself, is filed, and the stop_recording hook hears of it")
    func recordingStopsAtItsLimit() async throws {
        let directory = try TemporaryDirectory(prefix: "sightline-limit")
        let received = directory.file("stop-hook-stdin.json")
        let hook = directory.file("stop-hook")
        try "#!/bin/sh\ncat > \(received).tmp && mv \(received).tmp \(received)\n".write(toFile: hook, atomically: true, encoding: .utf8)
        chmod(hook, 0o755)
        let daemon = try DaemonProcess(configuration: Self.testPatternCamera + """
            actions:
              recording_max_seconds: 5
            hooks:
              run: ["stop_recording=\(hook)"]

            """)
        try daemon.start()
        defer { daemon.signal(SIGKILL) }
        try await daemon.waitUntilServing()
        let started = ContinuousClock.now
        let start = try CommandLineTool.run("sightctl", ["action", "start_recording", "--socket", daemon.socketPath])
        #expect(start.status == 0, "\(start.stdout)\(start.stderr)")
        try await Self.waitFor("the automatic stop's hook", timeout: .seconds(30)) { FileManager.default.fileExists(atPath: received) }
        let stoppedAfter = ContinuousClock.now - started
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let payload = try decoder.decode(HookPayload.self, from: Data(contentsOf: URL(fileURLWithPath: received)))
        #expect(payload.action == "stop_recording" && payload.source == "automatic" && payload.outcome == "done", "\(payload)")
        #expect(payload.result == "done")
        #expect(stoppedAfter >= .seconds(5), "stopped after \(stoppedAfter), before its 5 s limit")
        let client = ControlClient(socketPath: daemon.socketPath)
        let detail = try await client.get(ControlAPI.casePath(try #require(payload.caseId)), as: CaseDetail.self)
        let item = try #require(detail.items.first { $0.itemId == payload.itemId }, "\(detail.items)")
        #expect(item.kind == "video-recording" && (item.size ?? 0) > 1000)
        // The next recording starts normally: the limit left nothing behind.
        let again = try CommandLineTool.run("sightctl", ["action", "start_recording", "--socket", daemon.socketPath])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(20)) == 0)
    }

    @Test("a recording still running at SIGTERM is filed before the daemon exits")
    func recordingFiledAtShutdown() async throws {
        let configuration = Self.testPatternCamera
        let daemon = try DaemonProcess(configuration: configuration)
        try daemon.start()
        defer { daemon.signal(SIGKILL) }
        try await daemon.waitUntilServing()
        let start = try CommandLineTool.run("sightctl", ["action", "start_recording", "--socket", daemon.socketPath])
        #expect(start.status == 0, "\(start.stdout)\(start.stderr)")
        try await Task.sleep(for: .seconds(1.5))
        daemon.signal(SIGTERM)
        #expect(await daemon.waitForExit(timeout: .seconds(20)) == 0)
        #expect(daemon.log.contains("recording stopped by shutdown"), "\(daemon.log)")

        let again = try DaemonProcess(configuration: configuration, directory: daemon.directory)
        try again.start()
        defer { again.signal(SIGKILL) }
        try await again.waitUntilServing()
        let client = ControlClient(socketPath: again.socketPath)
        let cases = try await client.get(ControlAPI.casesPath, as: [CaseSummary].self)
        var kinds: [String] = []
        for summary in cases { kinds += try await client.get(ControlAPI.casePath(summary.id), as: CaseDetail.self).items.map(\.kind) }
        #expect(kinds.contains("video-recording"), "\(kinds)")
        again.signal(SIGTERM)
        #expect(await again.waitForExit(timeout: .seconds(20)) == 0)
    }
}
