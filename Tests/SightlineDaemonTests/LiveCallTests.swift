import Foundation
import SightlineControlClient
import SightlineCore
import SightlineEncoding
import SightlineTesting
import Synchronization
import Testing

/// The real daemon (test-pattern camera, OpenH264) and the real relay on loopback, with an
/// expert written in Swift against docs/PROTOCOL.md. The browser viewer has its own tests.
@Suite("Live call through the relay", .serialized)
struct LiveCallTests {
    /// A relay, a daemon configured for it, and a started call.
    struct Rig {
        let relay: RelayProcess
        let daemon: DaemonProcess
        let client: ControlClient

        init(codec: String = "h264", width: Int = 640, height: Int = 360) async throws {
            relay = try RelayProcess()
            try await relay.start()
            daemon = try DaemonProcess(configuration: """
                camera:
                  device: test-pattern
                  width: \(width)
                  height: \(height)
                  fps: 30
                relay:
                  url: \(relay.webSocketURL)
                  token_file: \(relay.deviceTokenFile)
                stream:
                  codec: \(codec)
                  bitrate_kbps: 800

                """)
            try daemon.start()
            try await daemon.waitUntilServing()
            client = ControlClient(socketPath: daemon.socketPath)
        }

        func startCall() async throws -> ExpertClient.Invite {
            let call = try await client.post(ControlAPI.callPath, json: [String: String](), as: CallStatus.self)
            let link = try #require(call.invite, "no invite in \(call)")
            #expect(link.hasPrefix("\(relay.httpURL)/v/"))
            return try #require(ExpertClient.Invite(link), "unparseable invite \(link)")
        }
    }

    @Test("an expert with the invite gets keys from a verified device and opens H.264 from a keyframe on")
    func expertSeesTheStream() async throws {
        let rig = try await Rig()
        let invite = try await rig.startCall()
        let report = try await ExpertClient.run(invite, frames: 45, timeout: .seconds(60))
        #expect(report.framesOpened >= 45, "opened \(report.framesOpened) of \(report.framesReceived); daemon log:\n\(rig.daemon.log)")
        #expect(report.openFailures == 0)
        #expect(report.firstOpenedWasKeyframe == true)
        let identity = try await rig.client.get(ControlAPI.identityPath, as: IdentityInfo.self)
        #expect(report.fingerprint == identity.fingerprint)
        let header = try #require(report.headers.first)
        #expect((header.codec, header.width, header.height) == (.h264, 640, 360))
        let keyframe = try #require(report.keyframePayloads.first)
        let types = AnnexB.nalUnits(in: keyframe).map(\.type)
        #expect(types.contains(AnnexB.NALType.sps) && types.contains(AnnexB.NALType.pps) && types.contains(AnnexB.NALType.idrSlice))
        // Capture times are real (wall clock, microseconds): frames arrive after their capture
        // and within seconds of it. How fast is the stream benchmark's business: here the
        // expert shares a loaded test process, which has held frames for over a second.
        let latencies = report.latenciesMs.sorted()
        #expect(latencies.first.map { $0 >= 0 } == true && latencies[latencies.count / 2] < 5000,
                "capture→open from \(latencies.first ?? -1) ms, median \(latencies[latencies.count / 2]) ms")

