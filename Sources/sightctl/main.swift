import ArgumentParser
import Foundation
import SightlineControlClient
import SightlineCore
import SightlineVoice

@main
struct Sightctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sightctl",
        abstract: "Operate a Sightline device: status, identity, configuration.",
        version: SightlineVersion.current,
        subcommands: [Status.self, Version.self, Identity.self, Config.self, Snapshot.self, Camera.self, Devices.self, Audio.self, Call.self, Case.self, Privacy.self, Voice.self, Action.self])
}

/// Options every command that talks to the daemon shares.
struct DaemonOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Control socket of the daemon.", valueName: "PATH"))
    var socket: String = ControlClient.defaultSocket

    @Flag(name: .long, help: "Print JSON for scripts instead of text for people.")
    var json = false

    var client: ControlClient { ControlClient(socketPath: socket) }
}

/// Prints `value` as the same snake_case JSON the control API speaks.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Downloads an export ZIP from the daemon into `destination` and says how big it is.
func saveExport(_ apiPath: String, to destination: String, _ options: DaemonOptions) async throws {
    let bytes = try await request { () async throws(ControlClient.Failure) in
        try await options.client.download(apiPath, to: destination)
    }
    print("\(destination): \(bytes) bytes")
}

/// Runs a daemon request and turns its failure into a message and an exit status.
func request<Value>(_ body: () async throws(ControlClient.Failure) -> Value) async throws -> Value {
    do {
        return try await body()
    } catch {
        FileHandle.standardError.write(Data("sightctl: \(error.description)\n".utf8))
        throw ExitCode(error.exitStatus)
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show what the daemon is doing.")
    @OptionGroup var options: DaemonOptions

    func run() async throws {
        let status = try await request { () async throws(ControlClient.Failure) in
            try await options.client.get(ControlAPI.statusPath, as: DaemonStatus.self)
        }
        if options.json { return try printJSON(status) }
        print("sightlined \(status.version) (pid \(status.pid)), up \(Int(status.uptimeSeconds)) s")
        print("configuration: \(status.configuration)")
        print("state:         \(status.stateDirectory)")
        print("identity:      \(status.fingerprint)")
        if let camera = status.camera {
            print("camera:        \(camera.source) \(camera.width)x\(camera.height)@\(camera.fps), "
                  + "\(camera.framesCaptured) frames, \(camera.framesDropped) dropped")
        }
        if let voice = status.voice {
            print("voice:         \(voice.enabled ? (voice.listening ? "listening" : "not listening") : "off"), "
                  + "\(voice.actionsRun) actions, hooks \(voice.hooksRun) run, \(voice.hookFailures) failed, \(voice.hooksDropped) dropped")
            if let last = voice.lastCommand {
                print("last command:  \(last.time) \(last.phrase.map { "\"\($0)\" " } ?? "")\(last.action.rawValue) (\(last.source.rawValue)): \(last.result)")
            }
            if let failure = voice.lastHookFailure { print("hook failure:  \(failure)") }
        }
        print("services:")
        let width = status.services.map(\.name.count).max() ?? 0
        for service in status.services {
            let name = service.name.padding(toLength: width, withPad: " ", startingAt: 0)
            print("  \(name)  \(service.state.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0))  \(service.detail)")
        }
    }
}

struct Version: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the versions of sightctl and of the running daemon.")
    @OptionGroup var options: DaemonOptions

    struct Report: Encodable {
        let sightctl: String
        let daemon: VersionInfo?
        let daemonError: String?
    }

    func run() async throws {
        var daemon: VersionInfo?
        var failure: String?
        do {
            daemon = try await options.client.get(ControlAPI.versionPath, as: VersionInfo.self)
        } catch {
            failure = error.description
        }
        if options.json { return try printJSON(Report(sightctl: SightlineVersion.current, daemon: daemon, daemonError: failure)) }
        print("sightctl   \(SightlineVersion.current)")
        if let daemon {
            print("sightlined \(daemon.version)")
            for (name, version) in daemon.libraries.sorted(by: { $0.key < $1.key }) {
                print("  \(name) \(version)")
            }
        } else if let failure {
            print("sightlined unknown: \(failure)")
        }
    }
}

