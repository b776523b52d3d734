import AsyncHTTPClient
import Foundation
import HummingbirdWSClient
import NIOCore
import NIOSSL
import NIOWebSocket
@testable import SightlineRelay
import SightlineTesting
import Testing

/// The relay in-process on 127.0.0.1, driven by real WebSocket clients.
@Suite("Relay over real WebSockets", .serialized)
struct RelayServerTests {
    @Test("hello, session, joined, peer-joined and peer-left; peer numbers are never reused")
    func helloFlow() async throws {
        let relay = try await RelayHarness.start()
        let token = RelayHarness.randomJoinToken()
        let (device, session) = try await relay.openSession(joinToken: token)
        #expect(session.utf8.count == 22, "128 random bits in base64url")

        let (first, one) = try await relay.joinExpert(session, joinToken: token)
        #expect(one == 1)
        #expect(try await device.nextJSON() == ["type": .string("peer-joined"), "peer": .integer(1)])
        let (second, two) = try await relay.joinExpert(session, joinToken: token)
        #expect(two == 2)
        #expect(try await device.nextJSON() == ["type": .string("peer-joined"), "peer": .integer(2)])

        first.close()
        #expect(await first.closeCode() == .normalClosure)
        #expect(try await device.nextJSON() == ["type": .string("peer-left"), "peer": .integer(1)])
        let (_, three) = try await relay.joinExpert(session, joinToken: token)
        #expect(three == 3)
        #expect(try await device.nextJSON()["peer"] == .integer(3))

        #expect(await relay.eventuallyMetrics { $0.contains("sightline_relay_sessions 1.0") && $0.contains(#"sightline_relay_peers{role="expert"} 2.0"#) })
        _ = second
        await relay.stop()
    }

