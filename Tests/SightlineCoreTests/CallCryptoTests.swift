import Crypto
import Foundation
import Testing
@testable import SightlineCore

@Suite struct CallCryptoTests {
    let secret = CallSecret()
    let identity = Curve25519.Signing.PrivateKey()
    let session = "s3ss10n-id"

    /// Runs the whole exchange as PROTOCOL.md describes, without a relay in between.
    func exchange(expertPeer: UInt32 = 1) throws -> (DeviceKeyExchange, ExpertKeyExchange, SymmetricKey, String) {
        let expert = ExpertKeyExchange(expertPeer: expertPeer, session: session, secret: secret)
        let device = try DeviceKeyExchange(offer: expert.publicKey, expertPeer: expertPeer, session: session,
                                           secret: secret, identity: identity)
        let (confirmation, pairKey, fingerprint) = try expert.accept(device.answer)
        #expect(device.verifyConfirmation(mac: confirmation))
        return (device, expert, pairKey, fingerprint)
    }

    @Test func secretTravelsAsBase64URLInTheFragment() throws {
        let text = secret.base64URL
        #expect(text.count == 43)
        #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
        let parsed = try #require(CallSecret(base64URL: text))
        #expect(parsed.joinToken == secret.joinToken)
        #expect(CallSecret(base64URL: String(text.dropLast())) == nil)
        #expect(CallSecret(base64URL: text + "AA") == nil)
        #expect(CallSecret(base64URL: "not base64!") == nil)
        #expect(secret.inviteLink(relayURL: "https://relay.example/", session: "abc") == "https://relay.example/v/abc#\(text)")
    }

    @Test func joinTokenAndMACKeyAreDistinctOneWayDerivations() {
        let macBytes = secret.macKey.withUnsafeBytes { Data($0) }
        let secretBytes = secret.bytes.withUnsafeBytes { Data($0) }
        #expect(secret.joinToken.count == 32)
        #expect(secret.joinToken != macBytes)
        #expect(secret.joinToken != secretBytes && macBytes != secretBytes)
        #expect(CallSecret().joinToken != secret.joinToken)
    }

    @Test func transcriptLayoutMatchesTheProtocol() {
        let key = { (byte: UInt8) in Data(repeating: byte, count: 32) }
        let transcript = KeyExchangeTranscript(session: "ab", expertPeer: 258, expertPublicKey: key(1),
                                               devicePublicKey: key(2), identityPublicKey: key(3))
        let expected = Array("sightline kx v1".utf8) + [0, 2] + Array("ab".utf8) + [0, 0, 1, 2]
            + [UInt8](repeating: 1, count: 32) + [UInt8](repeating: 2, count: 32) + [UInt8](repeating: 3, count: 32)
        #expect(transcript.bytes == expected)
    }

    @Test func bothSidesAgreeAndMediaKeysTravelSealed() throws {
        let (device, _, pairKey, fingerprint) = try exchange()
        #expect(fingerprint == DeviceIdentityEncoding.fingerprint(of: identity.publicKey))
        let mediaKey = SymmetricKey(size: .bits128)
        let kid = MediaKeyID(epoch: 3, sender: 0).kid
        let wrapped = try device.wrap(mediaKey: mediaKey, kid: kid)
        let unwrapped = try MediaKeyWrapping.unwrap(wrapped, pairKey: pairKey)
        #expect(unwrapped == mediaKey)

        var sealer = SFrameSealer(kid: kid, baseKey: mediaKey)
        var opener = SFrameOpener()
        opener.install(kid: kid, baseKey: unwrapped)
        let envelope = MediaEnvelope(kind: .video, isKeyframe: true).bytes
        let frame = try sealer.seal(Data("frame".utf8), metadata: envelope)
        #expect(try opener.open(frame, metadata: envelope).plaintext == Data("frame".utf8))
    }