struct Identity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the device identity fingerprint to register with your organisation.")
    @OptionGroup var options: DaemonOptions

    func run() async throws {
        let identity = try await request { () async throws(ControlClient.Failure) in
            try await options.client.get(ControlAPI.identityPath, as: IdentityInfo.self)
        }
        if options.json { return try printJSON(identity) }
        print(identity.fingerprint)
        print("algorithm:  \(identity.algorithm)")
        print("public key: \(identity.publicKey)")
        print("key file:   \(identity.keyPath)")
    }
}

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with configuration files.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration file exactly as sightlined does, without touching the daemon.")

        @Argument(help: ArgumentHelp("The file to check.", valueName: "PATH"))
        var path: String = DaemonConfiguration.defaultPath

        @Flag(name: .long, help: "Print JSON for scripts instead of text for people.")
        var json = false

        struct Report: Encodable {
            let file: String
            let valid: Bool
            let problems: [Problem]
        }

        struct Problem: Encodable {
            let line: Int?
            let key: String?
            let message: String
            let text: String
        }

        func run() async throws {
            let problems: [ConfigurationDiagnostic]
            do {
                _ = try DaemonConfiguration.load(path: path)
                problems = []
            } catch {
                problems = error.diagnostics
            }
            if json {
                try printJSON(Report(file: path, valid: problems.isEmpty, problems: problems.map {
                    Problem(line: $0.line, key: $0.key, message: $0.message, text: $0.description)
                }))
            } else if problems.isEmpty {
                print("\(path): valid")
            } else {
                for diagnostic in problems {
                    FileHandle.standardError.write(Data("\(diagnostic)\n".utf8))
                }
            }
            if !problems.isEmpty { throw ExitCode(78) }
        }
    }
}

struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "File the camera's current frame as a full-resolution JPEG in the active case and print the case and item.")
    @OptionGroup var options: DaemonOptions

    func run() async throws {
        let snapshot = try await request { () async throws(ControlClient.Failure) in
            try await options.client.post(ControlAPI.snapshotPath, json: [String: String](), as: SnapshotInfo.self)
        }
        if options.json { return try printJSON(snapshot) }
        if let caseID = snapshot.caseId, let itemID = snapshot.itemId {
            print("filed in case \(caseID) as item \(itemID)")
        } else {
            print(snapshot.path ?? "")
            FileHandle.standardError.write(Data("sightctl: the snapshot was not filed in the evidence archive, only saved as this plaintext file; see the daemon's log\n".utf8))
        }
    }
}

struct Camera: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Camera controls (zoom, focus, exposure, brightness, power-line frequency …).",
        subcommands: [Controls.self, Set.self])

    struct Controls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the camera's controls with their ranges and values.")
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let controls = try await request { () async throws(ControlClient.Failure) in
                try await options.client.get(ControlAPI.controlsPath, as: [CameraControl].self)
            }
            if options.json { return try printJSON(controls) }
            let width = controls.map(\.key.count).max() ?? 0
            for control in controls {
                let value = control.value.map(String.init) ?? "-"
                var line = "\(control.key.padding(toLength: width, withPad: " ", startingAt: 0))  \(control.kind.rawValue)  value \(value)"
                line += "  range \(control.minimum)…\(control.maximum)"
                if control.step > 1 { line += " step \(control.step)" }
                line += "  default \(control.defaultValue)"
                if let menu = control.menu, !menu.isEmpty {
                    line += "  (" + menu.enumerated().filter { !$0.element.isEmpty }
                        .map { "\(Int(control.minimum) + $0.offset)=\($0.element)" }.joined(separator: ", ") + ")"
                }
                if control.readOnly { line += "  read-only" }
                if control.inactive { line += "  inactive" }
                print(line)
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a camera control, e.g. sightctl camera set zoom_absolute 3.")
        @OptionGroup var options: DaemonOptions
        @Argument(help: "The control's key as listed by sightctl camera controls.") var name: String
        @Argument(help: "The new value.") var value: Int64

        func run() async throws {
            let change = try await request { () async throws(ControlClient.Failure) in
                try await options.client.post(ControlAPI.controlsPath, json: ControlChange(key: name, value: value), as: ControlChange.self)
            }
            if options.json { return try printJSON(change) }
            print("\(change.key) = \(change.value)")
        }
    }
}

struct Devices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List cameras, microphones, speakers and buttons with their role, identity and state.")
    @OptionGroup var options: DaemonOptions

    @Flag(name: .long, help: "Print device events as they happen (Ctrl-C to stop).")
    var watch = false

    func run() async throws {
        if watch {
            try await request { () async throws(ControlClient.Failure) in
                try await options.client.stream(ControlAPI.deviceEventsPath, as: DeviceEventRecord.self) { record in
                    let line: String
                    if options.json {
                        let encoder = JSONEncoder()
                        encoder.outputFormatting = [.sortedKeys]
                        encoder.keyEncodingStrategy = .convertToSnakeCase
                        line = (try? encoder.encode(record)).map { String(decoding: $0, as: UTF8.self) } ?? ""
                    } else {
                        let time = Date(timeIntervalSince1970: record.time).formatted(.iso8601.time(includingFractionalSeconds: true))
                        let who = [record.role?.rawValue, record.devnode, record.identity].compactMap { $0 }.joined(separator: " ")
                        line = "\(time) \(record.event.padding(toLength: 11, withPad: " ", startingAt: 0)) \(who)  \(record.detail)"
                    }
                    // Unbuffered: watchers are often pipes into other tools, each event goes out as it happens.
                    FileHandle.standardOutput.write(Data((line + "\n").utf8))
                }
            }
            return
        }
        let devices = try await request { () async throws(ControlClient.Failure) in
            try await options.client.get(ControlAPI.devicesPath, as: [DeviceStatus].self)
        }
        if options.json { return try printJSON(devices) }
        if devices.isEmpty { print("no devices found") }
        for entry in devices {
            let device = entry.device
            var line = "\(device.role.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) "
            line += "\(entry.state.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) "
            line += "\(device.stableLink ?? device.devnode)  \(device.name)  [\(device.identity)]"
            if let reason = entry.reason { line += "  failed: \(reason)" }
            if let why = entry.why { line += "  (\(why))" }
            print(line)
        }
    }
}

