import Crypto
import Logging
import NIOCore
import Synchronization

/// One socket after its hello, as sessions hold it: its send queue and its channel.
final class ConnectedPeer: Sendable {
    let outbox: PeerOutbox
    private let metrics: RelayMetrics
    private let channel: any Channel
    private let closeGrace: Duration

    static let tooSlow = RelayRefusal(.rateLimited, "your connection reads too slowly to receive the call's control messages; reconnect on a better network")

    /// The outbox wakes the socket's ``RelayPeerHandler`` with a ``RelayPeerHandler/Drain``
    /// event on the socket's own event loop, whichever thread queued the message.
    init(channel: any Channel, limits: RelayLimits, metrics: RelayMetrics) {
        self.channel = channel
        self.metrics = metrics
        self.closeGrace = limits.closeGrace
        outbox = PeerOutbox(limits: limits.queue) { [channel] in
            channel.eventLoop.execute { channel.pipeline.fireUserInboundEventTriggered(RelayPeerHandler.Drain()) }
        }
    }

    /// Queues a message for this peer, counts what the queue dropped and disconnects a peer
    /// that cannot take a control message even after its media was dropped.
    func deliver(_ message: OutboundMessage, kind: QueuedKind, size: Int) -> CongestionReport? {
        let (outcome, report) = outbox.enqueue(message, kind: kind, size: size)
        for drop in outcome.drops { metrics.dropped(drop) }
        if outcome.controlOverflow { refuse(Self.tooSlow) }
        return report
    }

    /// Queues a control message.
    func sendControl(_ text: String) {
        _ = deliver(.text(text), kind: .control, size: text.utf8.count)
    }

    /// Sends `refusal` as an `error` message and closes the socket with its code. A peer that
    /// does not finish the close handshake (or whose socket does not drain) within the close
    /// grace has its socket closed hard.
    func refuse(_ refusal: RelayRefusal) {
        guard outbox.close(refusal) else { return }
        metrics.closed(refusal.code)
        let channel = channel
        channel.eventLoop.scheduleTask(in: .nanoseconds(closeGrace.nanoseconds)) { channel.close(promise: nil) }
    }
}

extension Duration {
    /// Whole nanoseconds, for NIO's `TimeAmount`.
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}

/// Which session a socket belongs to, and as which peer.
struct Membership: Sendable {
    let session: RelaySession
    let peer: Int
    var isDevice: Bool { peer == 0 }
}

/// One session's peers, behind a lock of its own: routing a message takes only this lock and
/// each receiver's queue lock, so sessions on different event loops never wait for each other.
final class RelaySession: Sendable {
    let id: String
    let deviceName: String
    let joinTokenDigest: SHA256Digest

    fileprivate struct Peers {
        var device: ConnectedPeer?
        var experts: [Int: ConnectedPeer] = [:]
        /// Peer numbers are never reused within a session.
        var nextExpert = 1
        /// Bumped whenever the device leaves, so a stale expiry timer does nothing.
        var departures = 0
    }

    fileprivate let peers: Mutex<Peers>
    private let metrics: RelayMetrics

    fileprivate init(id: String, deviceName: String, joinTokenDigest: SHA256Digest, device: ConnectedPeer, metrics: RelayMetrics) {
        self.id = id
        self.deviceName = deviceName
        self.joinTokenDigest = joinTokenDigest
        self.metrics = metrics
        peers = Mutex(Peers(device: device))
    }

    /// Routes a text message; one to a peer that is not there is dropped silently.
    func route(_ message: ControlMessage, to target: ControlMessage.Target, from sender: Int) {
        let text = message.forwarded(from: sender)
        let size = text.utf8.count
        peers.withLock { peers in
            switch target {
            case .experts:
                for (number, expert) in peers.experts { deliver(.text(text), kind: .control, size: size, to: expert, number: number, device: peers.device) }
            case .peer(0):
                if let device = peers.device { deliver(.text(text), kind: .control, size: size, to: device, number: 0, device: peers.device) }
            case .peer(let number):
                if let expert = peers.experts[number] { deliver(.text(text), kind: .control, size: size, to: expert, number: number, device: peers.device) }
            }
        }
    }