    @Test("text is routed by to, with from overwritten and unknown fields kept")
    func routing() async throws {
        let relay = try await RelayHarness.start()
        let token = RelayHarness.randomJoinToken()
        let (device, session) = try await relay.openSession(joinToken: token)
        let (one, _) = try await relay.joinExpert(session, joinToken: token)
        _ = try await device.nextJSON()
        let (two, _) = try await relay.joinExpert(session, joinToken: token)
        _ = try await device.nextJSON()

        device.send(#"{"type":"stream-state","to":"experts","from":7,"step":"full","future":{"list":[1,2.5,true,null]}}"#)
        for expert in [one, two] {
            let message = try await expert.nextJSON()
            #expect(message["type"] == .string("stream-state"))
            #expect(message["from"] == .integer(0))
            #expect(message["future"] == .object(["list": .array([.integer(1), .number(2.5), .bool(true), .null])]))
        }
        one.send(#"{"type":"kx-offer","to":0,"from":0,"pub":"abc"}"#)
        #expect(try await device.nextJSON() == ["type": .string("kx-offer"), "to": .integer(0), "from": .integer(1), "pub": .string("abc")])

        // To one expert only; to a peer that is not there: dropped silently.
        device.send(#"{"type":"media-key","to":2,"kid":65536}"#)
        device.send(#"{"type":"media-key","to":9,"kid":1}"#)
        device.send(#"{"type":"marker","to":1}"#)
        #expect(try await two.nextJSON()["kid"] == .integer(65536))
        #expect(try await one.nextJSON()["type"] == .string("marker"), "expert 1 got neither expert 2's nor peer 9's message")
        // Experts may talk to each other by number.
        two.send(#"{"type":"note","to":1}"#)
        #expect(try await one.nextJSON()["from"] == .integer(2))
        await relay.stop()
    }

    @Test("binary from the device reaches every expert; from an expert, the device")
    func fanOut() async throws {
        let relay = try await RelayHarness.start()
        let token = RelayHarness.randomJoinToken()
        let (device, session) = try await relay.openSession(joinToken: token)
        let (one, _) = try await relay.joinExpert(session, joinToken: token)
        let (two, _) = try await relay.joinExpert(session, joinToken: token)
        let frames: [[UInt8]] = (0..<20).map { index in [1, 1, index % 5 == 0 ? 1 : 0, 0] + (0..<1000).map { UInt8(truncatingIfNeeded: $0 &+ index) } }
        for frame in frames { device.send(frame) }
        for expert in [one, two] {
            for frame in frames {
                guard case .binary(let buffer)? = await expert.next() else { Issue.record("expected a binary frame"); return }
                #expect(Array(buffer.readableBytesView) == frame)
            }
        }
        let voice: [UInt8] = [1, 2, 0, 0, 42, 43]
        one.send(voice)
        _ = try await device.nextJSON()  // peer-joined 1
        _ = try await device.nextJSON()  // peer-joined 2
        guard case .binary(let buffer)? = await device.next() else { Issue.record("the device got no voice frame"); return }
        #expect(Array(buffer.readableBytesView) == voice)
        #expect(await relay.eventuallyMetrics {
            $0.contains(#"sightline_relay_forwarded_frames_total{kind="video"} 40"#) && $0.contains(#"sightline_relay_forwarded_frames_total{kind="audio"} 1"#)
        })
        await relay.stop()
    }

    @Test("text and media from one sender reach each expert in the order they were sent")
    func orderAcrossTextAndMedia() async throws {
        // Media is forwarded inside the socket's pipeline and text is parsed and routed there
        // too; a key message overtaken by the frames sealed under it would fail every one of them.
        let relay = try await RelayHarness.start()
        let token = RelayHarness.randomJoinToken()
        let (device, session) = try await relay.openSession(joinToken: token)
        let (one, _) = try await relay.joinExpert(session, joinToken: token)
        let (two, _) = try await relay.joinExpert(session, joinToken: token)
        _ = try await device.nextJSON()  // peer-joined 1
        _ = try await device.nextJSON()  // peer-joined 2
        let count = 300
        for index in 0..<count {
            if index % 10 == 0 {
                device.send(#"{"type":"media-key","to":"experts","n":\#(index)}"#)
            } else {
                device.send([1, 1, 0, 0] + withUnsafeBytes(of: UInt32(index).bigEndian) { Array($0) } + [UInt8](repeating: 7, count: 2_000))
            }
        }
        for expert in [one, two] {
            var seen: [Int] = []
            while seen.count < count, let message = await expert.next() {
                switch message {
                case .text(let text):
                    if case .integer(let n)? = try JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8))["n"] { seen.append(Int(n)) }
                case .binary(let buffer):
                    if let bytes = buffer.getBytes(at: buffer.readerIndex + 4, length: 4) { seen.append(bytes.reduce(0) { $0 << 8 | Int($1) }) }
                }
            }
            #expect(seen == Array(0..<count), "an expert got the messages in another order or not all of them")
        }
        await relay.stop()
    }

    @Test("a receiver that stops reading drops to the next keyframe; the other gets every frame; the device hears of it")
    func slowReceiver() async throws {
        var limits = RelayLimits()
        // Large enough that the reading expert never drops on a loaded machine (frames come at
        // about 2 MB/s: it may fall 2 s behind; at 2 MiB and twice the rate, a 0.5 s stall beside
        // the kernel lab in CI made it drop), small enough that the stalled one overflows within
        // the frames sent (14 MB, of which the sockets' buffers hold a few).
        limits.queue = ReceiverQueueLimits(maxBytes: 4 << 20, maxDelay: .seconds(3))
        let relay = try await RelayHarness.start(limits: limits)
        let token = RelayHarness.randomJoinToken()
        let (device, session) = try await relay.openSession(joinToken: token)
        let (fast, _) = try await relay.joinExpert(session, joinToken: token)
        let slow = try await TestPeer.connect(relay.webSocketBase + "/v1/viewer/" + session, paused: true)
        slow.send(hello: "expert", joinToken: token)
        // Both experts are in before the first frame, so both start at a keyframe.
        #expect(try await device.nextJSON()["peer"] == .integer(1))
        #expect(try await device.nextJSON()["peer"] == .integer(2))

        func sequence(_ message: WebSocketMessage?) -> (index: Int, keyframe: Bool)? {
            guard case .binary(let buffer)? = message, let bytes = buffer.getBytes(at: buffer.readerIndex, length: 8) else { return nil }
            let index = bytes[4...7].reduce(0) { $0 << 8 | Int($1) }
            return (index, bytes[2] & 1 == 1)
        }
        // The reading expert reads while the frames are sent, as a viewer does: a reader that
        // only starts after the last frame would be a stalled one on a slow machine.
        async let fastIndices: [Int] = {
            var indices: [Int] = []
            while let message = await fast.next() {
                if case .text = message { break }
                if let frame = sequence(message) { indices.append(frame.index) }
            }
            return indices
        }()

        let count = 900, size = 16 * 1024
        for index in 0..<count {
            // The last frame is a keyframe too: where the queue's drop cycles end depends on how
            // many frames the socket buffers held before the queue, and without it a drop after
            // the last regular keyframe would leave nothing to resume on.
            let keyframe = index % 30 == 0 || index == count - 1
            var frame: [UInt8] = [1, 1, keyframe ? 1 : 0, 0]
            withUnsafeBytes(of: UInt32(index).bigEndian) { frame += $0 }
            frame += [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: size)
            device.send(frame)
            try await Task.sleep(for: .milliseconds(8))
        }
        device.send(#"{"type":"end-of-test","to":"experts"}"#)

        #expect(await fastIndices == Array(0..<count), "the reading expert got every frame, in order")

        slow.resumeReading()
        #expect(try await slow.nextJSON()["type"] == .string("joined"))
        var slowFrames: [(index: Int, keyframe: Bool)] = []
        while let message = await slow.next() {
            if case .text = message { break }
            if let frame = sequence(message) { slowFrames.append(frame) }
        }
        #expect(slowFrames.count < count, "the stalled expert lost frames")
        #expect(slowFrames.first?.index == 0)
        var previous = -1
        var firstGap: Int?
        for frame in slowFrames {
            if frame.index != previous + 1 {
                #expect(frame.keyframe, "after a gap (\(previous) → \(frame.index)) the next frame is a keyframe")
                firstGap = firstGap ?? previous
            }
            previous = frame.index
        }
        #expect(slowFrames.contains { $0.keyframe && $0.index > (firstGap ?? count) }, "it resumed on a keyframe after dropping")

        var reports: [[String: JSONValue]] = []
        while let message = try? await device.nextJSON(timeout: .seconds(1)) {
            if message["type"] == .string("congestion") { reports.append(message) }
        }
        #expect(!reports.isEmpty, "the device heard about the congestion")
        #expect(reports.allSatisfy { $0["peer"] == .integer(2) }, "only about the stalled expert")
        let reportedFrames = reports.reduce(0) { total, report in
            if case .integer(let frames)? = report["droppedFrames"] { return total + Int(frames) }
            return total
        }
        #expect(reportedFrames > 0 && reportedFrames <= count - slowFrames.count)
        print("slow receiver: \(slowFrames.count) of \(count) frames, \(reports.count) congestion reports")
        await relay.stop()
    }

    @Test("a bad device token is refused with 401 before the upgrade")
    func badDeviceToken() async throws {
        let relay = try await RelayHarness.start()
        for token in ["wrong-token-0123456789abcdef", nil] {
            var request = HTTPClientRequest(url: relay.httpBase + "/v1/device")
            request.headers.add(name: "Connection", value: "Upgrade")
            request.headers.add(name: "Upgrade", value: "websocket")
            request.headers.add(name: "Sec-WebSocket-Version", value: "13")
            request.headers.add(name: "Sec-WebSocket-Key", value: "dGhlIHNhbXBsZSBub25jZQ==")
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            #expect(response.status == .unauthorized)
            #expect(response.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
            let body = String(buffer: try await response.body.collect(upTo: 4096))
            #expect(body.contains("Authorization: Bearer"))
        }
        let refused = try await TestPeer.connect(relay.webSocketBase + "/v1/device", token: "wrong-token-0123456789abcdef")
        #expect(await refused.upgradeFailed())
        // A wrong path is still a plain 400, not a 401.
        let elsewhere = try await TestPeer.connect(relay.webSocketBase + "/v1/nothing")
        #expect(await elsewhere.upgradeFailed())
        await relay.stop()
    }

    @Test("a wrong join token closes with 4401, an unknown session with 4404, each after an error message")
    func badJoinTokenAndUnknownSession() async throws {
        let relay = try await RelayHarness.start()
        let token = RelayHarness.randomJoinToken()
        let (device, session) = try await relay.openSession(joinToken: token)

        let intruder = try await TestPeer.connect(relay.webSocketBase + "/v1/viewer/" + session)
        intruder.send(hello: "expert", joinToken: RelayHarness.randomJoinToken())
        let error = try await intruder.nextJSON()
        #expect(error["type"] == .string("error"))
        #expect(error["code"] == .integer(4401))
        #expect(await intruder.closeCode() == .unknown(4401))

        let lost = try await TestPeer.connect(relay.webSocketBase + "/v1/viewer/AAAAAAAAAAAAAAAAAAAAAA")
        lost.send(hello: "expert", joinToken: token)
        #expect(try await lost.nextJSON()["code"] == .integer(4404))
        #expect(await lost.closeCode() == .unknown(4404))

        // Resuming with the wrong join token, or a session that does not exist.
        let thief = try await TestPeer.connect(relay.webSocketBase + "/v1/device", token: RelayHarness.deviceToken)
        thief.send(hello: "device", joinToken: RelayHarness.randomJoinToken(), session: session)
        #expect(await thief.closeCode() == .unknown(4401))
        let stale = try await TestPeer.connect(relay.webSocketBase + "/v1/device", token: RelayHarness.deviceToken)
        stale.send(hello: "device", joinToken: token, session: "BBBBBBBBBBBBBBBBBBBBBB")
        #expect(await stale.closeCode() == .unknown(4404))
        // Another provisioned device cannot take the session even with its join token.
        let other = try await TestPeer.connect(relay.webSocketBase + "/v1/device", token: RelayHarness.otherDeviceToken)
        other.send(hello: "device", joinToken: token, session: session)
        #expect(await other.closeCode() == .unknown(4401))
        _ = device
        await relay.stop()
    }

    @Test("oversize messages close with 4413")
    func oversize() async throws {
        let relay = try await RelayHarness.start()
        let token = RelayHarness.randomJoinToken()
        let (device, session) = try await relay.openSession(joinToken: token)
        device.send(String(repeating: "x", count: 16 * 1024 + 1))
        #expect(try await device.nextJSON()["code"] == .integer(4413))
        #expect(await device.closeCode() == .unknown(4413))

        let (expert, _) = try await relay.joinExpert(session, joinToken: token)
        expert.send([1, 2, 0, 0] + [UInt8](repeating: 0, count: (1 << 20) + 61))
        #expect(try await expert.nextJSON()["code"] == .integer(4413))
        #expect(await expert.closeCode() == .unknown(4413))

        // Exactly at the limit is fine (the device is gone, so the frame goes nowhere).
        let (expert2, number) = try await relay.joinExpert(session, joinToken: token)
        expert2.send([1, 2, 0, 0] + [UInt8](repeating: 0, count: (1 << 20) + 60))
        expert2.send(#"{"type":"still-here","to":\#(number)}"#)
        #expect(try await expert2.nextJSON()["type"] == .string("still-here"))
        await relay.stop()
    }

    @Test("garbage closes with 4400 and the relay goes on serving")
    func garbage() async throws {
        let relay = try await RelayHarness.start()
        let token = RelayHarness.randomJoinToken()
        let (device, session) = try await relay.openSession(joinToken: token)

        let early = try await TestPeer.connect(relay.webSocketBase + "/v1/viewer/" + session)
        early.send([1, 1, 1, 0, 0])
        #expect(try await early.nextJSON()["code"] == .integer(4400))
        #expect(await early.closeCode() == .unknown(4400))

        for text in ["not json at all", "[]", #"{"no":"type"}"#, #"{"type":"hello","role":"device","joinToken":"x"}"#,
                     String(repeating: "[", count: 10_000)] {
            let peer = try await TestPeer.connect(relay.webSocketBase + "/v1/viewer/" + session)
            peer.send(text)
            #expect(await peer.closeCode() == .unknown(4400), "\(text.prefix(30))")
        }
        let (expert, _) = try await relay.joinExpert(session, joinToken: token)
        expert.send(#"{"type":"keyframe-request","reason":"loss"}"#)
        #expect(try await expert.nextJSON()["code"] == .integer(4400), "no to")
        let (bad, _) = try await relay.joinExpert(session, joinToken: token)
        bad.send([9, 9])
        #expect(await bad.closeCode() == .unknown(4400), "binary without an envelope")

        // Still serving: a new expert joins and talks to the device.
        let (fresh, number) = try await relay.joinExpert(session, joinToken: token)
        fresh.send(#"{"type":"kx-offer","to":0}"#)
        var seen = false
        while let message = try? await device.nextJSON(timeout: .seconds(5)) {
            if message["type"] == .string("kx-offer") {
                #expect(message["from"] == .integer(Int64(number)))
                seen = true
                break
            }
        }
        #expect(seen)
        let health = try await HTTPClient.shared.execute(HTTPClientRequest(url: relay.httpBase + "/health"), timeout: .seconds(10))
        #expect(health.status == .ok)
        await relay.stop()
    }

    @Test("rate limits close with 4429; no hello within the deadline with 4408")
    func rateAndHelloLimits() async throws {
        var limits = RelayLimits()
        limits.helloTimeout = .milliseconds(300)
        let relay = try await RelayHarness.start(limits: limits)
        let token = RelayHarness.randomJoinToken()
        let (device, _) = try await relay.openSession(joinToken: token)
        for _ in 0..<80 { device.send(#"{"type":"chatter","to":5}"#) }
        #expect(await device.closeCode() == .unknown(4429))

        let silent = try await TestPeer.connect(relay.webSocketBase + "/v1/viewer/whatever")
        #expect(try await silent.nextJSON()["code"] == .integer(4408))
        #expect(await silent.closeCode() == .unknown(4408))
        await relay.stop()
    }

    @Test("an idle socket is closed with 4408, a quiet one that answers pings is not")
    func idle() async throws {
        var limits = RelayLimits()
        // Room for a loaded machine: a live client has 2.5 s to answer the relay's ping.
        limits.idleTimeout = .seconds(3)
        limits.pingAfterSilence = .milliseconds(500)
        limits.closeGrace = .milliseconds(500)
        let relay = try await RelayHarness.start(limits: limits)
        let token = RelayHarness.randomJoinToken()
        let (device, session) = try await relay.openSession(joinToken: token)
        // A stalled client answers no ping.
        let stalled = try await TestPeer.connect(relay.webSocketBase + "/v1/viewer/" + session, paused: true)
        stalled.send(hello: "expert", joinToken: token)
        #expect(try await device.nextJSON()["type"] == .string("peer-joined"))
        // Idle timeout plus close grace: the relay drops the stalled expert (however slow the machine).
        let left = try await device.nextJSON(timeout: .seconds(15))
        #expect(left["type"] == .string("peer-left"), "the stalled expert was closed; the device got \(left)")
        // The device has said nothing for longer than the idle timeout too, but its client answers
        // the relay's pings, so it is still in the session and hears the next expert join.
        try await Task.sleep(for: .seconds(1))
        let next = try await TestPeer.connect(relay.webSocketBase + "/v1/viewer/" + session)
        next.send(hello: "expert", joinToken: token)
        #expect(try await device.nextJSON()["type"] == .string("peer-joined"))
        stalled.resumeReading()
        #expect(try await stalled.nextJSON()["type"] == .string("joined"))
        #expect(try await stalled.nextJSON()["code"] == .integer(4408))
        #expect(await stalled.closeCode() == .unknown(4408))
        await relay.stop()
    }

    @Test("a device that comes back within the window keeps its experts; a newer connection of the device replaces a stale one (4409)")
    func deviceResume() async throws {
        let relay = try await RelayHarness.start()
        let token = RelayHarness.randomJoinToken()
        let (stale, session) = try await relay.openSession(joinToken: token)
        let (expert, number) = try await relay.joinExpert(session, joinToken: token)
        _ = try await stale.nextJSON()

        // The device reconnects while its old connection still looks alive to the relay.
        let device = try await TestPeer.connect(relay.webSocketBase + "/v1/device", token: RelayHarness.deviceToken)
        device.send(hello: "device", joinToken: token, session: session)
        #expect(try await device.nextJSON() == ["type": .string("session"), "session": .string(session), "peer": .integer(0)])
        #expect(try await stale.nextJSON()["code"] == .integer(4409))
        #expect(await stale.closeCode() == .unknown(4409))
        #expect(try await expert.nextJSON() == ["type": .string("device-joined")])

        // The stale connection's departure did not take the new one's place.
        expert.send(#"{"type":"kx-offer","to":0,"pub":"p"}"#)
        #expect(try await device.nextJSON()["from"] == .integer(Int64(number)))

        device.close()
        _ = await device.closeCode()
        #expect(try await expert.nextJSON() == ["type": .string("device-left")])

        let back = try await TestPeer.connect(relay.webSocketBase + "/v1/device", token: RelayHarness.deviceToken)
        back.send(hello: "device", joinToken: token, session: session)
        #expect(try await back.nextJSON() == ["type": .string("session"), "session": .string(session), "peer": .integer(0)])
        #expect(try await expert.nextJSON() == ["type": .string("device-joined")])
        expert.send(#"{"type":"kx-offer","to":0,"pub":"p"}"#)
        #expect(try await back.nextJSON()["from"] == .integer(Int64(number)))
        let (later, laterNumber) = try await relay.joinExpert(session, joinToken: token)
        #expect(laterNumber == number + 1)
        _ = later
        await relay.stop()
    }

    @Test("experts are told the session ended when the device stays away")
    func sessionExpiry() async throws {
        var limits = RelayLimits()
        limits.deviceResumeWindow = .milliseconds(300)
        let relay = try await RelayHarness.start(limits: limits)
        let token = RelayHarness.randomJoinToken()
        let (device, session) = try await relay.openSession(joinToken: token)
        let (expert, _) = try await relay.joinExpert(session, joinToken: token)
        device.close()
        #expect(try await expert.nextJSON()["type"] == .string("device-left"))
        #expect(try await expert.nextJSON()["code"] == .integer(4404))
        #expect(await expert.closeCode() == .unknown(4404))
        let late = try await TestPeer.connect(relay.webSocketBase + "/v1/device", token: RelayHarness.deviceToken)
        late.send(hello: "device", joinToken: token, session: session)
        #expect(await late.closeCode() == .unknown(4404))
        await relay.stop()
    }

    @Test("the viewer: index for /v/SESSION, files under /viewer, strict headers, no escape from the directory")
    func viewerFiles() async throws {
        let relay = try await RelayHarness.start()
        let page = try await HTTPClient.shared.execute(HTTPClientRequest(url: relay.httpBase + "/v/AAAAAAAAAAAAAAAAAAAAAA"), timeout: .seconds(10))
        #expect(page.status == .ok)
        #expect(page.headers.first(name: "Content-Type") == "text/html; charset=utf-8")
        #expect(page.headers.first(name: "Cache-Control") == "no-store")
        let policy = page.headers.first(name: "Content-Security-Policy") ?? ""
        #expect(policy.contains("default-src 'self'") && policy.contains("connect-src 'self'") && policy.contains("img-src 'self' blob: data:"))
        #expect(!policy.contains("unsafe-inline"))
        #expect(String(buffer: try await page.body.collect(upTo: 1 << 16)).contains("test viewer"))

        let script = try await HTTPClient.shared.execute(HTTPClientRequest(url: relay.httpBase + "/viewer/app.js"), timeout: .seconds(10))
        #expect(script.status == .ok)
        #expect(script.headers.first(name: "Content-Type") == "text/javascript; charset=utf-8")
        #expect(script.headers.first(name: "X-Content-Type-Options") == "nosniff")

        for path in ["/viewer/.hidden", "/viewer/missing.js", "/viewer/..%2F..%2Fetc%2Fpasswd", "/viewer/%2e%2e/index.html", "/viewer/"] {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: relay.httpBase + path), timeout: .seconds(10))
            #expect(response.status == .notFound, "\(path)")
        }
        let metrics = try await HTTPClient.shared.execute(HTTPClientRequest(url: relay.httpBase + "/metrics"), timeout: .seconds(10))
        let text = String(buffer: try await metrics.body.collect(upTo: 1 << 20))
        for name in ["sightline_relay_sessions", "sightline_relay_peers", "sightline_relay_forwarded_bytes_total",
                     "sightline_relay_forwarded_frames_total", "sightline_relay_dropped_frames_total"] {
            #expect(text.contains(name), "\(name)")
        }
        await relay.stop()
    }

    @Test("wss with a self-signed certificate; plain HTTP to the TLS port gets no answer; no plain HTTP off loopback")
    func tls() async throws {
        let directory = try TemporaryDirectory(prefix: "sightline-relay-tls")
        let certificate = directory.file("cert.pem"), key = directory.file("key.pem")
        let openssl = try CommandLineTool.run("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "1", "-keyout", key, "-out", certificate,
        ])
        try #require(openssl.status == 0, "\(openssl.stderr)")
        let relay = try await RelayHarness.start(tls: .init(certificatePath: certificate, keyPath: key))
        #expect(relay.webSocketBase.hasPrefix("wss://"))

        var client = TLSConfiguration.makeClientConfiguration()
        client.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificate))
        let token = RelayHarness.randomJoinToken()
        let (device, session) = try await relay.openSession(joinToken: token, tls: client)
        let (expert, _) = try await relay.joinExpert(session, joinToken: token, tls: client)
        device.send([1, 1, 1, 0, 1, 2, 3])
        guard case .binary(let frame)? = await expert.next() else { Issue.record("no frame over wss"); return }
        #expect(Array(frame.readableBytesView) == [1, 1, 1, 0, 1, 2, 3])

        // Without trusting the certificate, the handshake fails; plain HTTP gets no answer.
        let untrusting = try await TestPeer.connect(relay.webSocketBase + "/v1/viewer/" + session)
        #expect(await untrusting.upgradeFailed())
        await #expect(throws: (any Error).self) {
            _ = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(relay.port)/health"), timeout: .seconds(5))
        }
        let https = HTTPClient(configuration: .init(tlsConfiguration: client))
        let health = try await https.execute(HTTPClientRequest(url: relay.httpBase + "/health"), timeout: .seconds(5))
        #expect(health.status == .ok, "the relay goes on serving TLS")
        try await https.shutdown()
        await relay.stop()

        let tokens = try DeviceTokens(text: "one \(RelayHarness.deviceToken)\n")
        #expect(throws: RelayServer.ConfigurationError.self) {
            _ = try RelayServer.makeApplication(.init(host: "0.0.0.0", port: 0, deviceTokens: tokens, viewerDirectory: directory.path))
        }
        #expect(throws: RelayServer.ConfigurationError.self) {
            _ = try RelayServer.makeApplication(.init(host: "127.0.0.1", port: 0, tls: .init(certificatePath: key, keyPath: certificate),
                                                      deviceTokens: tokens, viewerDirectory: directory.path))
        }
    }
}

@Suite("Device token file")
struct DeviceTokenTests {
    @Test("a token file others can read is refused with advice; mode 0600 loads")
    func permissions() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-tokens")
        let path = directory.file("devices")
        try Data("# name token\nglasses-1 abcdefghijklmnop0123\n".utf8).write(to: URL(fileURLWithPath: path))
        for mode: mode_t in [0o644, 0o640, 0o604, 0o660] {
            chmod(path, mode)
            do {
                _ = try DeviceTokens(contentsOf: path)
                Issue.record("mode \(String(mode, radix: 8)) was accepted")
            } catch {
                #expect(error.description.contains("chmod 600"))
            }
        }
        chmod(path, 0o600)
        let tokens = try DeviceTokens(contentsOf: path)
        #expect(tokens.names == ["glasses-1"])
        #expect(tokens.deviceName(for: "abcdefghijklmnop0123") == "glasses-1")
        #expect(tokens.deviceName(for: "abcdefghijklmnop012") == nil)
        #expect(tokens.deviceName(forAuthorization: "Bearer abcdefghijklmnop0123") == "glasses-1")
        #expect(tokens.deviceName(forAuthorization: "bearer abcdefghijklmnop0123") == "glasses-1")
        #expect(tokens.deviceName(forAuthorization: "Basic abcdefghijklmnop0123") == nil)
        #expect(tokens.deviceName(forAuthorization: nil) == nil)
    }

    @Test("the executable exits 78 with a clear message on a bad token file or missing options")
    func executableRefusesBadConfiguration() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-tokens")
        let path = directory.file("devices")
        try Data("glasses-1 abcdefghijklmnop0123\n".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        let open = try CommandLineTool.run("sightline-relay", ["--listen", "127.0.0.1:18443", "--device-tokens", path])
        #expect(open.status == 78)
        #expect(open.stderr.contains("chmod 600"), "\(open.stderr)")
        let none = try CommandLineTool.run("sightline-relay", ["--listen", "127.0.0.1:18443"])
        #expect(none.status == 78)
        #expect(none.stderr.contains("--device-tokens"))
        chmod(path, 0o600)
        let network = try CommandLineTool.run("sightline-relay", ["--listen", "0.0.0.0:18443", "--device-tokens", path])
        #expect(network.status == 78)
        #expect(network.stderr.contains("--tls-certificate"), "\(network.stderr)")
        let half = try CommandLineTool.run("sightline-relay", ["--device-tokens", path, "--tls-key", path])
        #expect(half.status == 78)
    }

    @Test("malformed lines, short and duplicate tokens are refused with the line number")
    func malformed() {
        let cases = [
            ("a b c\n", "line 1"),
            ("# ok\n\nonly-a-name\n", "line 3"),
            ("a short\n", "shorter than 16"),
            ("a abcdefghijklmnopq\na abcdefghijklmnopr\n", "listed twice"),
            ("a abcdefghijklmnopq\nb abcdefghijklmnopq\n", "another device's token"),
            ("bad/name abcdefghijklmnopq\n", "device name"),
        ]
        for (text, expected) in cases {
            do {
                _ = try DeviceTokens(text: text)
                Issue.record("accepted \(text.debugDescription)")
            } catch {
                #expect(error.description.contains(expected), "\(error.description)")
            }
        }
    }
}