struct Audio: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the sound system in use, the microphone's level (RMS/peak dBFS), frames and xruns.")
    @OptionGroup var options: DaemonOptions
    @Flag(help: "Print a live level line four times a second until interrupted.")
    var watch = false
    @Option(help: ArgumentHelp("With --watch: stop after this many lines.", valueName: "N"))
    var count: Int?
    @Flag(help: "Privacy: mute the microphone at the source (nothing reaches voice commands or a call).")
    var mute = false
    @Flag(help: "Unmute the microphone.")
    var unmute = false

    /// One line of `--watch`: meter, levels, counters and privacy state.
    static func levelLine(_ audio: AudioStatus) -> String {
        guard let capture = audio.capture else { return "no microphone: \(audio.problem ?? "not open yet")" }
        guard !capture.muted else { return "muted (privacy): no samples leave the microphone" }
        guard let level = capture.level else { return "waiting for the first frame" }
        return level.meter() + String(format: " %6.1f dBFS RMS %6.1f peak", level.rmsDBFS, level.peakDBFS)
            + "  frames \(capture.frames)  xruns \(capture.xruns)"
    }

    static func describe(_ audio: AudioStatus) -> String {
        var lines = ["backend:   \(audio.backend) (audio.backend: \(audio.configured); \(audio.reason))",
                     "capture:   \(audio.captureDevice), \(audio.sampleRate) Hz, \(audio.channels) channel\(audio.channels == 1 ? "" : "s")"]
        if let why = audio.captureChoice { lines.append("  chosen:  \(why)") }
        if let speaker = audio.playbackDevice { lines.append("speaker:   \(speaker)") }
        if let why = audio.playbackChoice { lines.append("  chosen:  \(why)") }
        if let capture = audio.capture {
            lines.append("state:     \(capture.connected ? "connected" : "not connected")\(capture.muted ? ", muted (privacy)" : "")")
            if let level = capture.level {
                lines.append(String(format: "level:     %.1f dBFS RMS, %.1f dBFS peak", level.rmsDBFS, level.peakDBFS))
            }
            lines.append("frames:    \(capture.frames) delivered, \(capture.mutedFrames) muted, \(capture.xruns) xruns, \(capture.reconnects) reconnects")
            if let error = capture.lastError { lines.append("last error: \(error)") }
        }
        if let problem = audio.problem { lines.append("problem:   \(problem)") }
        return lines.joined(separator: "\n")
    }

    func validate() throws {
        if mute && unmute { throw ValidationError("--mute and --unmute exclude each other") }
    }

    func run() async throws {
        let audio = try await request { () async throws(ControlClient.Failure) in
            if mute || unmute {
                return try await options.client.post(ControlAPI.audioMutePath, json: AudioMuteRequest(muted: mute), as: AudioStatus.self)
            }
            return try await options.client.get(ControlAPI.audioPath, as: AudioStatus.self)
        }
        guard watch else {
            if options.json { return try printJSON(audio) }
            print(Self.describe(audio))
            return
        }
        var lines = 0
        var latest = audio
        while count.map({ lines < $0 }) ?? true {
            // Unbuffered, so a pipe sees each line as it comes.
            FileHandle.standardOutput.write(Data((Self.levelLine(latest) + "\n").utf8))
            lines += 1
            try await Task.sleep(for: .milliseconds(250))
            latest = try await request { () async throws(ControlClient.Failure) in
                try await options.client.get(ControlAPI.audioPath, as: AudioStatus.self)
            }
        }
    }
}

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call a remote expert: start a call and print its invite link, show it, or hang up.",
        subcommands: [Start.self, Status.self, End.self], defaultSubcommand: Start.self)

    static func describe(_ call: CallStatus) -> String {
        var lines = ["state:    \(call.state)"]
        if let invite = call.invite {
            lines.append("invite:   \(invite)")
            lines.append("          (the part after # is the call key: send the link only to the expert)")
        }
        lines.append("relay:    \(call.relay)")
        lines.append("experts:  \(call.verifiedExperts.isEmpty ? "none verified yet" : call.verifiedExperts.map(String.init).joined(separator: ", "))")
        if call.state != "idle" {
            lines.append("key:      epoch \(call.epoch)")
            lines.append("video:    \(call.step), \(call.framesSent) frames (\(call.keyframesSent) keyframes), \(call.bytesSent / 1024) KiB sent"
                + (call.lastEncodeMs.map { String(format: ", encode %.1f ms", $0) } ?? ""))
            if let encoder = call.encoder { lines.append("encoder:  \(encoder)") }
        }
        if let audio = call.audio {
            lines.append("audio:    \(audio.microphoneMuted ? "microphone muted (privacy), nothing sent" : "\(audio.framesSent) frames sent")"
                + ", \(audio.framesReceived) received from experts (\(audio.framesPlayed) played, \(audio.recovered) rebuilt by FEC, "
                + "\(audio.concealed) concealed, \(audio.late) late), jitter buffer \(audio.jitterBufferMs) ms")
            if let wait = audio.jitterWaitMsP50, let speaker = audio.speakerLatencyMsP50 {
                lines.append(String(format: "          expert's voice: %.0f ms in the jitter buffer, %.0f ms in the speaker's buffer", wait, speaker)
                    + (audio.expertToDeviceMsP50.map { String(format: ", %.0f ms on the way (by the two clocks)", $0) } ?? ""))
            }
        }
        if let error = call.lastError { lines.append("problem:  \(error)") }
        return lines.joined(separator: "\n")
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a call (or show the running one) and print the invite link.")
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let call = try await request { () async throws(ControlClient.Failure) in
                try await options.client.post(ControlAPI.callPath, json: [String: String](), as: CallStatus.self)
            }
            if options.json { return try printJSON(call) }
            print(Call.describe(call))
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the running call.")
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let call = try await request { () async throws(ControlClient.Failure) in
                try await options.client.get(ControlAPI.callPath, as: CallStatus.self)
            }
            if options.json { return try printJSON(call) }
            print(Call.describe(call))
        }
    }

    struct End: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hang up.")
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let call = try await request { () async throws(ControlClient.Failure) in
                try await options.client.post(ControlAPI.callEndPath, json: [String: String](), as: CallStatus.self)
            }
            if options.json { return try printJSON(call) }
            print("call ended")
        }
    }
}

