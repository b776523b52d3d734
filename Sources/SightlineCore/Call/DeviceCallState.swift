import Crypto
import Foundation

/// The device's side of one call as a pure state machine: it answers key exchanges, admits
/// experts that prove they hold the secret, and schedules media-key epochs. The daemon feeds
/// it relay messages and carries out the actions it returns, so all of the call's security
/// decisions are testable without a network.
public struct DeviceCallState: Sendable {
    public enum Action: Sendable, Equatable {
        case send(CallMessage)
        /// Seal from now on under this KID and base key.
        case startEpoch(kid: UInt64, key: SymmetricKey)
        case forceKeyframe(reason: String)
        case congestion(CallMessage.Congestion)
        case takeSnapshot(expert: UInt32, id: String)
        case receiverReport(expert: UInt32, CallMessage.ReceiverReport)
        /// Open this verified expert's audio under this KID and base key from now on.
        case installExpertKey(expert: UInt32, kid: UInt64, key: SymmetricKey)
        /// The expert left: forget its audio keys.
        case forgetExpert(UInt32)
    }

    public let session: String
    private let secret: CallSecret
    private let identity: Curve25519.Signing.PrivateKey
    private let rekeyInterval: Duration
    /// Exchanges answered but not yet confirmed.
    private var pending: [UInt32: DeviceKeyExchange] = [:]
    /// Experts that proved they hold the secret; only they receive media keys.
    private var verified: [UInt32: DeviceKeyExchange] = [:]
    public private(set) var epoch: UInt32 = 0
    private var epochKey: SymmetricKey?
    private var epochStarted: ContinuousClock.Instant?
    /// What `stream-state` last said, repeated to each newly verified expert.
    public var streamState: CallMessage.StreamState?

    public init(session: String, secret: CallSecret, identity: Curve25519.Signing.PrivateKey, rekeyInterval: Duration = .seconds(600)) {
        self.session = session
        self.secret = secret
        self.identity = identity
        self.rekeyInterval = rekeyInterval
    }

    public var verifiedExperts: [UInt32] { verified.keys.sorted() }
    public var hasAudience: Bool { !verified.isEmpty }

    public mutating func handle(_ message: CallMessage, now: ContinuousClock.Instant) -> [Action] {
        switch message {
        case .keyExchangeOffer(let expert, let publicKey):
            do {
                let exchange = try DeviceKeyExchange(offer: publicKey, expertPeer: expert, session: session,
                                                     secret: secret, identity: identity)
                pending[expert] = exchange
                verified[expert] = nil
                return [.send(.keyExchangeAnswer(to: expert, exchange.answer))]
            } catch {
                return [.send(.keyExchangeFailed(to: expert))]
            }
        case .keyExchangeConfirm(let expert, let mac):
            guard let exchange = pending.removeValue(forKey: expert), exchange.verifyConfirmation(mac: mac) else {
                return [.send(.keyExchangeFailed(to: expert))]
            }
            verified[expert] = exchange
            var actions = rekey(now: now)
            if let streamState { actions.append(.send(.streamState(to: .peer(expert), streamState))) }
            return actions
        case .peerLeft(let expert):
            pending[expert] = nil
            // A departed expert must not read on: a new key for everyone who stays.
            guard verified.removeValue(forKey: expert) != nil else { return [] }
            return [.forgetExpert(expert)] + (hasAudience ? rekey(now: now) : [])
        case .expertMediaKey(let expert, let wrapped):
            // Only a verified expert's key, and only for its own sender number: an expert cannot
            // speak under another's KID.
            guard let exchange = verified[expert], MediaKeyID(wrapped.kid).sender == UInt16(truncatingIfNeeded: expert),
                  expert < UInt32(MediaKeyID.deviceAudioSender), let key = try? exchange.unwrap(wrapped)
            else { return [] }
            return [.installExpertKey(expert: expert, kid: wrapped.kid, key: key)]
        case .keyframeRequest(let expert, let reason):
            return verified[expert] == nil ? [] : [.forceKeyframe(reason: reason)]
        case .snapshotRequest(let expert, let id):
            return verified[expert] == nil ? [] : [.takeSnapshot(expert: expert, id: id)]
        case .receiverReport(let expert, let report):
            return verified[expert] == nil ? [] : [.receiverReport(expert: expert, report)]
        case .congestion(let report):
            return [.congestion(report)]
        default:
            return []
        }
    }

    /// A new epoch when the current key has been in use for the rekey interval.
    public mutating func rekeyIfDue(now: ContinuousClock.Instant) -> [Action] {
        guard hasAudience, let epochStarted, now - epochStarted >= rekeyInterval else { return [] }
        return rekey(now: now)
    }

    /// The relay connection dropped: experts redo their exchange when it is back, so no key
    /// from before the drop is handed out again.
    public mutating func relayDisconnected() {
        pending = [:]
        verified = [:]
    }

    /// Draws a fresh random base key, wraps it for every verified expert, then switches to it.
    private mutating func rekey(now: ContinuousClock.Instant) -> [Action] {
        epoch &+= 1
        let key = SymmetricKey(size: .bits128)
        let kid = MediaKeyID(epoch: epoch, sender: 0).kid
        epochKey = key
        epochStarted = now
        var actions: [Action] = []
        for (expert, exchange) in verified.sorted(by: { $0.key < $1.key }) {
            guard let wrapped = try? exchange.wrap(mediaKey: key, kid: kid) else { continue }
            actions.append(.send(.mediaKey(to: expert, wrapped)))
        }
        actions.append(.startEpoch(kid: kid, key: key))
        return actions
    }
}
