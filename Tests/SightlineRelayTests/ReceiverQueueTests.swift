import Foundation
import NIOCore
@testable import SightlineRelay
import Testing

@Suite("Receiver queue: drop to the next keyframe, never block the sender")
struct ReceiverQueueTests {
    let start = ContinuousClock.now
    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    func drain(_ queue: inout ReceiverQueue<String>) -> [String] {
        var out: [String] = []
        while let next = queue.dequeue() { out.append(next) }
        return out
    }

    @Test("first in, first out, with the queued bytes counted")
    func fifo() {
        var queue = ReceiverQueue<String>(limits: .init(maxBytes: 1000))
        #expect(queue.enqueue("k", kind: .video(keyframe: true), size: 100, now: at(0)).drops.isEmpty)
        #expect(queue.enqueue("a", kind: .audio, size: 10, now: at(1)).drops.isEmpty)
        #expect(queue.enqueue("c", kind: .control, size: 5, now: at(2)).drops.isEmpty)
        #expect(queue.queuedBytes == 115)
        #expect(queue.delay(at: at(30)) == .milliseconds(30))
        #expect(queue.dequeue() == "k")
        #expect(queue.queuedBytes == 15)
        #expect(drain(&queue) == ["a", "c"])
        #expect(queue.queuedBytes == 0 && queue.isEmpty)
        #expect(queue.delay(at: at(40)) == .zero)
    }