/// `sightctl case …`: service cases and their evidence archive.
struct Case: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Service cases: open, close, list, show, verify and export the evidence archive.",
        subcommands: [Open.self, Close.self, Reopen.self, List.self, Show.self, Verify.self, Export.self, Hold.self, Release.self, Purge.self, Refile.self, Participant.self, Consent.self, Sync.self])

    static func time(_ milliseconds: Int64) -> String {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000).formatted(.iso8601)
    }

    static func line(_ summary: CaseSummary) -> String {
        let label = [summary.reference, summary.asset, summary.title].compactMap { $0 }.joined(separator: " · ")
        return "\(summary.id)  \(summary.state.padding(toLength: 8, withPad: " ", startingAt: 0))  \(time(summary.openedAt))  "
            + "\(summary.items) items  \(label)" + (summary.legalHold.map { "  [legal hold: \($0)]" } ?? "")
    }

    /// `close`, `reopen`, `hold` or `release`, which differ only in the endpoint.
    static func changeState(_ id: String, _ action: String, reason: String?, _ options: DaemonOptions) async throws {
        let summary = try await request { () async throws(ControlClient.Failure) in
            try await options.client.post(ControlAPI.casePath(id, action), json: CaseStateRequest(reason: reason), as: CaseSummary.self)
        }
        if options.json { return try printJSON(summary) }
        print(Case.line(summary))
    }

    struct Open: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Open a case for a ticket or work order and print its id.")
        @Argument(help: "The external reference: ticket or work-order number.") var reference: String
        @Option(help: "The asset (machine, serial number) the case is about.") var asset: String?
        @Option(help: "Where the asset is.") var site: String?
        @Option(help: "A short title.") var title: String?
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let body = CaseOpenRequest(reference: reference, asset: asset, site: site, title: title)
            let summary = try await request { () async throws(ControlClient.Failure) in
                try await options.client.post(ControlAPI.casesPath, json: body, as: CaseSummary.self)
            }
            if options.json { return try printJSON(summary) }
            print(summary.id)
        }
    }

    struct Close: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Close a case: it takes no more evidence until reopened.")
        @Argument(help: "The case id.") var id: String
        @Option(help: "Why, for the journal.") var reason: String?
        @OptionGroup var options: DaemonOptions

        func run() async throws { try await Case.changeState(id, "close", reason: reason, options) }
    }

    struct Reopen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reopen a closed case.")
        @Argument(help: "The case id.") var id: String
        @Option(help: "Why, for the journal.") var reason: String?
        @OptionGroup var options: DaemonOptions

        func run() async throws { try await Case.changeState(id, "reopen", reason: reason, options) }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the cases.")
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let cases = try await request { () async throws(ControlClient.Failure) in
                try await options.client.get(ControlAPI.casesPath, as: [CaseSummary].self)
            }
            if options.json { return try printJSON(cases) }
            if cases.isEmpty { print("no cases yet: open one with sightctl case open REFERENCE") }
            for summary in cases { print(Case.line(summary)) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a case: data, participants, consents and evidence.")
        @Argument(help: "The case id.") var id: String
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let detail = try await request { () async throws(ControlClient.Failure) in
                try await options.client.get(ControlAPI.casePath(id), as: CaseDetail.self)
            }
            if options.json { return try printJSON(detail) }
            let summary = detail.summary
            print("case:      \(summary.id)")
            print("reference: \(summary.reference)")
            if let asset = summary.asset { print("asset:     \(asset)") }
            if let site = summary.site { print("site:      \(site)") }
            if let title = summary.title { print("title:     \(title)") }
            print("state:     \(summary.state)\(summary.unassigned ? " (unassigned evidence)" : "")")
            print("opened:    \(Case.time(summary.openedAt))")
            print("journal:   \(summary.entries) entries, head \(detail.headHash)")
            if let hold = summary.legalHold { print("hold:      \(hold) (nothing is purged until released)") }
            if let sync = detail.sync { print("sync:      \(Case.syncLine(sync))") }
            for participant in detail.participants { print("participant: \(participant.participantId) \(participant.name) (\(participant.role))") }
            for consent in detail.consents {
                print("consent:   \(consent.participantId) \(consent.granted ? "granted" : "refused") \(consent.scope) at \(Case.time(consent.givenAt))"
                      + (consent.callId.map { " for call \($0)" } ?? ""))
            }
            for item in detail.items {
                var text = "item:      \(item.itemId) \(item.kind) \(Case.time(item.capturedAt))"
                if let size = item.size { text += " \(size) bytes" }
                if let note = item.text { text += " \"\(note)\"" }
                if let corrected = item.corrects { text += " corrects \(corrected)" }
                if let target = item.refiledToCaseId { text += " → re-filed to \(target)" }
                if let retention = item.retentionClass { text += " [\(retention)]" }
                if let purged = item.purged { text += " PURGED: \(purged)" }
                if let erased = item.erased { text += " ERASED: \(erased)" }
                if let restricted = item.restricted { text += " RESTRICTED: \(restricted)" }
                print(text)
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute a case's hash chain, signatures, blobs and rows; name the first broken link. Exit 1 if any case is broken.")
        @Argument(help: "The case id.") var id: String?
        @Flag(help: "Verify every case.") var all = false
        @OptionGroup var options: DaemonOptions

        func validate() throws {
            guard (id != nil) != all else { throw ValidationError("give a case id or --all") }
        }

        func run() async throws {
            let target = all ? ControlAPI.allCases : id ?? ControlAPI.allCases
            let results = try await request { () async throws(ControlClient.Failure) in
                try await options.client.get(ControlAPI.casePath(target, "verify"), as: [CaseVerification].self)
            }
            if options.json {
                try printJSON(results)
            } else {
                for result in results {
                    print(result.intact ? "ok      \(result.caseId): \(result.entries ?? 0) entries, \(result.items ?? 0) items"
                                        : "BROKEN  \(result.problem ?? result.caseId)")
                }
            }
            if results.contains(where: { !$0.intact }) { throw ExitCode(1) }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export a case as a ZIP: report, decrypted evidence, journal and a signed manifest (docs/ARCHIVE.md).")
        @Argument(help: "The case id.") var id: String
        @Option(help: ArgumentHelp("Where to write the ZIP (default: case-ID.zip here).", valueName: "FILE")) var out: String?
        @Flag(help: "Include the content of items restricted after an erasure request (only for legal claims or the tax authority, Art. 18 (2) GDPR).")
        var includeRestricted = false
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let path = ControlAPI.casePath(id, "export") + (includeRestricted ? "?include_restricted=true" : "")
            try await saveExport(path, to: out ?? "case-\(id).zip", options)
        }
    }
    struct Hold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a case on legal hold: nothing in it is purged until released.")
        @Argument(help: "The case id.") var id: String
        @Option(help: "Why (the dispute, audit or order the hold serves).") var reason: String
        @OptionGroup var options: DaemonOptions

        func run() async throws { try await Case.changeState(id, "hold", reason: reason, options) }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release a case's legal hold.")
        @Argument(help: "The case id.") var id: String
        @Option(help: "Why, for the journal.") var reason: String?
        @OptionGroup var options: DaemonOptions

        func run() async throws { try await Case.changeState(id, "release", reason: reason, options) }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete the content of evidence whose retention period ended now (the daemon also does it on its own); tombstones stay in the journals.")
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let report = try await request { () async throws(ControlClient.Failure) in
                try await options.client.post(ControlAPI.purgePath, json: [String: String](), as: PurgeReport.self)
            }
            if options.json { return try printJSON(report) }
            print("purged \(report.purged.count) item(s)")
            for item in report.purged {
                print("  \(item.caseId) \(item.itemId) [\(item.retentionClass)] expired \(Case.time(item.expiredAt))")
            }
        }
    }

    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what the organisation's archive has confirmed and what waits; --now uploads at once. Exit 1 if the pass fails.")
        @Flag(help: "Run a sync pass now and wait for it.") var now = false
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let report = try await request { () async throws(ControlClient.Failure) in
                // A pass may upload gigabytes: wait as long as it takes (an unreachable archive fails within seconds).
                now ? try await options.client.post(ControlAPI.syncPath, json: [String: String](), as: SyncReport.self, timeout: .hours(24))
                    : try await options.client.get(ControlAPI.syncPath, as: SyncReport.self)
            }
            if options.json { return try printJSON(report) }
            print("archive:   \(report.status.url)")
            if let entries = report.uploadedEntries {
                print("uploaded:  \(entries) entries, \(report.uploadedBlobs ?? 0) blobs, \(report.uploadedBytes ?? 0) bytes"
                      + ((report.removedBlobs ?? 0) > 0 ? "; removed \(report.removedBlobs ?? 0) local blob files" : ""))
            }
            print("state:     \(Case.syncLine(report.counts))")
            if let success = report.status.lastSuccessAt { print("last sync: \(Case.time(success))") }
            if let error = report.status.lastError {
                print("last error: \(error) (\(report.status.consecutiveFailures) failure(s) in a row)")
            }
        }
    }

    static func syncLine(_ counts: ArchiveSyncCounts) -> String {
        "\(counts.syncedEntries) entries and \(counts.syncedBlobs) blobs synced, \(counts.pendingEntries) entries and \(counts.pendingBlobs) blobs pending"
            + (counts.removedBlobs > 0 ? ", \(counts.removedBlobs) blob files removed after sync" : "")
    }

    struct Refile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move an item to another case (typically out of the unassigned case); both journals record the move.")
        @Argument(help: "The item id (sightctl case show).") var item: String
        @Option(help: "The case the item is in now.") var from: String
        @Option(help: "The case it belongs to.") var to: String
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let summary = try await request { () async throws(ControlClient.Failure) in
                try await options.client.post(ControlAPI.casePath(from, "refile"), json: CaseRefileRequest(itemId: item, toCaseId: to),
                                              as: CaseSummary.self)
            }
            if options.json { return try printJSON(summary) }
            print(Case.line(summary))
        }
    }

    struct Participant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a participant (who took part, in which role) to a case.")
        @Argument(help: "The case id.") var id: String
        @Argument(help: "The participant's id in this case (consents refer to it).") var person: String
        @Option(help: "The participant's name.") var name: String
        @Option(help: "technician, expert, customer, supervisor or observer.") var role: String
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let body = CaseParticipantRequest(id: person, name: name, role: role)
            let detail = try await request { () async throws(ControlClient.Failure) in
                try await options.client.post(ControlAPI.casePath(id, "participants"), json: body, as: CaseDetail.self)
            }
            if options.json { return try printJSON(detail) }
            print("\(id): \(detail.participants.count) participant(s)")
        }
    }

    struct Consent: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a participant's consent (or refusal), e.g. to a recording during a call.")
        @Argument(help: "The case id.") var id: String
        @Argument(help: "The participant's id.") var person: String
        @Option(help: "video, audio, recording, photo or data-processing.") var scope: String
        @Flag(name: .customLong("granted"), help: "The participant agreed.") var granted = false
        @Flag(name: .customLong("refused"), help: "The participant refused.") var refused = false
        @Option(help: "The call the consent is for.") var call: String?
        @OptionGroup var options: DaemonOptions

        func validate() throws {
            guard granted != refused else { throw ValidationError("say either --granted or --refused") }
        }

        func run() async throws {
            let body = CaseConsentRequest(person: person, scope: scope, granted: granted, call: call)
            let detail = try await request { () async throws(ControlClient.Failure) in
                try await options.client.post(ControlAPI.casePath(id, "consents"), json: body, as: CaseDetail.self)
            }
            if options.json { return try printJSON(detail) }
            print("\(id): consent of \(person) to \(scope) \(granted ? "granted" : "refused") recorded")
        }
    }
}