    /// Media from the device goes to every expert; media from an expert goes to the device.
    /// Every receiver gets the same buffer: nothing is copied per receiver.
    func forwardMedia(_ frame: ByteBuffer, kind: QueuedKind, from sender: Int) {
        let size = frame.readableBytes
        peers.withLock { peers in
            if sender == 0 {
                for (number, expert) in peers.experts { deliver(.binary(frame), kind: kind, size: size, to: expert, number: number, device: peers.device) }
            } else if let device = peers.device {
                deliver(.binary(frame), kind: kind, size: size, to: device, number: 0, device: device)
            }
        }
    }

    private func deliver(_ message: OutboundMessage, kind: QueuedKind, size: Int, to receiver: ConnectedPeer, number: Int, device: ConnectedPeer?) {
        // Congestion is the device's business: it lowers its bitrate. Its own queue (expert
        // voice) has no one to report to.
        if let report = receiver.deliver(message, kind: kind, size: size), number != 0, let device {
            device.sendControl(RelayMessages.congestion(peer: number, report))
            metrics.congestionReports.increment()
        }
    }
}

/// All sessions of this relay: who is in them, and where each message goes.
///
/// Joins, leaves, resumes and expiry take the registry's lock (and the session's); routing
/// takes only the session's (``RelaySession``). Both run on the sender's event loop, in the
/// order the sender's messages arrived; sockets are written by each receiver's own event loop.
final class SessionRegistry: Sendable {
    private let sessions = Mutex<[String: RelaySession]>([:])
    private let limits: RelayLimits
    private let metrics: RelayMetrics
    private let logger: Logger

    init(limits: RelayLimits, metrics: RelayMetrics, logger: Logger) {
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
    }

    var sessionCount: Int { sessions.withLock { $0.count } }

    /// A device's hello without `session`: a new session with the device as peer 0.
    func openSession(device: ConnectedPeer, deviceName: String, joinTokenDigest: SHA256Digest) throws(RelayRefusal) -> Membership {
        let session: RelaySession = try sessions.withLock { sessions throws(RelayRefusal) in
            let held = sessions.values.filter { $0.deviceName == deviceName }.count
            guard held < limits.sessionsPerDevice else {
                throw RelayRefusal(.rateLimited, "device \(deviceName) already holds \(held) sessions; resume one with its \"session\" id or wait for them to expire")
            }
            var id = Self.newSessionID()
            while sessions[id] != nil { id = Self.newSessionID() }
            let session = RelaySession(id: id, deviceName: deviceName, joinTokenDigest: joinTokenDigest, device: device, metrics: metrics)
            sessions[id] = session
            return session
        }
        device.sendControl(RelayMessages.session(session.id, peer: 0))
        updateGauges()
        logger.info("session opened", metadata: ["session": "\(session.id)", "device": "\(deviceName)"])
        return Membership(session: session, peer: 0)
    }

    /// A device's hello with `session`: takes peer 0 again if the join token matches.
    func resumeSession(_ id: String, device: ConnectedPeer, deviceName: String, joinTokenDigest: SHA256Digest) throws(RelayRefusal) -> Membership {
        guard let session = sessions.withLock({ $0[id] }) else {
            throw RelayRefusal(.unknownSession, "session \(id) does not exist (it expired \(limits.deviceResumeWindow) after the device left); open a new one")
        }
        // Digest equality is constant-time (swift-crypto), so timing says nothing about the token.
        guard session.joinTokenDigest == joinTokenDigest, session.deviceName == deviceName else {
            throw RelayRefusal(.unauthorized, "the join token (or the device) does not match session \(id)")
        }
        session.peers.withLock { peers in
            // The same device with the session's join token is back while its old connection still
            // looks alive here: that one is half-dead (a choked uplink, a NAT that forgot it), so
            // the newest connection wins and the old one is closed.
            peers.device?.refuse(RelayRefusal(.deviceConflict, "replaced by a newer connection of device \(deviceName) to session \(id)"))
            peers.device = device
            device.sendControl(RelayMessages.session(id, peer: 0))
            for expert in peers.experts.values { expert.sendControl(RelayMessages.deviceJoined) }
        }
        updateGauges()
        logger.info("device resumed its session", metadata: ["session": "\(id)", "device": "\(deviceName)"])
        return Membership(session: session, peer: 0)
    }