    @Test("a full queue drops its video, then skips video up to the next keyframe; audio goes on")
    func fullQueueSkipsToKeyframe() {
        var queue = ReceiverQueue<String>(limits: .init(maxBytes: 300))
        _ = queue.enqueue("K1", kind: .video(keyframe: true), size: 100, now: at(0))
        _ = queue.enqueue("P1", kind: .video(keyframe: false), size: 100, now: at(1))
        _ = queue.enqueue("A1", kind: .audio, size: 10, now: at(2))
        _ = queue.enqueue("C1", kind: .control, size: 10, now: at(3))
        // 220 queued; this P frame does not fit.
        let overflow = queue.enqueue("P2", kind: .video(keyframe: false), size: 100, now: at(4))
        #expect(overflow.drops == [
            FrameDrop(reason: .queueFull, frames: 2, bytes: 200),
            FrameDrop(reason: .waitingForKeyframe, frames: 1, bytes: 100),
        ])
        #expect(queue.isSkippingVideo)
        #expect(queue.enqueue("P3", kind: .video(keyframe: false), size: 50, now: at(5)).drops
            == [FrameDrop(reason: .waitingForKeyframe, frames: 1, bytes: 50)])
        #expect(queue.enqueue("A2", kind: .audio, size: 10, now: at(6)).drops.isEmpty)
        #expect(queue.enqueue("S1", kind: .still, size: 20, now: at(7)).drops.isEmpty)
        #expect(queue.enqueue("K2", kind: .video(keyframe: true), size: 100, now: at(8)).drops.isEmpty)
        #expect(!queue.isSkippingVideo)
        #expect(queue.enqueue("P4", kind: .video(keyframe: false), size: 50, now: at(9)).drops.isEmpty)
        #expect(drain(&queue) == ["A1", "C1", "A2", "S1", "K2", "P4"])
    }

    @Test("an entry older than the delay limit triggers the same drop")
    func delayedQueueDrops() {
        var queue = ReceiverQueue<String>(limits: .init(maxBytes: 1 << 20, maxDelay: .milliseconds(500)))
        _ = queue.enqueue("K1", kind: .video(keyframe: true), size: 1000, now: at(0))
        _ = queue.enqueue("P1", kind: .video(keyframe: false), size: 1000, now: at(100))
        #expect(queue.enqueue("P2", kind: .video(keyframe: false), size: 1000, now: at(500)).drops.isEmpty)
        let late = queue.enqueue("K2", kind: .video(keyframe: true), size: 1000, now: at(501))
        #expect(late.drops == [FrameDrop(reason: .queueDelay, frames: 3, bytes: 3000)])
        // A keyframe is what the receiver needs, so it is queued at once.
        #expect(!queue.isSkippingVideo)
        #expect(drain(&queue) == ["K2"])
    }

    @Test("audio and stills go only when dropping the video did not make room")
    func audioDroppedLast() {
        var queue = ReceiverQueue<String>(limits: .init(maxBytes: 100))
        _ = queue.enqueue("A1", kind: .audio, size: 40, now: at(0))
        _ = queue.enqueue("S1", kind: .still, size: 40, now: at(1))
        _ = queue.enqueue("C1", kind: .control, size: 10, now: at(2))
        let outcome = queue.enqueue("A2", kind: .audio, size: 30, now: at(3))
        #expect(outcome.drops == [FrameDrop(reason: .queueFull, frames: 2, bytes: 80)])
        #expect(drain(&queue) == ["C1", "A2"])
    }

    @Test("control messages are never dropped; one that cannot fit reports an overflow")
    func controlNeverDropped() {
        var queue = ReceiverQueue<String>(limits: .init(maxBytes: 100))
        _ = queue.enqueue("V", kind: .video(keyframe: true), size: 50, now: at(0))
        _ = queue.enqueue("C1", kind: .control, size: 60, now: at(1)).drops
        #expect(drain(&queue) == ["C1"])
        _ = queue.enqueue("C2", kind: .control, size: 90, now: at(2))
        let overflow = queue.enqueue("C3", kind: .control, size: 20, now: at(3))
        #expect(overflow.controlOverflow)
        #expect(overflow.drops.isEmpty)
        #expect(drain(&queue) == ["C2"])
    }

    @Test("a frame larger than the whole queue is dropped, not queued")
    func oversizeFrame() {
        var queue = ReceiverQueue<String>(limits: .init(maxBytes: 100))
        let outcome = queue.enqueue("K", kind: .video(keyframe: true), size: 101, now: at(0))
        #expect(outcome.drops == [FrameDrop(reason: .queueFull, frames: 1, bytes: 101)])
        #expect(queue.isEmpty && queue.isSkippingVideo)
    }

    @Test("congestion reports add up the drops and come at most every 250 ms")
    func congestionReports() {
        var queue = ReceiverQueue<String>(limits: .init(maxBytes: 100, reportInterval: .milliseconds(250)))
        #expect(queue.congestionReport(now: at(0)) == nil)
        _ = queue.enqueue("K", kind: .video(keyframe: true), size: 80, now: at(0))
        _ = queue.enqueue("P", kind: .video(keyframe: false), size: 30, now: at(10))
        _ = queue.enqueue("A", kind: .audio, size: 5, now: at(20))
        let first = queue.congestionReport(now: at(20))
        #expect(first == CongestionReport(droppedFrames: 2, droppedBytes: 110, queuedBytes: 5, queueDelay: .zero))
        _ = queue.enqueue("P2", kind: .video(keyframe: false), size: 10, now: at(100))
        #expect(queue.congestionReport(now: at(100)) == nil, "within 250 ms of the last report")
        _ = queue.enqueue("P3", kind: .video(keyframe: false), size: 20, now: at(200))
        let second = queue.congestionReport(now: at(270))
        #expect(second?.droppedFrames == 2)
        #expect(second?.droppedBytes == 30)
        #expect(second?.queueDelay == .milliseconds(250))
        #expect(queue.congestionReport(now: at(600)) == nil, "no drops since")
    }

    @Test("dequeue stays correct across many enqueues and compactions")
    func longRun() {
        var queue = ReceiverQueue<Int>(limits: .init(maxBytes: 1 << 30, maxDelay: .seconds(3600)))
        var expected = 0
        for index in 0..<10_000 {
            _ = queue.enqueue(index, kind: .audio, size: 3, now: at(0))
            if index % 3 == 0, let value = queue.dequeue() {
                #expect(value == expected)
                expected += 1
            }
        }
        while let value = queue.dequeue() {
            #expect(value == expected)
            expected += 1
        }
        #expect(expected == 10_000)
        #expect(queue.queuedBytes == 0)
    }
}