struct Voice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Voice commands: try the recognizer on a recording, list the active phrases.",
        subcommands: [Test.self, List.self])

    /// The configuration file the daemon reads, found the same way.
    struct ConfigOptions: ParsableArguments {
        @Option(name: .long, help: ArgumentHelp(
            "Configuration file (default: \(DaemonConfiguration.defaultPath) when it exists, else the built-in defaults).",
            valueName: "PATH"))
        var config: String?

        @Flag(name: .long, help: "Print JSON for scripts instead of text for people.")
        var json = false

        func load() throws -> DaemonConfiguration.VoiceConfiguration {
            do {
                return try DaemonConfiguration.load(explicitPath: config).0.voice
            } catch {
                for diagnostic in error.diagnostics { FileHandle.standardError.write(Data("\(diagnostic)\n".utf8)) }
                throw ExitCode(78)
            }
        }
    }

    static func fail(_ message: String, status: Int32) -> ExitCode {
        FileHandle.standardError.write(Data("sightctl: \(message)\n".utf8))
        return ExitCode(status)
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the daemon's recognizer and thresholds on a WAV file and print each command it hears.",
            discussion: "Any sample rate and channel count; the audio is mixed to mono and resampled to 16 kHz. "
                + "No daemon is needed: the recognizer runs in this process.")

        @Argument(help: ArgumentHelp("The recording.", valueName: "FILE.wav"))
        var file: String

        @Flag(name: .long, help: "Also show the utterances that were rejected, with their margin and the reason.")
        var all = false

        @Option(name: .long, help: ArgumentHelp("Also write the audio as the decoders heard it, after noise suppression (16 kHz mono).",
                                                 valueName: "OUT.wav"))
        var writeHeard: String?

        @OptionGroup var options: ConfigOptions

        struct Detection: Encodable {
            let phrase: String
            let action: String?
            let startS: Double
            let endS: Double
            let score: Int
            let margin: Int
            let snrDB: Double?
            /// When the end silence closed the utterance and the verdict was given.
            let decidedS: Double
            /// (grammar − all-phone) acoustic score per 10 ms over the phrase's last word.
            let lastWordMargin: Double?
            /// Judged by the decoders on the noise-adapted model.
            let noiseAdapted: Bool
            let rejected: String?

            enum CodingKeys: String, CodingKey {
                case phrase, action, score, margin, rejected
                case startS = "start_s"
                case endS = "end_s"
                case snrDB = "snr_db"
                case decidedS = "decided_s"
                case lastWordMargin = "last_word_margin"
                case noiseAdapted = "noise_adapted"
            }

            init(_ decision: UtteranceDecision) {
                phrase = decision.phrase
                action = decision.action?.rawValue
                startS = (decision.startSeconds * 100).rounded() / 100
                endS = (decision.endSeconds * 100).rounded() / 100
                score = decision.score
                margin = decision.margin
                snrDB = decision.signalToNoise.map { ($0 * 10).rounded() / 10 }
                decidedS = (decision.decidedAtSeconds * 100).rounded() / 100
                lastWordMargin = decision.lastWordMargin.map { ($0 * 10).rounded() / 10 }
                noiseAdapted = decision.noiseAdapted
                rejected = decision.rejection?.rawValue
            }
        }

        struct Report: Encodable {
            let detections: [Detection]
            let rejected: [Detection]?
        }

        func run() async throws {
            let voice = try options.load()
            let samples: [Int16]
            do {
                samples = try WAVFile(contentsOf: file).monoSamples(rate: CommandRecognizer.sampleRate)
            } catch let error as WAVFile.Failure {
                throw Voice.fail("\(file): \(error.description)", status: 65)
            } catch {
                throw Voice.fail("\(file): \(error)", status: 65)
            }
            let result: (decisions: [UtteranceDecision], heard: [Int16]?)
            do {
                result = try await CommandRecognizer.decide(
                    samples: samples, modelDirectory: voice.modelDirectory, vocabulary: voice.vocabulary, thresholds: voice.thresholds,
                    noiseTransformFile: voice.noiseTransformFile, keepingHeardAudio: writeHeard != nil)
            } catch {
                // A transform file that does not fit is the configuration's fault, like a bad key.
                let configurationError = if case .noiseTransformUnusable = error { true } else { false }
                throw Voice.fail(error.description, status: configurationError ? 78 : 69)
            }
            if let writeHeard, let heard = result.heard {
                do {
                    try WAVFile.encode(samples: heard, sampleRate: CommandRecognizer.sampleRate, channels: 1)
                        .write(to: URL(fileURLWithPath: writeHeard))
                } catch {
                    throw Voice.fail("\(writeHeard): \(error.localizedDescription)", status: 73)
                }
            }
            let decisions = result.decisions
            let accepted = decisions.filter(\.accepted).map(Detection.init)
            let rejected = decisions.filter { !$0.accepted }.map(Detection.init)
            if options.json {
                return try printJSON(Report(detections: accepted, rejected: all ? rejected : nil))
            }
            for detection in all ? decisions.map(Detection.init) : accepted {
                var line = String(format: "%7.2f–%.2f s  %@", detection.startS, detection.endS, detection.phrase.isEmpty ? "(no phrase)" : detection.phrase)
                if let action = detection.action { line += " → \(action)" }
                line += "  score \(detection.score)  margin \(detection.margin)"
                if let lastWord = detection.lastWordMargin { line += "  last word \(lastWord)" }
                if let snr = detection.snrDB { line += "  SNR \(snr) dB" + (detection.noiseAdapted ? " (noise-adapted model)" : "") }
                if let reason = detection.rejected { line += "  rejected: \(reason.replacingOccurrences(of: "_", with: " "))" }
                print(line)
            }
            if accepted.isEmpty { print("no command heard in \(String(format: "%.1f", Double(samples.count) / 16000)) s") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the phrases the recognizer listens for and the action of each.")
        @OptionGroup var options: ConfigOptions

        struct Report: Encodable {
            let phrases: [VoicePhrase]
            /// Said before every phrase (`voice.wake_phrase`); absent when there is none.
            let wakePhrase: String?
        }

        func run() async throws {
            let voice = try options.load()
            let wake = voice.vocabulary.wakeWords.isEmpty ? nil : voice.vocabulary.wakeWords.joined(separator: " ")
            if options.json { return try printJSON(Report(phrases: voice.vocabulary.phrases, wakePhrase: wake)) }
            if let wake { print("every command starts with \"\(wake)\"") }
            let width = voice.vocabulary.phrases.map(\.phrase.count).max() ?? 0
            for phrase in voice.vocabulary.phrases {
                print("\(phrase.phrase.padding(toLength: width, withPad: " ", startingAt: 0))  \(phrase.action.rawValue)")
            }
        }
    }
}

