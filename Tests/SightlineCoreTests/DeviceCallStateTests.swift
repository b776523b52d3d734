import Crypto
import Foundation
import Testing
@testable import SightlineCore

@Suite struct DeviceCallStateTests {
    let secret = CallSecret()
    let identity = Curve25519.Signing.PrivateKey()
    let start = ContinuousClock.now

    func makeState() -> DeviceCallState {
        DeviceCallState(session: "s", secret: secret, identity: identity, rekeyInterval: .seconds(600))
    }

    /// Runs an expert through offer, answer and confirmation; returns the actions of the
    /// confirmation and the expert's pair key.
    func admit(_ expert: UInt32, into state: inout DeviceCallState, secret: CallSecret? = nil) throws -> ([DeviceCallState.Action], SymmetricKey?) {
        let side = ExpertKeyExchange(expertPeer: expert, session: "s", secret: secret ?? self.secret)
        let answerActions = state.handle(.keyExchangeOffer(from: expert, publicKey: side.publicKey), now: start)
        guard case .send(.keyExchangeAnswer(to: expert, let answer))? = answerActions.first else {
            Issue.record("no answer: \(answerActions)")
            return ([], nil)
        }
        guard let (confirmation, pairKey, _) = try? side.accept(answer) else {
            let forged = HMAC<SHA256>.authenticationCode(for: Data("x".utf8), using: SymmetricKey(size: .bits256))
            return (state.handle(.keyExchangeConfirm(from: expert, mac: Data(forged)), now: start), nil)
        }
        return (state.handle(.keyExchangeConfirm(from: expert, mac: confirmation), now: start), pairKey)
    }

    func mediaKeys(_ actions: [DeviceCallState.Action]) -> [UInt32: WrappedMediaKey] {
        var keys: [UInt32: WrappedMediaKey] = [:]
        for case .send(.mediaKey(let to, let wrapped)) in actions { keys[to] = wrapped }
        return keys
    }

    func epoch(_ actions: [DeviceCallState.Action]) -> (kid: UInt64, key: SymmetricKey)? {
        for case .startEpoch(let kid, let key) in actions { return (kid, key) }
        return nil
    }

    @Test func aVerifiedExpertGetsTheNewEpochKey() throws {
        var state = makeState()
        let (actions, pairKey) = try admit(1, into: &state)
        let wrapped = try #require(mediaKeys(actions)[1])
        let (kid, key) = try #require(epoch(actions))
        #expect(kid == MediaKeyID(epoch: 1, sender: 0).kid)
        #expect(try MediaKeyWrapping.unwrap(wrapped, pairKey: #require(pairKey)) == key)
        #expect(state.verifiedExperts == [1])
    }

    @Test func joinAndLeaveRotateTheKeyAndExcludeTheLeaver() throws {
        var state = makeState()
        let (first, _) = try admit(1, into: &state)
        let (second, _) = try admit(2, into: &state)
        #expect(Set(mediaKeys(second).keys) == [1, 2])
        #expect(try #require(epoch(second)).key != #require(epoch(first)).key)
        let afterLeave = state.handle(.peerLeft(2), now: start)
        #expect(Set(mediaKeys(afterLeave).keys) == [1])
        #expect(try #require(epoch(afterLeave)).kid == MediaKeyID(epoch: 3, sender: 0).kid)
    }

    @Test func anExpertWithoutTheSecretGetsNoKey() throws {
        var state = makeState()
        let (actions, pairKey) = try admit(1, into: &state, secret: CallSecret())
        #expect(pairKey == nil)
        #expect(actions == [.send(.keyExchangeFailed(to: 1))])
        #expect(!state.hasAudience)
        #expect(state.handle(.keyframeRequest(from: 1, reason: "new-viewer"), now: start).isEmpty)
        #expect(state.handle(.snapshotRequest(from: 1, id: "a"), now: start).isEmpty)
        // A confirmation with no exchange before it is refused too.
        #expect(state.handle(.keyExchangeConfirm(from: 5, mac: Data(count: 32)), now: start) == [.send(.keyExchangeFailed(to: 5))])
        // A malformed offer is answered with a failure, not a crash.
        #expect(state.handle(.keyExchangeOffer(from: 6, publicKey: Data([1])), now: start) == [.send(.keyExchangeFailed(to: 6))])
    }

    @Test func verifiedExpertsCanAskForKeyframesAndSnapshots() throws {
        var state = makeState()
        _ = try admit(1, into: &state)
        #expect(state.handle(.keyframeRequest(from: 1, reason: "decode-error"), now: start) == [.forceKeyframe(reason: "decode-error")])
        #expect(state.handle(.snapshotRequest(from: 1, id: "a"), now: start) == [.takeSnapshot(expert: 1, id: "a")])
    }

    @Test func keysRotateAfterTheIntervalAndNotBefore() throws {
        var state = makeState()
        _ = try admit(1, into: &state)
        #expect(state.rekeyIfDue(now: start + .seconds(599)).isEmpty)
        let rotated = state.rekeyIfDue(now: start + .seconds(600))
        #expect(mediaKeys(rotated).keys.sorted() == [1])
        #expect(state.epoch == 2)
    }

    @Test func newExpertsHearTheCurrentStreamState() throws {
        var state = makeState()
        let streamState = CallMessage.StreamState(step: "low", codec: "h264", width: 640, height: 360, fps: 15, bitrateKbps: 300, privacy: false)
        state.streamState = streamState
        let (actions, _) = try admit(3, into: &state)
        #expect(actions.last == .send(.streamState(to: .peer(3), streamState)))
    }

    @Test func aRelayDropForgetsEveryExpert() throws {
        var state = makeState()
        _ = try admit(1, into: &state)
        state.relayDisconnected()
        #expect(!state.hasAudience)
        #expect(state.rekeyIfDue(now: start + .seconds(3600)).isEmpty)
    }
}
