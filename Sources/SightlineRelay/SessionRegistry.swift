import Crypto
import Logging
import NIOCore

/// One socket after its hello, as the registry holds it.
final class ConnectedPeer: Sendable {
    let outbox: PeerOutbox
    private let metrics: RelayMetrics

    static let tooSlow = RelayRefusal(.rateLimited, "your connection reads too slowly to receive the call's control messages; reconnect on a better network")

    init(outbox: PeerOutbox, metrics: RelayMetrics) {
        self.outbox = outbox
        self.metrics = metrics
    }

    /// Queues a control message. One that does not fit even after the receiver's media was
    /// dropped means the peer reads too slowly to follow the call, so it is disconnected.
    func sendControl(_ text: String) {
        let (outcome, _) = outbox.enqueue(.text(text), kind: .control, size: text.utf8.count)
        if outcome.controlOverflow { refuse(Self.tooSlow) }
    }

    /// Sends `refusal` as an `error` message and closes the socket with its code.
    func refuse(_ refusal: RelayRefusal) {
        if outbox.close(refusal) { metrics.closed(refusal.code) }
    }
}

/// Which session a socket belongs to, and as which peer.
struct Membership: Sendable, Equatable {
    let session: String
    let peer: Int
    var isDevice: Bool { peer == 0 }
}

