import Crypto
import Foundation
@testable import SightlineCore
import SightlineTesting
import Testing

extension ViewerBrowserTests {
    /// The browser's half of the exchange against the Swift device half in SightlineCore/Call.
    @Suite("viewer key exchange in Chromium")
    struct KeyExchangeBrowserTests {
        /// A session id with non-ASCII characters: the transcript carries its UTF-8 byte length.
        let session = "lab-Ωμέγα-42"
        let expertPeer: UInt32 = 3

        /// Starts an exchange in the page (kept on `window.kx`) and returns its public key and the
        /// join token the page derived from the secret.
        private func start(_ lab: ViewerLab, secret: CallSecret) async throws -> (publicKey: Data, joinToken: String) {
            let result = try await lab.run("""
                const { keyexchange, bytes } = lab;
                const [secretText, session, peer] = arguments;
                const secret = keyexchange.parseSecret('#' + secretText);
                const keys = await keyexchange.deriveCallKeys(secret);
                window.kx = await keyexchange.ExpertKeyExchange.start({ session, expertPeer: peer, secret, macKey: keys.macKey });
                return { pub: bytes.toB64u(window.kx.publicKey), joinToken: bytes.toB64u(keys.joinToken) };
                """, .string(secret.base64URL), .string(session), .number(Double(expertPeer)))
            let publicKey = try b64u(result["pub"])
            return (publicKey, try #require(result["joinToken"]?.string))
        }

        private func answerJSON(_ answer: KeyExchangeAnswer, mac: Data? = nil, signature: Data? = nil) -> WebDriverValue {
            [
                "type": "kx-answer", "to": .number(Double(expertPeer)), "from": 0,
                "pub": .string(Base64URL.encode(answer.devicePublicKey)),
                "identity": .string(Base64URL.encode(answer.identityPublicKey)),
                "signature": .string(Base64URL.encode(signature ?? answer.signature)),
                "mac": .string(Base64URL.encode(mac ?? answer.mac)),
            ]
        }

        private func flipped(_ data: Data, at index: Int = 0) -> Data {
            var copy = data
            copy[copy.startIndex + index] ^= 0x01
            return copy
        }

        @Test("a Swift device answer verifies in the browser, the browser's confirm verifies in Swift, the media key unwraps")
        func interop() async throws {
            let secret = CallSecret()
            let identity = Curve25519.Signing.PrivateKey()
            let mediaKey = SymmetricKey(size: .bits128)
            let kid = MediaKeyID(epoch: 7, sender: 0).kid
            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let (expertPublicKey, joinToken) = try await start(lab, secret: secret)
                #expect(joinToken == Base64URL.encode(secret.joinToken))

                let device = try DeviceKeyExchange(
                    offer: expertPublicKey, expertPeer: expertPeer, session: session, secret: secret, identity: identity)
                let wrapped = try device.wrap(mediaKey: mediaKey, kid: kid)
                let result = try await lab.run("""
                    const { keyexchange, bytes } = lab;
                    const [answer, wrapped] = arguments;
                    const accepted = await window.kx.accept(answer);
                    const transcript = keyexchange.transcript({
                        session: window.kx.session, expertPeer: window.kx.expertPeer, expertPublicKey: window.kx.publicKey,
                        devicePublicKey: bytes.fromB64u(answer.pub), identityPublicKey: bytes.fromB64u(answer.identity),
                    });
                    const baseKey = await keyexchange.unwrapMediaKey(accepted.pairKey, wrapped);
                    let wrongKid;
                    try { await keyexchange.unwrapMediaKey(accepted.pairKey, { ...wrapped, kid: wrapped.kid + 1 }); wrongKid = 'accepted'; }
                    catch (e) { wrongKid = e.code; }
                    // The browser can wrap too (a future expert-to-device voice key); Swift must unwrap it.
                    const back = await keyexchange.wrapMediaKey(accepted.pairKey, 65539, bytes.fromHex('00112233445566778899aabbccddeeff'));
                    return {
                        confirmation: bytes.toB64u(accepted.confirmation), fingerprint: accepted.fingerprint,
                        transcript: bytes.toHex(transcript), baseKey: bytes.toHex(baseKey), wrongKid,
                        back: { nonce: bytes.toB64u(back.nonce), key: bytes.toB64u(back.key) },
                    };
                    """,
                    answerJSON(device.answer),
                    ["type": "media-key", "from": 0, "kid": .number(Double(kid)),
                     "nonce": .string(Base64URL.encode(wrapped.nonce)), "key": .string(Base64URL.encode(wrapped.sealedKey))])

                let confirmation = try b64u(result["confirmation"])
                #expect(device.verifyConfirmation(mac: confirmation))
                #expect(!device.verifyConfirmation(mac: flipped(confirmation)))
                #expect(!device.verifyConfirmation(mac: confirmation.prefix(31)))
                #expect(result["fingerprint"]?.string == DeviceIdentityEncoding.fingerprint(of: identity.publicKey))
                #expect(result["transcript"]?.string == hex(device.transcript.bytes))
                #expect(result["baseKey"]?.string == mediaKey.withUnsafeBytes { hex($0) })
                #expect(result["wrongKid"]?.string == "key-unwrap-failed")

                // Both sides derived the same pair key: what the browser wraps, Swift unwraps.
                let nonce = try b64u(result["back"]?["nonce"])
                let sealed = try b64u(result["back"]?["key"])
                let unwrapped = try MediaKeyWrapping.unwrap(WrappedMediaKey(kid: 65539, nonce: nonce, sealedKey: sealed), pairKey: device.pairKey)
                #expect(unwrapped.withUnsafeBytes { hex($0) } == "00112233445566778899aabbccddeeff")
            }
        }

