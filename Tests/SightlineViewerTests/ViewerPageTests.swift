import Crypto
import Foundation
import SightlineCore
import SightlineTesting
import Testing

/// The device side of a call, scripted with the Swift core, behind the lab's fake relay:
/// enough of `sightlined` and `sightline-relay` to drive the real viewer page.
final class ScriptedDevice {
    let secret = CallSecret()
    let session: String
    let identity = Curve25519.Signing.PrivateKey()
    let fixture = H264Fixture(widthInMacroblocks: 20, heightInMacroblocks: 15)  // 320x240

    init(session: String = "lab-session-1") {
        self.session = session
    }

    func inviteLink(_ server: LabServer) -> String {
        secret.inviteLink(relayURL: server.baseURL, session: session)
    }

    var fingerprint: String { DeviceIdentityEncoding.fingerprint(of: identity.publicKey) }

    /// The relay's part: checks the hello and answers `joined`.
    func join(_ socket: LabSocket, peer: Int, deviceOnline: Bool = true) async throws {
        let hello = try await socket.expect("hello")
        #expect(hello["role"] == "expert")
        #expect(hello["joinToken"]?.string == Base64URL.encode(secret.joinToken))
        #expect(socket.path == "/v1/viewer/\(session)")
        socket.send(["type": "joined", "session": .string(session), "peer": .number(Double(peer)), "device": .bool(deviceOnline)])
    }

    /// A device message as the core encodes it, with `from` stamped as the relay does.
    func send(_ socket: LabSocket, _ message: CallMessage) throws {
        guard case .object(var fields) = try JSONDecoder().decode(WebDriverValue.self, from: message.encoded) else {
            throw HeadlessChromium.Failure("CallMessage did not encode to an object: \(message)")
        }
        fields["from"] = 0
        socket.send(.object(fields))
    }

    /// The viewer's next message (receiver reports passed over) as the device's core decodes it,
    /// after the relay stamped `from`.
    func receive(_ socket: LabSocket, from peer: Int, timeout: Duration = .seconds(15)) async throws -> CallMessage {
        let message = try await socket.next(timeout: timeout)
        guard case .object(var fields)? = message.json else { throw HeadlessChromium.Failure("expected text, got \(message)") }
        #expect(fields["to"] == 0, "the viewer addresses everything to the device")
        fields["from"] = .number(Double(peer))
        return try CallMessage.decode(Data(WebDriverValue.object(fields).description.utf8))
    }

    /// The device's part of the exchange, from `kx-offer` to sending `kx-answer`.
    func exchange(_ socket: LabSocket, peer: Int, tamperMAC: Bool = false) async throws -> DeviceKeyExchange {
        guard case .keyExchangeOffer(let from, let expertKey) = try await receive(socket, from: peer) else {
            throw HeadlessChromium.Failure("expected kx-offer")
        }
        #expect(from == UInt32(peer))
        let kx = try DeviceKeyExchange(offer: expertKey, expertPeer: UInt32(peer), session: session, secret: secret, identity: identity)
        var answer = kx.answer
        if tamperMAC {
            var mac = answer.mac
            mac[mac.startIndex] ^= 0x80
            answer = KeyExchangeAnswer(devicePublicKey: answer.devicePublicKey, identityPublicKey: answer.identityPublicKey, signature: answer.signature, mac: mac)
        }
        try send(socket, .keyExchangeAnswer(to: UInt32(peer), answer))
        return kx
    }

    /// Waits for the viewer's `kx-confirm` and checks it against the transcript.
    func confirm(_ socket: LabSocket, kx: DeviceKeyExchange, peer: Int) async throws {
        guard case .keyExchangeConfirm(_, let mac) = try await receive(socket, from: peer) else {
            throw HeadlessChromium.Failure("expected kx-confirm")
        }
        #expect(kx.verifyConfirmation(mac: mac), "the viewer's confirmation MAC verifies on the device")
    }

    /// The next keyframe request's reason.
    func keyframeRequest(_ socket: LabSocket, peer: Int) async throws -> String {
        guard case .keyframeRequest(_, let reason) = try await receive(socket, from: peer) else {
            throw HeadlessChromium.Failure("expected keyframe-request")
        }
        return reason
    }