@Suite("Relay message rules")
struct RelayMessageTests {
    @Test("from is overwritten and unknown fields survive")
    func forwardedKeepsFields() throws {
        let message = try ControlMessage.parse(#"{"type":"x-new","to":"experts","from":9,"big":9007199254740993,"f":1.5,"n":null,"b":true,"o":{"a":[1,"s",{}]}}"#)
        #expect(try message.target(senderIsDevice: true) == .experts)
        let forwarded = try ControlMessage.parse(message.forwarded(from: 0))
        #expect(forwarded.fields["from"] == .integer(0))
        #expect(forwarded.fields["big"] == .integer(9007199254740993))
        #expect(forwarded.fields["f"] == .number(1.5))
        #expect(forwarded.fields["n"] == .null)
        #expect(forwarded.fields["b"] == .bool(true))
        #expect(forwarded.fields["o"] == .object(["a": .array([.integer(1), .string("s"), .object([:])])]))
    }

    @Test("malformed text is refused with 4400")
    func malformed() {
        for text in ["not json", "[1,2]", #"{"to":1}"#, #"{"type":5}"#, String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)] {
            #expect(throws: RelayRefusal.self) { try ControlMessage.parse(text) }
        }
        #expect(ControlMessage.nestingDepth(of: Array(#"{"a":"[[[[{{{{","b":[[1]]}"#.utf8)) == 3)
    }

    @Test("to: a peer number, or experts from the device only")
    func targets() throws {
        let toPeer = try ControlMessage.parse(#"{"type":"t","to":2}"#)
        #expect(try toPeer.target(senderIsDevice: false) == .peer(2))
        let toExperts = try ControlMessage.parse(#"{"type":"t","to":"experts"}"#)
        #expect(throws: RelayRefusal.self) { try toExperts.target(senderIsDevice: false) }
        for bad in [#"{"type":"t"}"#, #"{"type":"t","to":-1}"#, #"{"type":"t","to":1.5}"#, #"{"type":"t","to":true}"#, #"{"type":"t","to":"device"}"#] {
            let message = try ControlMessage.parse(bad)
            #expect(throws: RelayRefusal.self) { try message.target(senderIsDevice: true) }
        }
    }

    @Test("the hello needs the role of its endpoint and a 32-byte join token")
    func hello() throws {
        let token = Base64URL.encode([UInt8](repeating: 7, count: 32))
        #expect(token.count == 43)
        let device = try Hello(ControlMessage.parse(#"{"type":"hello","role":"device","joinToken":"\#(token)","session":"abc"}"#), expected: .device)
        #expect(device.session == "abc")
        #expect(throws: RelayRefusal.self) {
            try Hello(ControlMessage.parse(#"{"type":"hello","role":"device","joinToken":"\#(token)"}"#), expected: .expert)
        }
        #expect(throws: RelayRefusal.self) {
            try Hello(ControlMessage.parse(#"{"type":"hello","role":"expert","joinToken":"c2hvcnQ"}"#), expected: .expert)
        }
        #expect(throws: RelayRefusal.self) {
            try Hello(ControlMessage.parse(#"{"type":"hello","role":"expert","joinToken":"\#(token)","session":"x"}"#), expected: .expert)
        }
    }

    @Test("base64url round trip, no padding, strict alphabet")
    func base64url() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 250) }
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(Base64URL.decode(text) == bytes)
        }
        #expect(Base64URL.decode("ab+c") == nil)
        #expect(Base64URL.decode("abc=") == nil)
        #expect(Base64URL.decode("a") == nil)
    }

    @Test("the envelope names the media kind and the keyframe flag")
    func envelope() throws {
        #expect(try MediaEnvelope.kind(of: ByteBuffer(bytes: [1, 1, 1, 0, 9])) == .video(keyframe: true))
        #expect(try MediaEnvelope.kind(of: ByteBuffer(bytes: [1, 1, 0, 0])) == .video(keyframe: false))
        #expect(try MediaEnvelope.kind(of: ByteBuffer(bytes: [1, 2, 1, 0])) == .audio)
        #expect(try MediaEnvelope.kind(of: ByteBuffer(bytes: [1, 3, 0, 0])) == .still)
        for bad: [UInt8] in [[1, 1, 1], [2, 1, 1, 0], [1, 4, 0, 0], []] {
            #expect(throws: RelayRefusal.self) { try MediaEnvelope.kind(of: ByteBuffer(bytes: bad)) }
        }
    }

    @Test("the token bucket allows one second's burst and then the rate")
    func rateLimiter() {
        let start = ContinuousClock.now
        var limiter = MessageRateLimiter(ratePerSecond: 50, now: start)
        var allowed = 0
        for _ in 0..<50 where limiter.allow(now: start) { allowed += 1 }
        #expect(allowed == 50)
        let overBurst = limiter.allow(now: start)
        let refilled = limiter.allow(now: start + .milliseconds(20))
        let overRate = limiter.allow(now: start + .milliseconds(21))
        #expect(!overBurst)
        #expect(refilled, "20 ms at 50 per second is one new token")
        #expect(!overRate)
    }

    @Test("only the two WebSocket paths upgrade")
    func routes() {
        #expect(RelayServer.webSocketRoute("/v1/device") == .device)
        #expect(RelayServer.webSocketRoute("/v1/device?x=1") == .device)
        #expect(RelayServer.webSocketRoute("/v1/viewer/abc") == .viewer(session: "abc"))
        #expect(RelayServer.webSocketRoute("/v1/viewer/") == nil)
        #expect(RelayServer.webSocketRoute("/v1/viewer/a/b") == nil)
        #expect(RelayServer.webSocketRoute("/v1/devices") == nil)
        #expect(RelayServer.webSocketRoute(nil) == nil)
    }
}
