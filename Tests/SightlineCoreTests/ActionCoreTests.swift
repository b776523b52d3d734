import Foundation
import SightlineCore
import Testing

@Suite("Actions and hooks (pure)")
struct ActionCoreTests {
    static func tone(_ milliseconds: Int, amplitude: Double) -> [Int16] {
        (0..<(16 * milliseconds)).map { Int16(amplitude * 32767 * sin(2 * Double.pi * 440 * Double($0) / 16000)) }
    }

    @Test("a note ends after the configured silence that follows speech, not before speech starts")
    func noteEndsAtSilence() {
        var end = NoteEnd(silenceMilliseconds: 1500, maximumMilliseconds: 60_000)
        var decisions: [NoteEnd.Decision] = []
        // 1 s of quiet before speaking does not end the note.
        for _ in 0..<50 { decisions.append(end.feed(Self.tone(20, amplitude: 0.001))) }
        for _ in 0..<100 { decisions.append(end.feed(Self.tone(20, amplitude: 0.3))) }
        #expect(Set(decisions) == [.recording])
        var quiet = 0
        while end.feed(Self.tone(20, amplitude: 0.001)) == .recording { quiet += 20 }
        #expect(quiet + 20 == 1500)
        #expect(end.heardSpeech)
    }

    @Test("a note stops at its maximum length, and a note nobody speaks into ends as nothing said")
    func noteLimits() {
        var long = NoteEnd(silenceMilliseconds: 1500, maximumMilliseconds: 1000)
        var decision = NoteEnd.Decision.recording
        var chunks = 0
        while decision == .recording { decision = long.feed(Self.tone(20, amplitude: 0.3)); chunks += 1 }
        #expect(decision == .maximumLength && chunks == 50)
        var silent = NoteEnd(silenceMilliseconds: 1500, maximumMilliseconds: 60_000, waitForSpeechMilliseconds: 2000)
        decision = .recording
        chunks = 0
        while decision == .recording { decision = silent.feed(Self.tone(20, amplitude: 0)); chunks += 1 }
        #expect(decision == .nothingSaid && chunks == 100)
    }

    @Test("hook entries: programs, webhooks with queries, and what is refused")
    func hookSpecs() throws {
        #expect(try HookSpec(entry: "take_photo=/usr/local/bin/upload") == HookSpec(action: .takePhoto, target: .command(path: "/usr/local/bin/upload")))
        #expect(try HookSpec(entry: " mark_step = https://h.example/x?a=1&b=2 ").target == .webhook(url: "https://h.example/x?a=1&b=2"))
        #expect(throws: HookSpecError.unknownAction("photo")) { try HookSpec(entry: "photo=/bin/true") }
        #expect(throws: HookSpecError.badTarget("ftp://h/x")) { try HookSpec(entry: "take_photo=ftp://h/x") }
        #expect(throws: HookSpecError.badTarget("bin/true")) { try HookSpec(entry: "take_photo=bin/true") }
        #expect(throws: HookSpecError.notAnEntry("take_photo")) { try HookSpec(entry: "take_photo") }
    }

    @Test("the payload: snake_case JSON and the documented environment")
    func payload() throws {
        let report = ActionReport(action: .takePhoto, source: .control, outcome: .done, result: "done", caseId: "c1", itemId: "i1",
                                  artefacts: ["/e/p.jpg"], spoken: "Photo taken.")
        let payload = HookPayload(report: report, phrase: nil, device: .init(fingerprint: "SHA256:x", hostname: "h"),
                                  time: Date(timeIntervalSince1970: 1_790_000_000.25))
        let object = try #require(try JSONSerialization.jsonObject(with: payload.json) as? [String: Any])
        #expect(Set(object.keys) == ["action", "source", "outcome", "result", "case_id", "item_id", "artefacts", "device", "time"])
        #expect(object["time"] as? String == "2026-09-21T14:13:20.250Z")
        #expect(payload.environment == [
            "SIGHTLINE_ACTION": "take_photo", "SIGHTLINE_SOURCE": "control", "SIGHTLINE_OUTCOME": "done", "SIGHTLINE_DEVICE": "SHA256:x",
            "SIGHTLINE_TIME": "2026-09-21T14:13:20.250Z", "SIGHTLINE_CASE": "c1", "SIGHTLINE_ITEM": "i1", "SIGHTLINE_ARTEFACT": "/e/p.jpg",
        ])
    }
}