    func streamState(_ socket: LabSocket, step: String = "full", codec: String = "h264", privacy: Bool = false,
                     caseReference: String? = "WO-4711") throws {
        let state = CallMessage.StreamState(
            step: step, codec: codec, width: fixture.width, height: fixture.height, fps: 30, bitrateKbps: 1200, privacy: privacy,
            caseReference: caseReference)
        try send(socket, .streamState(to: .experts, state))
    }

    /// A new epoch: a fresh base key, wrapped for this expert, and a sealer under its KID.
    func mediaKey(_ socket: LabSocket, kx: DeviceKeyExchange, peer: Int, epoch: UInt32) throws -> SFrameSealer {
        let key = SymmetricKey(size: .bits128)
        let kid = MediaKeyID(epoch: epoch, sender: 0).kid
        try send(socket, .mediaKey(to: UInt32(peer), try kx.wrap(mediaKey: key, kid: kid)))
        return SFrameSealer(kid: kid, baseKey: key)
    }

    /// The core's sealed-payload header followed by the coded frame.
    static func payload(codec: MediaPayloadHeader.Codec, width: Int, height: Int, data: [UInt8], captureTime: Date = Date()) -> [UInt8] {
        let header = MediaPayloadHeader(
            codec: codec, width: UInt16(width), height: UInt16(height),
            captureMicroseconds: UInt64(captureTime.timeIntervalSince1970 * 1_000_000))
        return header.bytes + data
    }

    /// `envelope || SFrame(payload)` with the envelope authenticated as metadata;
    /// `claimKeyframe` lets a test play a relay that flips the flag on the wire.
    static func media(
        _ sealer: inout SFrameSealer, kind: MediaEnvelope.Kind, keyframe: Bool, payload: [UInt8], claimKeyframe: Bool? = nil
    ) throws -> [UInt8] {
        let envelope = MediaEnvelope(kind: kind, isKeyframe: keyframe)
        let frame = try sealer.seal(payload, metadata: envelope.bytes)
        return MediaEnvelope(kind: kind, isKeyframe: claimKeyframe ?? keyframe).bytes + Array(frame)
    }

    /// Sends `count` H.264 frames at about 30 fps: a keyframe every `gop`, P-skips between.
    func sendVideo(_ socket: LabSocket, sealer: inout SFrameSealer, count: Int, gop: Int = 10, phase: Int = 0) async throws {
        for index in 0..<count {
            let keyframe = index % gop == 0
            let shift = (index / gop + phase) % palette.count
            let data = keyframe
                ? fixture.keyframe(idrPicID: UInt32(index / gop % 2)) { x, y in palette[((x / 4) + y / 5 + shift) % palette.count].color }
                : fixture.skippedFrame(frameNum: UInt32(index % gop))
            let payload = Self.payload(codec: .h264, width: fixture.width, height: fixture.height, data: data)
            socket.send(binary: try Self.media(&sealer, kind: .video, keyframe: keyframe, payload: payload))
            try await Task.sleep(for: .milliseconds(33))
        }
    }
}

extension ViewerLab {
    /// Polls `window.sightlineViewer.stats` until the JavaScript `condition` (over `s`) holds.
    func waitForStats(_ condition: String, timeout: Double = 15) async throws -> WebDriverValue {
        try await browser.evaluate("""
            const deadline = performance.now() + arguments[0] * 1000;
            let s = null;
            while (performance.now() < deadline) {
                s = window.sightlineViewer ? window.sightlineViewer.stats : null;
                if (s && (\(condition))) return s;
                await new Promise((r) => setTimeout(r, 20));
            }
            throw new Error('timed out waiting for \(condition.replacingOccurrences(of: "'", with: "\\'")); stats: ' + JSON.stringify(s));
            """, arguments: [.number(timeout)])
    }

    func saveScreenshot(_ name: String) async throws -> URL {
        let png = try await browser.screenshot()
        try FileManager.default.createDirectory(at: ViewerFiles.artifactsDirectory, withIntermediateDirectories: true)
        let url = ViewerFiles.artifactsDirectory.appendingPathComponent(name)
        try png.write(to: url)
        return url
    }