/// `sightctl privacy …`: data subjects' rights over the evidence archive.
struct Privacy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Data protection: export or erase what the archive holds about a person.",
                                                    subcommands: [Export.self, Erase.self])

    struct Erase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase a person's evidence where no retention duty keeps it, restrict the rest (GDPR Art. 17, 18); every decision is journaled.")
        @Option(help: "The person's participant id, as used in the cases.") var person: String
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            let report = try await request { () async throws(ControlClient.Failure) in
                try await options.client.post(ControlAPI.personErasePath(person), json: [String: String](), as: PersonErasureReport.self)
            }
            if options.json { return try printJSON(report) }
            let erased = report.items.filter { $0.action == "erased" }.count
            let restricted = report.items.filter { $0.action == "restricted" }.count
            print("person \(report.personId): \(erased) item(s) erased, \(restricted) restricted, \(report.items.count - erased - restricted) unchanged")
            for item in report.items {
                print("  \(item.action.padding(toLength: 10, withPad: " ", startingAt: 0)) \(item.caseId) \(item.itemId) [\(item.retentionClass ?? "-")]: \(item.reason)")
            }
            print("journal entries (participant records, item texts) stay: the chains that prove the rest depend on them")
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a signed ZIP of a person's participant records, consents and the evidence they made or took part in (GDPR Art. 15).")
        @Option(help: "The person's participant id, as used in the cases.") var person: String
        @Option(help: ArgumentHelp("Where to write the ZIP (default: person-ID.zip here).", valueName: "FILE")) var out: String?
        @OptionGroup var options: DaemonOptions

        func run() async throws {
            try await saveExport(ControlAPI.personExportPath(person), to: out ?? "person-\(person).zip", options)
        }
    }
}