/// All sessions of this relay: who is in them, and where each message goes.
///
/// One actor owns every session, so joins, leaves, resumes and expiry never race with
/// routing. Routing work inside it is a dictionary lookup and a short lock per receiver
/// (``PeerOutbox``); sockets are written by each receiver's own task, never from here.
actor SessionRegistry {
    private struct Session {
        let deviceName: String
        let joinTokenDigest: SHA256Digest
        var device: ConnectedPeer?
        var experts: [Int: ConnectedPeer] = [:]
        /// Peer numbers are never reused within a session.
        var nextExpert = 1
        /// Bumped whenever the device leaves, so a stale expiry timer does nothing.
        var departures = 0
    }

    private var sessions: [String: Session] = [:]
    private let limits: RelayLimits
    private let metrics: RelayMetrics
    private let logger: Logger

    init(limits: RelayLimits, metrics: RelayMetrics, logger: Logger) {
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
    }

    var sessionCount: Int { sessions.count }

    /// A device's hello without `session`: a new session with the device as peer 0.
    func openSession(device: ConnectedPeer, deviceName: String, joinTokenDigest: SHA256Digest) throws(RelayRefusal) -> Membership {
        let held = sessions.values.filter { $0.deviceName == deviceName }.count
        guard held < limits.sessionsPerDevice else {
            throw RelayRefusal(.rateLimited, "device \(deviceName) already holds \(held) sessions; resume one with its \"session\" id or wait for them to expire")
        }
        var id = Self.newSessionID()
        while sessions[id] != nil { id = Self.newSessionID() }
        sessions[id] = Session(deviceName: deviceName, joinTokenDigest: joinTokenDigest, device: device)
        device.sendControl(RelayMessages.session(id, peer: 0))
        updateGauges()
        logger.info("session opened", metadata: ["session": "\(id)", "device": "\(deviceName)"])
        return Membership(session: id, peer: 0)
    }

    /// A device's hello with `session`: takes peer 0 again if the join token matches.
    func resumeSession(_ id: String, device: ConnectedPeer, deviceName: String, joinTokenDigest: SHA256Digest) throws(RelayRefusal) -> Membership {
        guard var session = sessions[id] else {
            throw RelayRefusal(.unknownSession, "session \(id) does not exist (it expired \(limits.deviceResumeWindow) after the device left); open a new one")
        }
        // Digest equality is constant-time (swift-crypto), so timing says nothing about the token.
        guard session.joinTokenDigest == joinTokenDigest, session.deviceName == deviceName else {
            throw RelayRefusal(.unauthorized, "the join token (or the device) does not match session \(id)")
        }
        // The same device with the session's join token is back while its old connection still
        // looks alive here: that one is half-dead (a choked uplink, a NAT that forgot it), so
        // the newest connection wins and the old one is closed.
        session.device?.refuse(RelayRefusal(.deviceConflict, "replaced by a newer connection of device \(deviceName) to session \(id)"))
        session.device = device
        sessions[id] = session
        device.sendControl(RelayMessages.session(id, peer: 0))
        for expert in session.experts.values { expert.sendControl(RelayMessages.deviceJoined) }
        updateGauges()
        logger.info("device resumed its session", metadata: ["session": "\(id)", "device": "\(deviceName)"])
        return Membership(session: id, peer: 0)
    }

    /// An expert's hello on /v1/viewer/SESSION.
    func joinExpert(_ id: String, expert: ConnectedPeer, joinTokenDigest: SHA256Digest) throws(RelayRefusal) -> Membership {
        guard var session = sessions[id] else {
            throw RelayRefusal(.unknownSession, "no session \(id) on this relay: the call has ended or the invite link is wrong")
        }
        guard session.joinTokenDigest == joinTokenDigest else {
            throw RelayRefusal(.unauthorized, "the join token does not match this session: open the complete invite link, including the part after #")
        }
        let number = session.nextExpert
        session.nextExpert += 1
        session.experts[number] = expert
        sessions[id] = session
        expert.sendControl(RelayMessages.joined(id, peer: number, device: session.device != nil))
        session.device?.sendControl(RelayMessages.peerJoined(number))
        updateGauges()
        logger.info("expert joined", metadata: ["session": "\(id)", "peer": "\(number)"])
        return Membership(session: id, peer: number)
    }

    /// A socket after its hello went away. The session outlives its device for the resume
    /// window, so that experts stay joined across a network drop.
    func leave(_ membership: Membership, peer: ConnectedPeer) {
        guard var session = sessions[membership.session] else { return }
        if membership.isDevice {
            guard session.device === peer else { return }
            session.device = nil
            session.departures += 1
            let departure = session.departures
            sessions[membership.session] = session
            for expert in session.experts.values { expert.sendControl(RelayMessages.deviceLeft) }
            let window = limits.deviceResumeWindow
            Task { [weak self] in
                try? await Task.sleep(for: window)
                await self?.expire(membership.session, departure: departure)
            }
            logger.info("device left; session waits for it", metadata: ["session": "\(membership.session)", "window": "\(window)"])
        } else {
            guard session.experts[membership.peer] === peer else { return }
            session.experts[membership.peer] = nil
            sessions[membership.session] = session
            session.device?.sendControl(RelayMessages.peerLeft(membership.peer))
            logger.info("expert left", metadata: ["session": "\(membership.session)", "peer": "\(membership.peer)"])
        }
        updateGauges()
    }

    /// Routes a text message; one to a peer that is not there is dropped silently.
    func route(_ message: ControlMessage, to target: ControlMessage.Target, from sender: Membership) {
        guard let session = sessions[sender.session] else { return }
        let text = message.forwarded(from: sender.peer)
        switch target {
        case .experts:
            for (number, expert) in session.experts { deliver(.text(text), kind: .control, size: text.utf8.count, to: expert, number: number, in: session) }
        case .peer(0):
            if let device = session.device { deliver(.text(text), kind: .control, size: text.utf8.count, to: device, number: 0, in: session) }
        case .peer(let number):
            if let expert = session.experts[number] { deliver(.text(text), kind: .control, size: text.utf8.count, to: expert, number: number, in: session) }
        }
    }

    /// Media from the device goes to every expert; media from an expert goes to the device.
    func forwardMedia(_ frame: ByteBuffer, kind: QueuedKind, from sender: Membership) {
        guard let session = sessions[sender.session] else { return }
        if sender.isDevice {
            for (number, expert) in session.experts {
                deliver(.binary(frame), kind: kind, size: frame.readableBytes, to: expert, number: number, in: session)
            }
        } else if let device = session.device {
            deliver(.binary(frame), kind: kind, size: frame.readableBytes, to: device, number: 0, in: session)
        }
    }

    private func deliver(_ message: OutboundMessage, kind: QueuedKind, size: Int, to receiver: ConnectedPeer, number: Int, in session: Session) {
        let (outcome, report) = receiver.outbox.enqueue(message, kind: kind, size: size)
        for drop in outcome.drops { metrics.dropped(drop) }
        if outcome.controlOverflow { receiver.refuse(ConnectedPeer.tooSlow) }
        // Congestion is the device's business: it lowers its bitrate. Its own queue (expert
        // voice) has no one to report to.
        if let report, number != 0, let device = session.device {
            device.sendControl(RelayMessages.congestion(peer: number, report))
            metrics.congestionReports.increment()
        }
    }

    private func expire(_ id: String, departure: Int) {
        guard let session = sessions[id], session.device == nil, session.departures == departure else { return }
        sessions[id] = nil
        let ended = RelayRefusal(.unknownSession, "the session ended: its device did not come back within \(limits.deviceResumeWindow)")
        for expert in session.experts.values { expert.refuse(ended) }
        updateGauges()
        logger.info("session expired", metadata: ["session": "\(id)", "device": "\(session.deviceName)"])
    }

    private func updateGauges() {
        metrics.sessions.set(Double(sessions.count))
        metrics.devices.set(Double(sessions.values.filter { $0.device != nil }.count))
        metrics.experts.set(Double(sessions.values.reduce(0) { $0 + $1.experts.count }))
    }

    /// 128 random bits from the system CSPRNG (getrandom), base64url: unguessable, so a
    /// session id alone does not let anyone near the call, and URL-safe for invite links.
    static func newSessionID() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Base64URL.encode(bytes)
    }
}
