import Crypto
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOWebSocket
import SightlineCore
import Synchronization
import HummingbirdWSClient

/// One call's connection to the relay: opens the session, keeps it through network drops
/// (resuming the same session), runs the call state machine and the media sender.
final class RelayLink: Sendable {
    enum Phase: String, Sendable {
        case connecting, live, reconnecting, failed, ended
    }

    struct Snapshot: Sendable {
        var phase: Phase = .connecting
        var session: String?
        var verifiedExperts: [UInt32] = []
        /// Every expert that completed the key exchange at some point of the call, for its record.
        var participatedExperts: [UInt32] = []
        var epoch: UInt32 = 0
        var lastError: String?
    }

    let secret = CallSecret()
    let media: MediaSender
    /// The voice channel: microphone out, experts' voices in.
    let voice: CallAudio
    private let credentials: RelayCredentials
    private let identity: Curve25519.Signing.PrivateKey
    private let rekeyInterval: Duration
    private let camera: CameraService
    private let logger: Logger
    private let state = Mutex(Snapshot())
    private let sessionWaiters = Mutex<[CheckedContinuation<String?, Never>]>([])
    /// The call's state machine; nil until the relay names the session.
    private let call = Mutex<DeviceCallState?>(nil)
    private let ladder = Mutex(DegradationLadder())
    /// The most any receiver had dropped since the ladder last looked (relay reports).
    private let droppedThisSecond = Mutex(0)

    init(credentials: RelayCredentials, identity: Curve25519.Signing.PrivateKey, rekeyInterval: Duration,
         camera: CameraService, media: MediaSender, voice: CallAudio, logger: Logger) {
        self.voice = voice
        self.credentials = credentials
        self.identity = identity
        self.rekeyInterval = rekeyInterval
        self.camera = camera
        self.media = media
        self.logger = logger
    }

    var snapshot: Snapshot { state.withLock { $0 } }