        @Test("tampered answers are refused: MAC, signature, spliced peer number, another call's secret")
        func tamperedAnswers() async throws {
            let secret = CallSecret()
            let identity = Curve25519.Signing.PrivateKey()
            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let accept = """
                    try { await window.kx.accept(arguments[0]); return 'accepted'; } catch (e) { return e.code ?? String(e); }
                    """

                var (offer, _) = try await start(lab, secret: secret)
                var device = try DeviceKeyExchange(offer: offer, expertPeer: expertPeer, session: session, secret: secret, identity: identity)
                #expect(try await lab.run(accept, answerJSON(device.answer, mac: flipped(device.answer.mac, at: 5))) == "mac-mismatch")

                (offer, _) = try await start(lab, secret: secret)
                device = try DeviceKeyExchange(offer: offer, expertPeer: expertPeer, session: session, secret: secret, identity: identity)
                #expect(try await lab.run(accept, answerJSON(device.answer, signature: flipped(device.answer.signature, at: 10))) == "bad-signature")

                // A relay that forwards the answer meant for another expert: the transcript differs.
                (offer, _) = try await start(lab, secret: secret)
                device = try DeviceKeyExchange(offer: offer, expertPeer: expertPeer + 1, session: session, secret: secret, identity: identity)
                #expect(try await lab.run(accept, answerJSON(device.answer)) == "mac-mismatch")

                // A device (or relay) that does not hold this call's secret.
                (offer, _) = try await start(lab, secret: secret)
                device = try DeviceKeyExchange(offer: offer, expertPeer: expertPeer, session: session, secret: CallSecret(), identity: identity)
                #expect(try await lab.run(accept, answerJSON(device.answer)) == "mac-mismatch")

                // Malformed keys are named, not crashed on.
                (offer, _) = try await start(lab, secret: secret)
                device = try DeviceKeyExchange(offer: offer, expertPeer: expertPeer, session: session, secret: secret, identity: identity)
                var short = answerJSON(device.answer)
                if case .object(var fields) = short {
                    fields["pub"] = .string(Base64URL.encode(device.answer.devicePublicKey.prefix(31)))
                    short = .object(fields)
                }
                #expect(try await lab.run(accept, short) == "malformed-key")

                // The untampered answer still verifies after all that.
                (offer, _) = try await start(lab, secret: secret)
                device = try DeviceKeyExchange(offer: offer, expertPeer: expertPeer, session: session, secret: secret, identity: identity)
                #expect(try await lab.run(accept, answerJSON(device.answer)) == "accepted")
            }
        }