        let status = try await rig.client.get(ControlAPI.callPath, as: CallStatus.self)
        #expect(status.state == "live")
        #expect(status.framesSent >= 45)
        #expect(status.epoch >= 1)
        // The status says which encoder runs and why: here the probe's finding at start.
        let probe = VideoEncoders.hardwareProbe
        #expect(status.encoder == (probe.device == nil ? "software H.264 (OpenH264): \(probe)" : "hardware H.264: \(probe)"))
        let ended = try await rig.client.post(ControlAPI.callEndPath, json: [String: String](), as: CallStatus.self)
        #expect(ended.state == "idle")
    }

    @Test("the expert sees the reference of the case the call is filed in, and the new one when a case opens or closes mid-call")
    func caseReferenceFollowsTheOpenCase() async throws {
        let rig = try await Rig(width: 320, height: 240)
        let opened = try await rig.client.post(ControlAPI.casesPath, json: CaseOpenRequest(reference: "WO-4711"), as: CaseSummary.self)
        let invite = try await rig.startCall()
        let expected = [opened.reference, "INC-0815", "WO-4711"]
        // The expert stays until it has seen every change (or 40 s passed).
        let expert = Task {
            try await ExpertClient.run(invite, frames: .max, timeout: .seconds(40)) { Self.changes($0.streamStates.map { $0.caseReference ?? "none" }) == expected }
        }
        defer { expert.cancel() }
        func waitForLog(_ line: String) async throws {
            let deadline = ContinuousClock.now + .seconds(20)
            while !rig.daemon.log.contains(line) {
                guard ContinuousClock.now < deadline else { throw TestFailure("no \"\(line)\" in the daemon log:\n\(rig.daemon.log)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        try await waitForLog("call: new media key")
        _ = try await rig.client.post(ControlAPI.casesPath, json: CaseOpenRequest(reference: "INC-0815"), as: CaseSummary.self)
        try await waitForLog("call: now filed in case INC-0815")
        let second = try await rig.client.get(ControlAPI.casesPath, as: [CaseSummary].self).first { $0.reference == "INC-0815" }
        _ = try await rig.client.post(ControlAPI.casePath(try #require(second).id, "close"), json: CaseStateRequest(reason: "done"),
                                      as: CaseSummary.self)
        let references = try await expert.value.streamStates.map { $0.caseReference ?? "none" }
        #expect(Self.changes(references) == expected, "\(references)")
    }

    /// A sequence without its consecutive repeats (re-announcements): the changes an expert saw.
    static func changes<Value: Equatable>(_ values: [Value]) -> [Value] {
        values.reduce(into: [Value]()) { if $0.last != $1 { $0.append($1) } }
    }

    @Test("privacy_on pauses the camera: the expert is told, no frame leaves and a snapshot is refused; privacy_off resumes with a keyframe")
    func privacyPausesVideo() async throws {
        let rig = try await Rig(width: 320, height: 240)
        let invite = try await rig.startCall()
        let expert = Task {
            // Until it was told of both changes and then got a keyframe: leaving at a keyframe
            // from before privacy_off would leave the device without an audience to resume for.
            let keyframesAtResume = Mutex<Int?>(nil)
            return try await ExpertClient.run(invite, frames: .max, timeout: .seconds(40)) { report in
                guard Self.changes(report.streamStates.map(\.privacy)) == [false, true, false] else { return false }
                return keyframesAtResume.withLock { seen in
                    if seen == nil { seen = report.keyframes }
                    return report.keyframes > (seen ?? .max)
                }
            }
        }
        defer { expert.cancel() }
        func call() async throws -> CallStatus { try await rig.client.get(ControlAPI.callPath, as: CallStatus.self) }
        func waitFor(_ what: String, _ condition: (CallStatus) -> Bool) async throws -> CallStatus {
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                let status = try await call()
                if condition(status) { return status }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw TestFailure("\(what) did not happen within 20 s: \(try await call())\n\(rig.daemon.log)")
        }
        _ = try await waitFor("video to the expert") { $0.framesSent >= 30 }
        let on = try CommandLineTool.run("sightctl", ["action", "privacy_on", "--socket", rig.daemon.socketPath])
        #expect(on.status == 0, "\(on.stdout)\(on.stderr)")
        // A frame already in the encoder may still go out; after that, nothing for two seconds.
        try await Task.sleep(for: .milliseconds(500))
        let paused = try await call()
        try await Task.sleep(for: .seconds(2))
        #expect(try await call().framesSent == paused.framesSent, "video left the device in privacy mode")
        let snapshot = try CommandLineTool.run("sightctl", ["snapshot", "--socket", rig.daemon.socketPath])
        #expect(snapshot.status != 0 && (snapshot.stdout + snapshot.stderr).contains("privacy mode is on"), "\(snapshot.stdout)\(snapshot.stderr)")

        let off = try CommandLineTool.run("sightctl", ["action", "privacy_off", "--socket", rig.daemon.socketPath])
        #expect(off.status == 0, "\(off.stdout)\(off.stderr)")
        _ = try await waitFor("video to resume with a keyframe") {
            $0.framesSent > paused.framesSent && $0.keyframesSent > paused.keyframesSent
        }
        let report = try await expert.value
        let states = report.streamStates.map(\.privacy)
        #expect(Self.changes(states) == [false, true, false], "\(states)")
        #expect(report.keyframes >= 2 && report.openFailures == 0, "\(report.keyframes) keyframes, \(report.openFailures) failures")
    }

    /// The relay knows the session and the join token; so does this party. Without the call
    /// secret it gets no key, and the frames the relay fans out to it stay sealed.
    @Test("a party with the join token but not the secret gets no key and cannot open a single frame")
    func withoutTheSecretNothingOpens() async throws {
        let rig = try await Rig()
        let invite = try await rig.startCall()
        let impostor = Task { try await ExpertClient.run(invite, secret: CallSecret(), frames: 1, timeout: .seconds(8)) }
        let expert = try await ExpertClient.run(invite, frames: 60, timeout: .seconds(60))
        let stolen = try await impostor.value
        #expect(expert.framesOpened >= 60)
        #expect(stolen.keyExchangeFailed)
        #expect(stolen.kids.isEmpty)
        #expect(stolen.framesReceived > 0, "the relay fans out to every joined expert, so sealed frames did reach the impostor")
        #expect(stolen.framesOpened == 0)
        let status = try await rig.client.get(ControlAPI.callPath, as: CallStatus.self)
        #expect(status.verifiedExperts.count <= 1)
    }

    @Test("sightctl call prints the invite link; a wrong device token is reported with advice")
    func sightctlCallAndBadToken() async throws {
        let rig = try await Rig()
        let socket = ["--socket", rig.daemon.socketPath]
        let started = try CommandLineTool.run("sightctl", ["call"] + socket)
        #expect(started.status == 0, "\(started.stderr)")
        #expect(started.stdout.contains("invite:   \(rig.relay.httpURL)/v/"))
        let status = try CommandLineTool.run("sightctl", ["call", "status", "--json"] + socket)
        #expect(status.stdout.contains("\"state\" : \"live\""))
        #expect(try CommandLineTool.run("sightctl", ["call", "end"] + socket).stdout == "call ended\n")

        try "0000wrong\n".write(toFile: rig.relay.deviceTokenFile, atomically: false, encoding: .utf8)
        let refused = try CommandLineTool.run("sightctl", ["call"] + socket)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("relay.token_file"), "\(refused.stderr)")
        // The daemon keeps running and reports.
        #expect(rig.daemon.process.isRunning)
    }

    @Test("a relay addressed by IP over TLS: the device trusts exactly relay.ca_file, and without it says so")
    func relayByAddressOverTLS() async throws {
        let files = try TemporaryDirectory(prefix: "sightline-tls")
        let certificate = try TestCertificate(directory: files.path)
        let relay = try RelayProcess(tls: (certificate.certificatePath, certificate.keyPath))
        try await relay.start()
        #expect(relay.webSocketURL.hasPrefix("wss://127.0.0.1:"))
        for caFile in [certificate.certificatePath, nil] {
            let daemon = try DaemonProcess(configuration: """
                camera:
                  device: test-pattern
                  width: 320
                  height: 240
                relay:
                  url: \(relay.webSocketURL)
                  token_file: \(relay.deviceTokenFile)
                \(caFile.map { "  ca_file: \($0)" } ?? "")

                """)
            try daemon.start()
            try await daemon.waitUntilServing()
            let call = try CommandLineTool.run("sightctl", ["call", "--socket", daemon.socketPath])
            if caFile != nil {
                #expect(call.status == 0, "\(call.stderr)\n\(daemon.log)")
                #expect(call.stdout.contains("invite:   https://127.0.0.1:\(relay.port)/v/"))
            } else {
                #expect(call.status != 0)
                #expect(call.stderr.contains("relay.ca_file"), "\(call.stderr)")
            }
            daemon.signal(SIGTERM)
            _ = await daemon.waitForExit(timeout: .seconds(15))
        }
        relay.stop()
    }

    @Test("a relay that restarts loses its sessions: the call goes on in a new session with a new invite, and an expert with it sees frames")
    func relayRestart() async throws {
        let rig = try await Rig()
        let first = try await rig.startCall()
        kill(rig.relay.process.processIdentifier, SIGKILL)
        rig.relay.process.waitUntilExit()
        // The same relay comes back on its port with the same provisioned device and no sessions.
        let restarted = try RelayProcess(port: rig.relay.port, deviceToken: rig.relay.deviceToken)
        try await restarted.start()
        defer { restarted.stop() }
        var status = try await rig.client.get(ControlAPI.callPath, as: CallStatus.self)
        let deadline = ContinuousClock.now + .seconds(30)
        while status.state != "live" || status.session == first.session, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            status = try await rig.client.get(ControlAPI.callPath, as: CallStatus.self)
        }
        #expect(status.state == "live", "\(status)\n\(rig.daemon.log)")
        let link = try #require(status.invite)
        let invite = try #require(ExpertClient.Invite(link))
        #expect(invite.session != first.session)
        #expect(rig.daemon.log.contains("no longer knows session \(first.session)"))
        let report = try await ExpertClient.run(invite, frames: 10, timeout: .seconds(60))
        #expect(report.framesOpened >= 10, "opened \(report.framesOpened); daemon log:\n\(rig.daemon.log)")
        #expect(report.openFailures == 0)
    }
}