    /// The text and visibility of the page's elements, as the expert sees them. The page renders
    /// on the animation frame after a change; two frames later it has.
    func pageText() async throws -> WebDriverValue {
        try await browser.evaluate("""
            for (let i = 0; i < 2; i += 1) await new Promise((r) => requestAnimationFrame(() => r()));
            const text = (id) => document.getElementById(id).textContent.trim();
            return {
                connection: text('connection-text'), encryption: text('encryption-text'), fingerprint: text('fingerprint'),
                latency: text('latency'), fps: text('fps'), bitrate: text('bitrate'), drops: text('drops'), step: text('step'),
                caseReference: text('case-reference'),
                overlay: document.getElementById('overlay').hidden ? null : text('overlay-text'),
                snapshotStatus: text('snapshot-status'), snapshotPanel: !document.getElementById('snapshot-panel').hidden,
                snapshotButton: !document.getElementById('snapshot-button').disabled,
                session: text('session-id'), message: document.getElementById('message').hidden ? null : text('message'),
            };
            """)
    }

    /// The colour at the centre of (x, y) in the video canvas.
    func canvasColor(x: Int, y: Int) async throws -> String {
        colorName(try await browser.evaluate("""
            const canvas = document.getElementById('video');
            const probe = new OffscreenCanvas(canvas.width, canvas.height).getContext('2d');
            probe.drawImage(canvas, 0, 0);
            return Array.from(probe.getImageData(arguments[0], arguments[1], 1, 1).data.slice(0, 3));
            """, arguments: [.number(Double(x)), .number(Double(y))]))
    }
}