    /// Waits until the relay names the session, or the link fails; nil on failure or timeout.
    func waitForSession(timeout: Duration) async -> String? {
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            self?.resolveWaiters(nil)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let ready: String?? = state.withLock { state in
                if let session = state.session { return .some(session) }
                if state.phase == .failed || state.phase == .ended { return .some(nil) }
                return nil
            }
            if let ready {
                continuation.resume(returning: ready)
            } else {
                sessionWaiters.withLock { $0.append(continuation) }
            }
        }
    }

    private func resolveWaiters(_ session: String?) {
        for waiter in sessionWaiters.withLock({ waiters in defer { waiters = [] }; return waiters }) {
            waiter.resume(returning: session)
        }
    }

    /// Connects, and reconnects with backoff, until cancelled or the relay refuses us for good.
    func run() async {
        var backoff = Duration.milliseconds(250)
        while !Task.isCancelled {
            var configuration = WebSocketClientConfiguration()
            configuration.maxFrameSize = 1 << 16
            configuration.additionalHeaders[.authorization] = "Bearer \(credentials.token)"
            configuration.autoPing = .enabled(timePeriod: .seconds(15))
            configuration.sniHostname = credentials.sniHostname
            do {
                let close = try await WebSocketClient.connect(
                    url: credentials.url + "/v1/device", configuration: configuration, tlsConfiguration: credentials.tls,
                    logger: logger
                ) { inbound, outbound, _ in
                    try await self.serve(inbound: inbound, outbound: outbound)
                }
                if let close, Self.isPermanent(close.closeCode) {
                    // Sessions live in the relay's memory: after it restarted, our resume finds
                    // none. The call goes on in a new session; only the invite link changes.
                    guard close.closeCode == .unknown(4404), let lost = state.withLock({ $0.session }) else {
                        fail("relay closed the call: \(close.reason ?? "\(close.closeCode)")")
                        return
                    }
                    state.withLock { $0.session = nil }
                    logger.warning("call: the relay no longer knows session \(lost) (did it restart?); opening a new session, the expert needs its new invite link (sightctl call status)")
                }
                backoff = .milliseconds(250)
            } catch is CancellationError {
                break
            } catch {
                let message = "relay \(credentials.url) unreachable or refused the device (\(error)); check relay.url and relay.token_file"
                if state.withLock({ $0.session == nil }), backoff >= .seconds(2) {
                    // Never connected: report instead of waiting forever.
                    fail(message)
                    return
                }
                state.withLock { $0.lastError = message }
                logger.warning("call: \(message)")
            }
            call.withLock { $0?.relayDisconnected() }
            media.setAudience(false)
            state.withLock { $0.phase = .reconnecting; $0.verifiedExperts = [] }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
        state.withLock { $0.phase = .ended }
        resolveWaiters(nil)
    }

    private func fail(_ message: String) {
        logger.error("call: \(message)")
        state.withLock { $0.phase = .failed; $0.lastError = message }
        resolveWaiters(nil)
    }

    /// Bad token, bad join token, or session gone: retrying cannot help.
    private static func isPermanent(_ code: WebSocketErrorCode) -> Bool {
        if case .unknown(let raw) = code { return [4401, 4404, 4409].contains(raw) }
        return false
    }

    private func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let resume = state.withLock { $0.session }
        try await send(.deviceHello(joinToken: secret.joinToken, resumeSession: resume), outbound)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.media.run(outbound) }
            group.addTask { try await self.voice.runSender(outbound) }
            group.addTask { await self.voice.runPlayout() }
            // The ladder's clock never waits for the socket: on a choked uplink the writes
            // block, and that is exactly when the ladder must keep stepping down.
            let (stepChanges, announceStep) = AsyncStream.makeStream(of: CallMessage.StreamState.self, bufferingPolicy: .bufferingOldest(16))
            group.addTask {
                defer { announceStep.finish() }
                while true {
                    try await Task.sleep(for: .seconds(1))
                    if let changed = self.climbLadder() { announceStep.yield(changed) }
                }
            }
            group.addTask {
                for await streamState in stepChanges { try await self.send(.streamState(to: .experts, streamState), outbound) }
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: .seconds(1))
                    let actions = self.call.withLock { $0?.rekeyIfDue(now: .now) } ?? []
                    try await self.perform(actions, outbound)
                    try await self.announceChanges(outbound)
                }
            }
            for try await message in inbound.messages(maxSize: 1 << 16) {
                let text: String
                switch message {
                case .text(let received): text = received
                case .binary(let buffer):
                    // Experts' microphones; the relay routes experts' binary messages only to us.
                    voice.receive(buffer)
                    continue
                }
                let decoded: CallMessage
                do {
                    decoded = try CallMessage.decode(Data(text.utf8))
                } catch {
                    logger.warning("call: ignoring a malformed message from the relay: \(error)")
                    continue
                }
                try await handle(decoded, outbound)
            }
            group.cancelAll()
        }
    }

    private func handle(_ message: CallMessage, _ outbound: WebSocketOutboundWriter) async throws {
        if case .session(let id) = message {
            let fresh = call.withLock { call in
                guard call?.session != id else { return false }
                call = DeviceCallState(session: id, secret: secret, identity: identity, rekeyInterval: rekeyInterval)
                return true
            }
            state.withLock { $0.session = id; $0.phase = .live; $0.lastError = nil }
            let streamState = currentStreamState()
            call.withLock { $0?.streamState = streamState }
            if fresh { logger.info("call: session open", metadata: ["session": "\(id)"]) }
            resolveWaiters(id)
            return
        }
        if case .error(let code, let text) = message {
            logger.warning("call: relay error \(code): \(text)")
            state.withLock { $0.lastError = "relay: \(text)" }
            return
        }
        let actions = call.withLock { $0?.handle(message, now: .now) } ?? []
        try await perform(actions, outbound)
        let (experts, epoch) = call.withLock { ($0?.verifiedExperts ?? [], $0?.epoch ?? 0) }
        state.withLock { snapshot in
            snapshot.verifiedExperts = experts
            snapshot.epoch = epoch
            snapshot.participatedExperts += experts.filter { !snapshot.participatedExperts.contains($0) }
        }
        media.setAudience(!experts.isEmpty)
    }

    private func perform(_ actions: [DeviceCallState.Action], _ outbound: WebSocketOutboundWriter) async throws {
        for action in actions {
            switch action {
            case .send(let message):
                try await send(message, outbound)
            case .startEpoch(let kid, let key):
                media.startEpoch(kid: kid, key: key)
                logger.info("call: new media key", metadata: ["epoch": "\(MediaKeyID(kid).epoch)"])
            case .forceKeyframe:
                media.requestKeyframe()
            case .congestion(let report):
                droppedThisSecond.withLock { $0 = max($0, report.droppedFrames) }
                logger.debug("call: relay dropped frames", metadata: ["peer": "\(report.peer)", "dropped": "\(report.droppedFrames)"])
            case .takeSnapshot(let expert, let id):
                try await takeSnapshot(for: expert, id: id, outbound)
            case .receiverReport:
                break
            case .installExpertKey(let expert, let kid, let key):
                voice.installExpertKey(expert: expert, kid: kid, key: key)
                logger.info("call: expert audio key", metadata: ["expert": "\(expert)", "epoch": "\(MediaKeyID(kid).epoch)"])
            case .forgetExpert(let expert):
                voice.forgetExpert(expert)
            }
        }
    }

    /// Once a second: feeds the ladder and, on a change of step, tells the sender; returns the
    /// `stream-state` the experts are to be told.
    private func climbLadder() -> CallMessage.StreamState? {
        guard media.hasAudience else { return nil }
        let (frames, worstDelay) = media.takeSecond()
        let dropped = droppedThisSecond.withLock { dropped in defer { dropped = 0 }; return dropped }
        let second = DegradationLadder.Second(framesSent: frames, framesDropped: dropped, worstSendDelay: worstDelay,
                                              carriesAudio: voice.carriesAudio)
        guard let step = ladder.withLock({ $0.record(second) }) else { return nil }
        media.setStep(step)
        let streamState = currentStreamState()
        call.withLock { $0?.streamState = streamState }
        logger.notice("call: stream now \(step.rawValue)", metadata: ["dropped": "\(dropped)", "worstSendDelay": "\(worstDelay)"])
        return streamState
    }

    /// What `stream-state` says now, with the camera's and the microphone's privacy state.
    private func currentStreamState() -> CallMessage.StreamState {
        media.streamState(privacy: camera.isPrivate, audioMuted: voice.isMuted)
    }

    /// Tells the experts when privacy mode pauses or resumes camera and microphone, or the
    /// call's case changes (checked once a second).
    private func announceChanges(_ outbound: WebSocketOutboundWriter) async throws {
        let streamState = currentStreamState()
        let known = call.withLock { call -> CallMessage.StreamState? in
            guard let known = call?.streamState,
                  known.audioMuted != streamState.audioMuted || known.caseReference != streamState.caseReference
                    || known.privacy != streamState.privacy else { return nil }
            call?.streamState = streamState
            return known
        }
        guard let known, media.hasAudience else { return }
        if known.audioMuted != streamState.audioMuted {
            logger.notice("call: microphone \(streamState.audioMuted == true ? "muted" : "live") for the experts")
        }
        if known.privacy != streamState.privacy {
            logger.notice("call: video \(streamState.privacy ? "paused (privacy)" : "live again")")
            // The picture the experts last decoded is stale: the new one starts with a keyframe.
            if !streamState.privacy { media.requestKeyframe() }
        }
        if known.caseReference != streamState.caseReference {
            logger.notice("call: now filed in case \(streamState.caseReference ?? "unassigned")")
        }
        try await send(.streamState(to: .experts, streamState), outbound)
    }

    /// Files a still as evidence on the device and queues it, sealed, for the expert.
    private func takeSnapshot(for expert: UInt32, id: String, _ outbound: WebSocketOutboundWriter) async throws {
        do {
            let (info, jpeg, capturedAt) = try await camera.takeSnapshot(kind: .expertSnapshot)
            media.queueStill(.init(jpeg: jpeg, width: info.width, height: info.height, capturedAt: capturedAt))
            // What the device saved it as: the archive item, or the fallback file's name.
            let name = info.itemId.map { "\($0).jpg" } ?? URL(fileURLWithPath: info.path ?? "snapshot.jpg").lastPathComponent
            try await send(.snapshotTaken(to: expert, id: id, evidence: name, width: info.width, height: info.height), outbound)
        } catch let error as CancellationError {
            throw error
        } catch {
            try await send(.snapshotFailed(to: expert, id: id, reason: "\(error)"), outbound)
        }
    }

    private func send(_ message: CallMessage, _ outbound: WebSocketOutboundWriter) async throws {
        try await outbound.writeTextMessage(String(decoding: message.encoded, as: UTF8.self))
    }
}