    /// An expert's hello on /v1/viewer/SESSION.
    func joinExpert(_ id: String, expert: ConnectedPeer, joinTokenDigest: SHA256Digest) throws(RelayRefusal) -> Membership {
        guard let session = sessions.withLock({ $0[id] }) else {
            throw RelayRefusal(.unknownSession, "no session \(id) on this relay: the call has ended or the invite link is wrong")
        }
        guard session.joinTokenDigest == joinTokenDigest else {
            throw RelayRefusal(.unauthorized, "the join token does not match this session: open the complete invite link, including the part after #")
        }
        let number = session.peers.withLock { peers in
            let number = peers.nextExpert
            peers.nextExpert += 1
            peers.experts[number] = expert
            expert.sendControl(RelayMessages.joined(id, peer: number, device: peers.device != nil))
            peers.device?.sendControl(RelayMessages.peerJoined(number))
            return number
        }
        updateGauges()
        logger.info("expert joined", metadata: ["session": "\(id)", "peer": "\(number)"])
        return Membership(session: session, peer: number)
    }

    /// A socket after its hello went away. The session outlives its device for the resume
    /// window, so that experts stay joined across a network drop.
    func leave(_ membership: Membership, peer: ConnectedPeer) {
        let session = membership.session
        if membership.isDevice {
            let departure: Int? = session.peers.withLock { peers in
                guard peers.device === peer else { return nil }
                peers.device = nil
                peers.departures += 1
                for expert in peers.experts.values { expert.sendControl(RelayMessages.deviceLeft) }
                return peers.departures
            }
            guard let departure else { return }
            let window = limits.deviceResumeWindow
            Task { [weak self] in
                try? await Task.sleep(for: window)
                self?.expire(session, departure: departure)
            }
            logger.info("device left; session waits for it", metadata: ["session": "\(session.id)", "window": "\(window)"])
        } else {
            let left: Bool = session.peers.withLock { peers in
                guard peers.experts[membership.peer] === peer else { return false }
                peers.experts[membership.peer] = nil
                peers.device?.sendControl(RelayMessages.peerLeft(membership.peer))
                return true
            }
            guard left else { return }
            logger.info("expert left", metadata: ["session": "\(session.id)", "peer": "\(membership.peer)"])
        }
        updateGauges()
    }

    private func expire(_ session: RelaySession, departure: Int) {
        let experts: [ConnectedPeer]? = sessions.withLock { sessions in
            guard sessions[session.id] === session else { return nil }
            return session.peers.withLock { peers in
                guard peers.device == nil, peers.departures == departure else { return nil }
                sessions[session.id] = nil
                return Array(peers.experts.values)
            }
        }
        guard let experts else { return }
        let ended = RelayRefusal(.unknownSession, "the session ended: its device did not come back within \(limits.deviceResumeWindow)")
        for expert in experts { expert.refuse(ended) }
        updateGauges()
        logger.info("session expired", metadata: ["session": "\(session.id)", "device": "\(session.deviceName)"])
    }

    private func updateGauges() {
        let (count, devices, experts) = sessions.withLock { sessions in
            sessions.values.reduce((sessions.count, 0, 0)) { totals, session in
                session.peers.withLock { peers in (totals.0, totals.1 + (peers.device == nil ? 0 : 1), totals.2 + peers.experts.count) }
            }
        }
        metrics.sessions.set(Double(count))
        metrics.devices.set(Double(devices))
        metrics.experts.set(Double(experts))
    }

    /// 128 random bits from the system CSPRNG (getrandom), base64url: unguessable, so a
    /// session id alone does not let anyone near the call, and URL-safe for invite links.
    static func newSessionID() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Base64URL.encode(bytes)
    }
}