extension ViewerBrowserTests {
    /// The real viewer page (index.html and its modules, under the relay's CSP) against a scripted
    /// relay and device.
    @Suite("viewer page in Chromium (and Firefox)")
    struct ViewerPageTests {
        @Test("joins, verifies the device, decodes H.264, reports, takes a snapshot, and shows it all", arguments: BrowserKind.allCases)
        func liveCall(in browser: BrowserKind) async throws {
            let device = ScriptedDevice()
            let jpeg = try labJPEG(width: 640, height: 360)
            try await ViewerLab.run(in: browser) { lab in
                try await lab.browser.open(device.inviteLink(lab.server))
                let socket = try await lab.server.nextSocket()
                try await device.join(socket, peer: 1)
                let kx = try await device.exchange(socket, peer: 1)
                try await device.confirm(socket, kx: kx, peer: 1)
                try device.streamState(socket)
                var sealer = try device.mediaKey(socket, kx: kx, peer: 1, epoch: 1)
                #expect(try await device.keyframeRequest(socket, peer: 1) == "new-viewer")

                try await device.sendVideo(socket, sealer: &sealer, count: 45)
                var stats = try await lab.waitForStats("s.framesDecoded >= 45 && s.state === 'live'")
                #expect(stats["encryption"] == "verified")
                #expect(stats["verified"] == true)
                #expect(stats["fingerprint"]?.string == device.fingerprint)
                #expect(stats["peer"] == 1)
                #expect(stats["lastFrameCounter"] == 44)
                #expect(stats["lastKid"] == .number(Double(MediaKeyID(epoch: 1, sender: 0).kid)))
                #expect(stats["keyEpoch"] == 1)
                #expect(stats["decryptFailures"] == 0)
                #expect(stats["decodeErrors"] == 0)
                #expect(stats["framesLost"] == 0)
                #expect(stats["step"] == "full")
                #expect((stats["bitrateKbps"]?.int ?? 0) > 0)
                let p50 = try #require(stats["latencyMsP50"]?.double)
                // Loopback, same clock: far below the 50 ms p99 budget unless something queues.
                #expect(p50 >= 0 && p50 < 250, "latency p50 \(p50) ms")
                #expect(stats["latencyMs"]?.array?.isEmpty == false)

                // The last keyframe's pattern is on the canvas: decoded pixels, not just counts.
                let shift = (44 / 10) % palette.count
                #expect(try await lab.canvasColor(x: 8, y: 8) == palette[shift].name)
                #expect(try await lab.canvasColor(x: 4 * 16 + 8, y: 8) == palette[(1 + shift) % palette.count].name)

                // Receiver reports go to the device once a second and describe the last second:
                // with frames flowing, one soon reports them (a slower browser may still send
                // one for the quiet second the checks above took).
                try await device.sendVideo(socket, sealer: &sealer, count: 20, phase: 1)
                var report: [String: WebDriverValue] = [:]
                let reportDeadline = ContinuousClock.now + .seconds(5)
                repeat {
                    guard case .object(let next) = try await socket.waitFor("receiver-report", timeout: reportDeadline - ContinuousClock.now) else {
                        throw HeadlessChromium.Failure("receiver-report is not an object")
                    }
                    report = next
                } while (report["decodedFps"]?.double ?? 0) == 0 && ContinuousClock.now < reportDeadline
                #expect(report["to"] == 0)
                report["from"] = 1
                guard case .receiverReport(1, let decoded) = try CallMessage.decode(Data(WebDriverValue.object(report).description.utf8)) else {
                    throw HeadlessChromium.Failure("the core did not decode the viewer's receiver report: \(report)")
                }
                #expect(decoded.decryptFailures == 0)
                #expect(decoded.framesLost == 0)
                #expect((decoded.decodedFps ?? 0) > 0)
                #expect(decoded.latencyMsP50 != nil)

                // Snapshot: button → request → taken → sealed still of kind 3 → shown.
                _ = try await lab.browser.evaluate("document.getElementById('snapshot-button').click();")
                guard case .snapshotRequest(_, let id) = try await device.receive(socket, from: 1) else {
                    throw HeadlessChromium.Failure("expected snapshot-request")
                }
                try device.send(socket, .snapshotTaken(to: 1, id: id, evidence: "IMG-20250101-0001.jpg", width: 640, height: 360))
                let still = ScriptedDevice.payload(codec: .jpeg, width: 640, height: 360, data: jpeg)
                socket.send(binary: try ScriptedDevice.media(&sealer, kind: .still, keyframe: true, payload: still))
                try await device.sendVideo(socket, sealer: &sealer, count: 15, phase: 2)
                stats = try await lab.waitForStats("s.snapshot && s.snapshot.state === 'received' && s.framesDecoded >= 80")
                #expect(stats["snapshot"]?["evidence"] == "IMG-20250101-0001.jpg")

                let page = try await lab.pageText()
                #expect(page["encryption"] == "End-to-end encrypted · verified")
                #expect(page["fingerprint"]?.string == device.fingerprint)
                #expect(page["connection"] == "Connected")
                #expect(page["step"] == "Full video")
                #expect(page["caseReference"] == "WO-4711")
                #expect(page["overlay"] == .null)
                #expect(page["snapshotPanel"] == true)
                #expect(page["snapshotButton"] == true)
                #expect(page["session"] == "lab-session-1")
                #expect(page["latency"]?.string?.hasSuffix(" ms") == true)
                let shot = try await lab.saveScreenshot("viewer-lab-live-\(browser).png")
                print("viewer screenshot: \(shot.path)")

                // A relay that flips the keyframe flag, or replays a frame, gets nothing through.
                var copy = sealer.nextCounter ?? 0
                let payload = ScriptedDevice.payload(codec: .h264, width: 320, height: 240, data: device.fixture.skippedFrame(frameNum: 1))
                socket.send(binary: try ScriptedDevice.media(&sealer, kind: .video, keyframe: false, payload: payload, claimKeyframe: true))
                let replayed = try ScriptedDevice.media(&sealer, kind: .video, keyframe: false, payload: payload)
                socket.send(binary: replayed)
                socket.send(binary: replayed)
                copy += 2
                stats = try await lab.waitForStats("s.decryptFailures >= 2")
                #expect(stats["decryptFailuresByCode"] == ["authentication-failed": 1, "replayed": 1])
                #expect(stats["lastFrameCounter"] == .number(Double(copy - 1)))

                // The secret never left the fragment: no request line or header carries it.
                let requests = lab.server.requests
                #expect(requests.contains { $0.hasPrefix("GET /v/lab-session-1") })
                #expect(!requests.contains { $0.contains(device.secret.base64URL) })
                let log = try await lab.browser.browserLog()
                #expect(!log.contains { $0.contains("Content Security Policy") || $0.contains("Content-Security-Policy") }, "\(log)")
                // Chromium marks errors "SEVERE"; Firefox's console on stdout says "console.error".
                #expect(!log.contains { ($0.hasPrefix("SEVERE") || $0.hasPrefix("console.error")) && !$0.contains("favicon") }, "\(log)")
            }
        }