        @Test("control messages: device messages only from peer 0, typed fields, messages the core builds parse")
        func controlMessages() async throws {
            let state = CallMessage.StreamState(step: "low", codec: "h264", width: 640, height: 360, fps: 15, bitrateKbps: 300, privacy: false)
            let fromCore = [
                CallMessage.streamState(to: .experts, state),
                .snapshotTaken(to: 1, id: "a", evidence: "IMG-1.jpg", width: 10, height: 20),
                .snapshotFailed(to: 1, id: "a", reason: "privacy on"),
                .keyExchangeFailed(to: 1),
                .mediaKey(to: 1, WrappedMediaKey(kid: 65536, nonce: Data(count: 12), sealedKey: Data(count: 32))),
            ].map { message -> WebDriverValue in
                guard case .object(var fields) = try? JSONDecoder().decode(WebDriverValue.self, from: message.encoded) else { return .null }
                fields["from"] = 0
                return .string(WebDriverValue.object(fields).description)
            }
            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let result = try await lab.run("""
                    const { protocol } = lab;
                    const parse = (text) => { try { const m = protocol.parseMessage(text); return m.known ? 'ok' : 'unknown'; } catch (e) { return e.code; } };
                    return {
                        core: arguments[0].map(parse),
                        otherExpert: parse(JSON.stringify({ type: 'kx-answer', from: 2, pub: 'a', identity: 'b', signature: 'c', mac: 'd' })),
                        noFrom: parse(JSON.stringify({ type: 'media-key', kid: 65536, nonce: 'a', key: 'b' })),
                        badKid: parse(JSON.stringify({ type: 'media-key', from: 0, kid: 1.5, nonce: 'a', key: 'b' })),
                        stringKid: parse(JSON.stringify({ type: 'media-key', from: 0, kid: '65536', nonce: 'a', key: 'b' })),
                        relayError: parse(JSON.stringify({ type: 'error', code: 4429, message: 'slow down' })),
                        joined: parse(JSON.stringify({ type: 'joined', session: 's', peer: 3, device: false })),
                        newer: parse(JSON.stringify({ type: 'some-future-message', from: 0 })),
                        notJSON: parse('{'), noType: parse('{"to":0}'), array: parse('[]'),
                        tooLarge: parse(JSON.stringify({ type: 'error', code: 1, message: 'x'.repeat(17000) })),
                        hello: protocol.hello(Uint8Array.of(1, 2, 3)),
                        report: protocol.receiverReport({ decodedFps: 30, latencyMsP50: null, decryptFailures: 0, framesLost: 2 }),
                    };
                    """, .array(fromCore))
                #expect(result["core"] == ["ok", "ok", "ok", "ok", "ok"])
                #expect(result["otherExpert"] == "not-from-device")
                #expect(result["noFrom"] == "not-from-device")
                #expect(result["badKid"] == "field")
                #expect(result["stringKid"] == "field")
                #expect(result["relayError"] == "ok")
                #expect(result["joined"] == "ok")
                #expect(result["newer"] == "unknown")
                #expect(result["notJSON"] == "not-json")
                #expect(result["noType"] == "no-type")
                #expect(result["array"] == "no-type")
                #expect(result["tooLarge"] == "message-size")
                #expect(result["hello"] == ["type": "hello", "role": "expert", "joinToken": "AQID"])
                // The core's decoder reads what the viewer builds (null latency included).
                guard case .object(var report)? = result["report"] else { throw HeadlessChromium.Failure("no report") }
                report["from"] = 1
                #expect(try CallMessage.decode(Data(WebDriverValue.object(report).description.utf8))
                    == .receiverReport(from: 1, try JSONDecoder().decode(CallMessage.ReceiverReport.self, from: Data(#"{"decodedFps":30,"decryptFailures":0,"framesLost":2}"#.utf8))))
            }
        }

        @Test("invite fragments: only a 43-character b64u secret is accepted")
        func secretParsing() async throws {
            let secret = CallSecret()
            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let result = try await lab.run("""
                    const { keyexchange, bytes } = lab;
                    return arguments[0].map((fragment) => {
                        try { return bytes.toB64u(keyexchange.parseSecret(fragment)); } catch (e) { return e.code; }
                    });
                    """, [
                        .string("#" + secret.base64URL), .string(secret.base64URL), "", "#",
                        .string("#" + secret.base64URL.dropLast()), .string("#" + secret.base64URL + "A"),
                        .string("#" + secret.base64URL.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")) ,
                        .string("#" + secret.base64URL + "="),
                    ])
                let expected: [WebDriverValue] = [
                    .string(secret.base64URL), .string(secret.base64URL), "bad-secret", "bad-secret", "bad-secret", "bad-secret",
                    secret.base64URL.contains(where: { $0 == "-" || $0 == "_" }) ? "bad-secret" : .string(secret.base64URL),
                    "bad-secret",
                ]
                #expect(result == .array(expected))
            }
        }
    }
}
