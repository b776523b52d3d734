import Crypto
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import SightlineArchive
import SightlineCore
import SightlineEncoding
import Synchronization

/// Starts and ends calls to a remote expert. One call at a time; it lives until hung up or
/// the daemon stops, riding out network drops.
final class CallService: Service, Sendable {
    private let configuration: DaemonConfiguration
    private let identity: Curve25519.Signing.PrivateKey
    private let camera: CameraService
    private let cases: CaseService
    private let audio: AudioService
    private let logger: Logger
    private let current = Mutex<(link: RelayLink, task: Task<Void, Never>, startedAt: EpochMilliseconds)?>(nil)
    /// Call records on their way into the archive; shutdown and the hang-up request wait for them.
    private let filing = Mutex<[Task<Void, Never>]>([])

    init(configuration: DaemonConfiguration, identity: Curve25519.Signing.PrivateKey, camera: CameraService, cases: CaseService,
         audio: AudioService, logger: Logger) {
        self.configuration = configuration
        self.audio = audio
        self.identity = identity
        self.camera = camera
        self.cases = cases
        self.logger = logger
    }

    func run() async throws {
        try? await gracefulShutdown()
        _ = endCall()
        await callRecordsFiled()
    }

    /// Returns once every ended call's record is in the archive (or failed to get there).
    func callRecordsFiled() async {
        for task in filing.withLock({ tasks in defer { tasks.removeAll() }; return tasks }) { await task.value }
    }

    /// Opens a session on the relay and returns the invite; a running call is returned as is.
    func startCall() async throws -> CallStatus {
        if let running = current.withLock({ $0?.link }), running.snapshot.phase != .failed {
            return status()
        }
        let credentials: RelayCredentials
        do {
            credentials = try RelayCredentials.load(configuration.relay)
        } catch {
            throw HTTPError(.serviceUnavailable, message: error.description)
        }
        let camera = configuration.camera
        let settings = EncoderSettings(width: camera.width, height: camera.height, fps: Double(camera.fps),
                                       bitrateKbps: configuration.stream.bitrateKbps,
                                       keyframeInterval: camera.fps * 10)
        // The expert sees which job the call is about; an archive that cannot answer hides it.
        let media = MediaSender(camera: self.camera, codec: configuration.stream.codec == "jpeg" ? .jpeg : .h264,
                                settings: settings, caseReference: await cases.openCaseReference(), logger: logger)
        let link = RelayLink(credentials: credentials, identity: identity,
                             rekeyInterval: .seconds(configuration.stream.rekeySeconds),
                             camera: self.camera, media: media, voice: CallAudio(audio: audio, media: media, logger: logger), logger: logger)
        let task = Task { [cases] in
            async let following: Void = Self.followOpenCase(cases, media: media)
            await link.run()
        }
        current.withLock { previous in
            previous?.task.cancel()
            previous = (link, task, EvidenceArchive.systemClock())
        }
        guard await link.waitForSession(timeout: .seconds(10)) != nil else {
            let reason = link.snapshot.lastError ?? "the relay did not open a session within 10 s"
            _ = endCall()
            throw HTTPError(.badGateway, message: "call not started: \(reason)")
        }
        logger.info("call: invite ready", metadata: ["session": "\(link.snapshot.session ?? "")"])
        return status()
    }

    /// Keeps the call's case reference current while cases open and close during the call
    /// (checked once a second; the relay link tells the experts on a change).
    private static func followOpenCase(_ cases: CaseService, media: MediaSender) async {
        var seen = cases.openCasesVersion
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let version = cases.openCasesVersion
            guard version != seen else { continue }
            seen = version
            media.setCaseReference(await cases.openCaseReference())
        }
    }

    /// Hangs up; false when no call was running.
    func endCall() -> Bool {
        guard let running = current.withLock({ current in defer { current = nil }; return current }) else { return false }
        running.task.cancel()
        logger.info("call: ended")
        let snapshot = running.link.snapshot
        if let session = snapshot.session {
            // The call record goes into the active case: who took part, when, and whether media was end-to-end encrypted.
            let experts = snapshot.participatedExperts.map { "expert-\($0)" }
            let call = CallSummary(callID: session, startedAt: running.startedAt, endedAt: EvidenceArchive.systemClock(),
                                   participantIDs: ["device"] + experts,
                                   encryption: experts.isEmpty ? "none (no expert completed the key exchange)" : "sframe-aes128gcm")
            let cases = cases, logger = logger
            let task = Task {
                do {
                    let (caseID, item) = try await cases.perform { archive in
                        let caseID = try archive.activeCaseID()
                        return (caseID, try archive.file(EvidenceDraft(kind: .callRecord, capturedAt: call.startedAt, call: call), into: caseID))
                    }
                    logger.info("call: record filed", metadata: ["case": "\(caseID)", "item": "\(item.id)"])
                } catch {
                    logger.error("call: record not filed in the archive", metadata: ["session": "\(session)", "error": "\(error)"])
                }
            }
            filing.withLock { $0.append(task) }
        }
        return true
    }

    func status() -> CallStatus {
        let relay = configuration.relay
        guard let link = current.withLock({ $0?.link }) else {
            return CallStatus(state: "idle", session: nil, invite: nil, relay: relay.url, verifiedExperts: [], epoch: 0, step: "full",
                              framesSent: 0, keyframesSent: 0, bytesSent: 0, lastEncodeMs: nil, lastError: nil)
        }
        let snapshot = link.snapshot
        let telemetry = link.media.telemetry.withLock { $0 }
        return CallStatus(
            state: snapshot.phase.rawValue, session: snapshot.session,
            invite: snapshot.session.map { link.secret.inviteLink(relayURL: relay.publicURL, session: $0) },
            relay: relay.url, verifiedExperts: snapshot.verifiedExperts, epoch: snapshot.epoch, step: link.media.currentStep.rawValue,
            framesSent: telemetry.framesSent, keyframesSent: telemetry.keyframesSent, bytesSent: telemetry.bytesSent,
            lastEncodeMs: telemetry.lastEncodeMs, lastError: snapshot.lastError, audio: link.voice.status, encoder: telemetry.encoder)
    }
}