        @Test("a device answer with a wrong MAC is refused: not verified, no confirm, no media")
        func wrongMAC() async throws {
            let device = ScriptedDevice()
            try await ViewerLab.run { lab in
                try await lab.browser.open(device.inviteLink(lab.server))
                let socket = try await lab.server.nextSocket()
                try await device.join(socket, peer: 1)
                let kx = try await device.exchange(socket, peer: 1, tamperMAC: true)
                var stats = try await lab.waitForStats("s.encryption === 'not-verified'")
                #expect(stats["state"] == "not-verified")
                #expect(stats["fingerprint"] == .null)

                // A relay pushing keys and frames anyway: ignored, never decoded.
                var sealer = try device.mediaKey(socket, kx: kx, peer: 1, epoch: 1)
                try await device.sendVideo(socket, sealer: &sealer, count: 10)
                stats = try await lab.waitForStats("s.framesWithoutKey >= 10")
                #expect(stats["framesDecoded"] == 0)
                #expect(stats["keyEpoch"] == .null)
                #expect(!socket.received.contains { $0.type == "kx-confirm" || $0.type == "keyframe-request" || $0.type == "receiver-report" })

                let page = try await lab.pageText()
                #expect(page["encryption"]?.string?.hasPrefix("Not verified") == true)
                #expect(page["overlay"]?.string?.contains("could not be verified") == true)
                #expect(page["snapshotButton"] == false)
                _ = try await lab.saveScreenshot("viewer-lab-not-verified.png")
            }
        }

        @Test("reconnects by itself after a drop and exchanges keys again; follows the device leaving and returning; JPEG stream", arguments: BrowserKind.allCases)
        func reconnect(in browser: BrowserKind) async throws {
            let device = ScriptedDevice()
            let jpeg = try labJPEG(width: 320, height: 240)
            try await ViewerLab.run(in: browser) { lab in
                try await lab.browser.open(device.inviteLink(lab.server))
                var socket = try await lab.server.nextSocket()
                try await device.join(socket, peer: 1)
                var kx = try await device.exchange(socket, peer: 1)
                try await device.confirm(socket, kx: kx, peer: 1)
                try device.streamState(socket)
                var sealer = try device.mediaKey(socket, kx: kx, peer: 1, epoch: 1)
                _ = try await device.keyframeRequest(socket, peer: 1)
                try await device.sendVideo(socket, sealer: &sealer, count: 10)
                _ = try await lab.waitForStats("s.framesDecoded >= 10")

                // The relay drops the connection (as on an idle timeout): the viewer comes back.
                socket.close(code: 4408)
                _ = try await lab.waitForStats("s.state === 'reconnecting' || s.state === 'connecting'", timeout: 5)
                socket = try await lab.server.nextSocket()
                try await device.join(socket, peer: 2)
                kx = try await device.exchange(socket, peer: 2)
                try await device.confirm(socket, kx: kx, peer: 2)
                try device.streamState(socket)
                sealer = try device.mediaKey(socket, kx: kx, peer: 2, epoch: 2)
                #expect(try await device.keyframeRequest(socket, peer: 2) == "new-viewer")
                try await device.sendVideo(socket, sealer: &sealer, count: 10)
                var stats = try await lab.waitForStats("s.framesDecoded >= 20 && s.state === 'live'")
                #expect(stats["reconnects"] == 1)
                #expect(stats["peer"] == 2)
                #expect(stats["keyEpoch"] == 2)
                #expect(stats["decryptFailures"] == 0)

                // The device drops; the relay keeps the session and says so; the device returns.
                socket.send(["type": "device-left"])
                stats = try await lab.waitForStats("s.state === 'waiting-for-device'")
                #expect(stats["deviceOnline"] == false)
                socket.send(["type": "device-joined"])
                kx = try await device.exchange(socket, peer: 2)
                try await device.confirm(socket, kx: kx, peer: 2)
                try device.streamState(socket, step: "low", codec: "jpeg")
                sealer = try device.mediaKey(socket, kx: kx, peer: 2, epoch: 1)  // a new device process starts at epoch 1 again
                _ = try await device.keyframeRequest(socket, peer: 2)
                for _ in 0..<8 {
                    let payload = ScriptedDevice.payload(codec: .jpeg, width: 320, height: 240, data: jpeg)
                    socket.send(binary: try ScriptedDevice.media(&sealer, kind: .video, keyframe: true, payload: payload))
                    try await Task.sleep(for: .milliseconds(40))
                }
                stats = try await lab.waitForStats("s.framesDecoded >= 28 && s.step === 'low'")
                #expect(stats["decryptFailures"] == 0)
                #expect(stats["keyEpoch"] == 1)
                #expect(try await lab.canvasColor(x: 40, y: 120) == "red")
                #expect(try await lab.canvasColor(x: 280, y: 120) == "blue")
                #expect(try await lab.pageText()["step"] == "Low quality")
            }
        }