struct Action: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an action as a voice command would (for buttons, foot pedals, scanners): take_photo, mark_step, call_expert …",
        discussion: "Actions: \(VoiceAction.names). Unlike a spoken command, a risky action runs at once: a deliberate request needs no cancellation window.")
    @OptionGroup var options: DaemonOptions

    @Argument(help: ArgumentHelp("The action's name, as in voice.phrases.", valueName: "NAME"))
    var name: String

    func run() async throws {
        guard VoiceAction(rawValue: name) != nil else {
            throw ValidationError("\(name) is not an action; actions: \(VoiceAction.names)")
        }
        let report = try await request { () async throws(ControlClient.Failure) in
            try await options.client.post(ControlAPI.actionPath(name), json: [String: String](), as: ActionReport.self)
        }
        if options.json {
            try printJSON(report)
        } else {
            print("\(report.action.rawValue): \(report.result)")
            if let caseID = report.caseId { print("case:  \(caseID)\(report.itemId.map { " item \($0)" } ?? "")") }
            for artefact in report.artefacts { print("file:  \(artefact)") }
            print("said:  \(report.spoken)")
        }
        // Scripts (a foot pedal's handler) learn from the status that nothing happened.
        if report.outcome == .failed || report.outcome == .unavailable { throw ExitCode(1) }
    }
}