    @Test func aMovedOrAlteredMediaKeyIsRefused() throws {
        let (device, _, pairKey, _) = try exchange()
        let wrapped = try device.wrap(mediaKey: SymmetricKey(size: .bits128), kid: 65536)
        let movedToOtherKID = WrappedMediaKey(kid: 131072, nonce: wrapped.nonce, sealedKey: wrapped.sealedKey)
        #expect(throws: KeyExchangeError.keyUnwrapFailed) { try MediaKeyWrapping.unwrap(movedToOtherKID, pairKey: pairKey) }
        var flipped = wrapped.sealedKey
        flipped[0] ^= 1
        #expect(throws: KeyExchangeError.keyUnwrapFailed) {
            try MediaKeyWrapping.unwrap(WrappedMediaKey(kid: 65536, nonce: wrapped.nonce, sealedKey: flipped), pairKey: pairKey)
        }
        #expect(throws: KeyExchangeError.keyUnwrapFailed) {
            try MediaKeyWrapping.unwrap(wrapped, pairKey: SymmetricKey(size: .bits128))
        }
    }

    @Test func anExpertWithoutTheSecretIsNotConfirmed() throws {
        let impostor = ExpertKeyExchange(expertPeer: 1, session: session, secret: CallSecret())
        let device = try DeviceKeyExchange(offer: impostor.publicKey, expertPeer: 1, session: session, secret: secret, identity: identity)
        #expect(throws: KeyExchangeError.macMismatch) { try impostor.accept(device.answer) }
        // Even a confirmation computed with the wrong secret is refused.
        let wrongKey = CallSecret().macKey
        #expect(!device.verifyConfirmation(mac: device.transcript.mac(role: "expert", key: wrongKey)))
        // Reflecting the device's own MAC back does not pass as the expert's.
        #expect(!device.verifyConfirmation(mac: device.answer.mac))
    }

    /// The relay knows the session, the join token and every message, but not the secret: it
    /// cannot put its own key in the middle, because neither side accepts its MACs.
    @Test func aRelayWithoutTheSecretCannotSitInTheMiddle() throws {
        let expert = ExpertKeyExchange(expertPeer: 1, session: session, secret: secret)
        // The relay replaces the expert's offer with its own key towards the device …
        let relayTowardsDevice = ExpertKeyExchange(expertPeer: 1, session: session, secret: CallSecret())
        let device = try DeviceKeyExchange(offer: relayTowardsDevice.publicKey, expertPeer: 1, session: session,
                                           secret: secret, identity: identity)
        // … the answer it forwards to the real expert no longer matches the expert's transcript,
        #expect(throws: KeyExchangeError.macMismatch) { try expert.accept(device.answer) }
        // and it cannot produce the confirmation the device wants before sending keys.
        #expect(throws: KeyExchangeError.macMismatch) { try relayTowardsDevice.accept(device.answer) }
    }

    @Test func aSwappedIdentityOrSignatureIsRefused() throws {
        let expert = ExpertKeyExchange(expertPeer: 1, session: session, secret: secret)
        let device = try DeviceKeyExchange(offer: expert.publicKey, expertPeer: 1, session: session, secret: secret, identity: identity)
        let answer = device.answer
        let otherIdentity = Curve25519.Signing.PrivateKey().publicKey.rawRepresentation
        let swapped = KeyExchangeAnswer(devicePublicKey: answer.devicePublicKey, identityPublicKey: otherIdentity,
                                        signature: answer.signature, mac: answer.mac)
        #expect(throws: KeyExchangeError.macMismatch) { try expert.accept(swapped) }
        var badSignature = answer.signature
        badSignature[5] ^= 0x40
        let forged = KeyExchangeAnswer(devicePublicKey: answer.devicePublicKey, identityPublicKey: answer.identityPublicKey,
                                       signature: badSignature, mac: answer.mac)
        #expect(throws: KeyExchangeError.badSignature) { try expert.accept(forged) }
        #expect(throws: KeyExchangeError.malformedKey("pub")) {
            try DeviceKeyExchange(offer: Data(count: 5), expertPeer: 1, session: session, secret: secret, identity: identity)
        }
    }

    @Test func pairKeysDifferPerExpert() throws {
        let (_, _, first, _) = try exchange(expertPeer: 1)
        let (_, _, second, _) = try exchange(expertPeer: 2)
        #expect(first != second)
    }

    @Test func kidsCarryEpochAndSender() {
        let id = MediaKeyID(epoch: 7, sender: 2)
        #expect(id.kid == 7 * 65536 + 2)
        #expect(MediaKeyID(id.kid) == id)
    }
}