        @Test("a broken frame makes the viewer ask for a keyframe and recover; privacy mode is shown", arguments: BrowserKind.allCases)
        func decodeErrorAndPrivacy(in browser: BrowserKind) async throws {
            let device = ScriptedDevice()
            try await ViewerLab.run(in: browser) { lab in
                try await lab.browser.open(device.inviteLink(lab.server))
                let socket = try await lab.server.nextSocket()
                try await device.join(socket, peer: 1)
                let kx = try await device.exchange(socket, peer: 1)
                try await device.confirm(socket, kx: kx, peer: 1)
                try device.streamState(socket)
                var sealer = try device.mediaKey(socket, kx: kx, peer: 1, epoch: 1)
                _ = try await device.keyframeRequest(socket, peer: 1)
                try await device.sendVideo(socket, sealer: &sealer, count: 5)
                _ = try await lab.waitForStats("s.framesDecoded >= 5")

                let broken = ScriptedDevice.payload(codec: .h264, width: 320, height: 240, data: [UInt8](repeating: 0xA7, count: 300))
                socket.send(binary: try ScriptedDevice.media(&sealer, kind: .video, keyframe: true, payload: broken))
                #expect(try await device.keyframeRequest(socket, peer: 1) == "decode-error")
                try await device.sendVideo(socket, sealer: &sealer, count: 10)
                let stats = try await lab.waitForStats("s.decodeErrors >= 1 && s.framesDecoded >= 15")
                #expect(stats["decryptFailures"] == 0)

                try device.streamState(socket, privacy: true)
                _ = try await lab.waitForStats("s.privacy === true")
                let page = try await lab.pageText()
                #expect(page["overlay"]?.string?.hasPrefix("Privacy mode") == true)

                // The lowest rung of the ladder: only the voice channel gets through.
                try device.streamState(socket, step: "audio-only")
                _ = try await lab.waitForStats("s.privacy === false && s.step === 'audio-only'")
                let audioOnly = try await lab.pageText()
                #expect(audioOnly["step"] == "Audio only")
                #expect(audioOnly["overlay"]?.string?.contains("voice only") == true, "\(audioOnly)")
            }
        }

        @Test("a link without its secret, and a call the relay does not know, fail clearly and do not retry")
        func badLinks() async throws {
            let device = ScriptedDevice()
            try await ViewerLab.run { lab in
                try await lab.browser.open("\(lab.server.baseURL)/v/\(device.session)")
                let overlay = try await lab.browser.evaluate("""
                    for (let i = 0; i < 100 && document.getElementById('overlay-text').textContent === 'Starting…'; i += 1)
                        await new Promise((r) => setTimeout(r, 20));
                    return document.getElementById('overlay-text').textContent;
                    """)
                #expect(overlay.string?.contains("everything after “#”") == true, "\(overlay)")
                #expect(lab.server.requests.allSatisfy { !$0.hasPrefix("GET /v1/") })

                try await lab.browser.open(device.inviteLink(lab.server))
                let socket = try await lab.server.nextSocket()
                _ = try await socket.expect("hello")
                socket.close(code: 4404)
                let stats = try await lab.waitForStats("s.state === 'failed'")
                #expect(stats["closeCode"] == 4404)
                #expect(stats["error"]?.string?.contains("does not exist") == true)
                try await Task.sleep(for: .seconds(2))
                await #expect(throws: (any Error).self) { _ = try await lab.server.nextSocket(timeout: .milliseconds(100)) }
            }
        }
    }
}