@Suite struct MediaFramingTests {
    @Test func envelopeRoundTripsAndRefusesJunk() {
        let envelope = MediaEnvelope(kind: .video, isKeyframe: true)
        #expect(envelope.bytes == [1, 1, 1, 0])
        #expect(MediaEnvelope(envelope.bytes + [9, 9]) == envelope)
        #expect(MediaEnvelope([1, 1]) == nil)
        #expect(MediaEnvelope([2, 1, 0, 0]) == nil)
        #expect(MediaEnvelope([1, 9, 0, 0]) == nil)
        #expect(MediaEnvelope([1, 2, 0, 0]) == MediaEnvelope(kind: .audio, isKeyframe: false))
    }

    @Test func payloadHeaderCarriesCaptureTime() {
        let header = MediaPayloadHeader(codec: .h264, width: 1280, height: 720, captureMicroseconds: 1_764_000_000_123_456)
        let bytes = header.bytes
        #expect(bytes.count == MediaPayloadHeader.size)
        #expect(Array(bytes[0..<8]) == [1, 1, 0x05, 0x00, 0x02, 0xD0, 0, 0])
        #expect(MediaPayloadHeader(bytes + [0xFF]) == header)
        #expect(MediaPayloadHeader(Array(bytes.prefix(15))) == nil)
        #expect(MediaPayloadHeader([9] + bytes.dropFirst()) == nil)
    }
}

@Suite struct CallMessageTests {
    @Test func decodesWhatTheRelayAndExpertsSend() throws {
        func decode(_ json: String) throws -> CallMessage { try CallMessage.decode(Data(json.utf8)) }
        #expect(try decode(#"{"type":"session","session":"abc","peer":0}"#) == .session(id: "abc"))
        #expect(try decode(#"{"type":"peer-joined","peer":2}"#) == .peerJoined(2))
        #expect(try decode(#"{"type":"kx-offer","to":0,"from":3,"pub":"AQID"}"#) == .keyExchangeOffer(from: 3, publicKey: Data([1, 2, 3])))
        #expect(try decode(#"{"type":"keyframe-request","to":0,"from":1,"reason":"new-viewer"}"#)
            == .keyframeRequest(from: 1, reason: "new-viewer"))
        #expect(try decode(#"{"type":"congestion","peer":1,"droppedFrames":4,"droppedBytes":900,"queuedBytes":10,"queueDelayMs":600}"#)
            == .congestion(.init(peer: 1, droppedFrames: 4, droppedBytes: 900, queuedBytes: 10, queueDelayMs: 600)))
        #expect(try decode(#"{"type":"future-thing","x":1}"#) == .unknown(type: "future-thing"))
        #expect(throws: CallMessage.DecodeError.notJSON) { try decode("[1,2]") }
        #expect(throws: CallMessage.DecodeError.notJSON) { try decode("{\"to\":0}") }
        #expect(throws: CallMessage.DecodeError.missingField(type: "kx-offer", field: "pub")) {
            try decode(#"{"type":"kx-offer","from":3,"pub":"a+b/"}"#)
        }
    }

    @Test func encodedMessagesDecodeBackAndCarryRouting() throws {
        let wrapped = WrappedMediaKey(kid: 65536, nonce: Data(repeating: 7, count: 12), sealedKey: Data(repeating: 9, count: 32))
        let state = CallMessage.StreamState(step: "full", codec: "h264", width: 1280, height: 720, fps: 30, bitrateKbps: 1200, privacy: false)
        for message in [CallMessage.mediaKey(to: 2, wrapped), .streamState(to: .experts, state), .session(id: "x")] {
            #expect(try CallMessage.decode(message.encoded) == message)
        }
        let object = try #require(JSONSerialization.jsonObject(with: CallMessage.streamState(to: .experts, state).encoded) as? [String: Any])
        #expect(object["type"] as? String == "stream-state")
        #expect(object["to"] as? String == "experts")
        #expect(object["width"] as? Int == 1280)
        #expect(object["caseReference"] == nil, "no case: the field is left out")
        var filed = state
        filed.caseReference = "WO-4711"
        let withCase = CallMessage.streamState(to: .experts, filed)
        #expect(try CallMessage.decode(withCase.encoded) == withCase)
        #expect((try JSONSerialization.jsonObject(with: withCase.encoded) as? [String: Any])?["caseReference"] as? String == "WO-4711")
        let hello = try #require(JSONSerialization.jsonObject(
            with: CallMessage.deviceHello(joinToken: Data([0xFB, 0xFF]), resumeSession: nil).encoded) as? [String: Any])
        #expect(hello["role"] as? String == "device")
        #expect(hello["joinToken"] as? String == "-_8")
    }
}
