import Foundation
import SightlineCore
import Synchronization
import Testing
@testable import SightlineDaemon

/// The dispatcher with a fake performer and feedback: what runs, when, and what is said.
@Suite("Action dispatcher")
struct ActionDispatcherTests {
    final class FakePerformer: ActionPerformer {
        let performed = Mutex<[VoiceAction]>([])
        let later = Mutex<(@Sendable (ActionEffect) async -> Void)?>(nil)

        func perform(_ action: VoiceAction, later: @escaping @Sendable (ActionEffect) async -> Void) async -> ActionEffect {
            performed.withLock { $0.append(action) }
            self.later.withLock { $0 = later }
            switch action {
            case .zoomIn: return .unavailable("no zoom", spoken: "This camera has no zoom.")
            case .takePhoto: return .done("Photo taken.", caseId: "case-1", itemId: "item-1", artefacts: ["/evidence/photo.jpg"])
            default: return .done("\(action.rawValue) done.")
            }
        }
    }

    final class FakeFeedback: ActionFeedback {
        let heard = Mutex<[String]>([])
        func cue(_ cue: ActionCue, for action: VoiceAction) async { heard.withLock { $0.append("cue:\(cue.rawValue)") } }
        func speak(_ text: String) async { heard.withLock { $0.append(text) } }
    }

    final class Records: Sendable {
        let reports = Mutex<[(ActionReport, Bool)]>([])
        var recorder: ActionRecorder { { report, _, deferred in self.reports.withLock { $0.append((report, deferred)) } } }
        var all: [(ActionReport, Bool)] { reports.withLock { $0 } }
    }

    static let command = RecognizedCommand(phrase: "call the expert", action: .callExpert, startSeconds: 1, endSeconds: 2,
                                           score: -3000, margin: 50, decidedAtSeconds: 2.3)

    /// Waits for a condition that another task makes true, generously for a loaded machine.
    func eventually(_ timeout: Duration = .seconds(20), _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return await condition()
    }

    @Test("a spoken risky action waits out the window, then runs and is recorded as deferred")
    func spokenRiskyActionWaits() async throws {
        let performer = FakePerformer(), feedback = FakeFeedback(), records = Records()
        let dispatcher = ActionDispatcher(performer: performer, feedback: feedback, cancelWindow: .milliseconds(200), record: records.recorder)
        let report = await dispatcher.dispatch(.callExpert, source: .voice, command: Self.command)
        #expect(report.outcome == .pending)
        #expect(report.result.contains("end_call"), "\(report.result)")
        #expect(report.spoken.contains("hang up the call"), "\(report.spoken)")
        #expect(performer.performed.withLock { $0 }.isEmpty)
        #expect(await eventually { performer.performed.withLock { $0 } == [.callExpert] })
        #expect(await eventually { records.all.count == 2 })
        #expect(records.all.map(\.0.outcome) == [.pending, .done])
        #expect(records.all.map(\.1) == [false, true])
        #expect(await !dispatcher.isPending(.callExpert))
        #expect(feedback.heard.withLock { $0 }.first == "cue:pending")
        // Feedback plays on its own task after the record: it follows, it does not precede.
        #expect(await eventually { feedback.heard.withLock { $0 }.contains("cue:done") })
    }

    @Test("the opposite command cancels a pending risky action, which never runs")
    func oppositeCancels() async throws {
        let performer = FakePerformer(), feedback = FakeFeedback(), records = Records()
        let dispatcher = ActionDispatcher(performer: performer, feedback: feedback, cancelWindow: .milliseconds(300), record: records.recorder)
        _ = await dispatcher.dispatch(.startRecording, source: .voice)
        let cancel = await dispatcher.dispatch(.stopRecording, source: .voice)
        #expect(cancel.outcome == .cancelled)
        #expect(cancel.result == "cancelled pending start_recording")
        try await Task.sleep(for: .milliseconds(600))
        #expect(performer.performed.withLock { $0 }.isEmpty)
        #expect(records.all.map(\.0.outcome) == [.pending, .cancelled])
        #expect(await eventually { feedback.heard.withLock { $0 }.contains("cue:cancelled") })
        // With nothing pending the opposite command is an ordinary action again.
        let stop = await dispatcher.dispatch(.stopRecording, source: .voice)
        #expect(stop.outcome == .done)
        #expect(performer.performed.withLock { $0 } == [.stopRecording])
    }

    @Test("a risky action from the control API runs at once; a repeated spoken one is not queued twice")
    func controlRunsAtOnce() async throws {
        let performer = FakePerformer(), records = Records()
        let dispatcher = ActionDispatcher(performer: performer, feedback: FakeFeedback(), cancelWindow: .seconds(30), record: records.recorder)
        let report = await dispatcher.dispatch(.callExpert, source: .control)
        #expect(report.outcome == .done && report.source == .control)
        #expect(performer.performed.withLock { $0 } == [.callExpert])
        _ = await dispatcher.dispatch(.startRecording, source: .voice)
        let again = await dispatcher.dispatch(.startRecording, source: .voice)
        #expect(again.outcome == .pending && again.result == "pending: already waiting")
        _ = await dispatcher.dispatch(.stopRecording, source: .voice)
        #expect(await !dispatcher.isPending(.startRecording))
    }

    @Test("repeat_last says the last result again; failures are heard with the failure cue")
    func repeatLast() async throws {
        let performer = FakePerformer(), feedback = FakeFeedback(), records = Records()
        let dispatcher = ActionDispatcher(performer: performer, feedback: feedback, cancelWindow: .zero, record: records.recorder)
        #expect(await dispatcher.dispatch(.repeatLast, source: .voice).spoken == "Nothing to repeat yet.")
        let zoom = await dispatcher.dispatch(.zoomIn, source: .voice)
        #expect(zoom.outcome == .unavailable && zoom.result == "unavailable: no zoom")
        let photo = await dispatcher.dispatch(.takePhoto, source: .voice)
        #expect(photo.caseId == "case-1" && photo.itemId == "item-1" && photo.artefacts == ["/evidence/photo.jpg"])
        #expect(await dispatcher.dispatch(.repeatLast, source: .voice).spoken == "Photo taken.")
        // Repeating does not replace what is repeated.
        #expect(await dispatcher.dispatch(.repeatLast, source: .voice).spoken == "Photo taken.")
        #expect(await eventually { feedback.heard.withLock { $0 }.count == 10 })
        let heard = feedback.heard.withLock { $0 }
        #expect(heard.contains("cue:failed") && heard.contains("This camera has no zoom."))
        #expect(!performer.performed.withLock { $0 }.contains(.repeatLast))
    }

    @Test("an action that ends later (a voice note) is recorded again when it ends")
    func laterEffect() async throws {
        let performer = FakePerformer(), records = Records()
        let dispatcher = ActionDispatcher(performer: performer, feedback: FakeFeedback(), cancelWindow: .zero, record: records.recorder)
        _ = await dispatcher.dispatch(.addVoiceNote, source: .voice)
        let later = try #require(performer.later.withLock { $0 })
        await later(.done("Note saved.", caseId: "case-1", itemId: "note-1", artefacts: ["/evidence/note.wav"]))
        #expect(records.all.count == 2)
        #expect(records.all.last?.1 == true)
        #expect(records.all.last?.0.itemId == "note-1")
        #expect(await dispatcher.dispatch(.repeatLast, source: .control).spoken == "Note saved.")
    }

    @Test("zoom steps a tenth of the range on the control's grid and stops at its ends")
    func zoomSteps() {
        #expect(ZoomStep.next(from: 100, minimum: 100, maximum: 500, step: 1, closer: true) == 140)
        #expect(ZoomStep.next(from: 490, minimum: 100, maximum: 500, step: 1, closer: true) == 500)
        #expect(ZoomStep.next(from: 110, minimum: 100, maximum: 500, step: 1, closer: false) == 100)
        #expect(ZoomStep.next(from: 0, minimum: 0, maximum: 10, step: 3, closer: true) == 3)
        #expect(ZoomStep.next(from: 9, minimum: 0, maximum: 10, step: 3, closer: true) == 9)
    }

    @Test("risky actions and their cancelling commands")
    func risk() {
        #expect(ActionRisk.cancelledBy(.callExpert) == .endCall)
        #expect(ActionRisk.cancelledBy(.startRecording) == .stopRecording)
        #expect(ActionRisk.cancels(.endCall) == .callExpert)
        #expect(VoiceAction.allCases.filter { ActionRisk.cancelledBy($0) != nil } == [.startRecording, .callExpert])
    }

    /// Feedback that takes its time, like a sentence on a real speaker.
    final class SlowFeedback: ActionFeedback {
        let heard = Mutex<[String]>([])
        func cue(_ cue: ActionCue, for action: VoiceAction) async {}
        func speak(_ text: String) async {
            try? await Task.sleep(for: .milliseconds(400))
            heard.withLock { $0.append(text) }
        }
    }

    @Test("slow feedback never holds the next command, and a risky action's window starts once its warning was heard")
    func slowFeedback() async throws {
        let performer = FakePerformer(), feedback = SlowFeedback(), records = Records()
        let dispatcher = ActionDispatcher(performer: performer, feedback: feedback, cancelWindow: .milliseconds(100), record: records.recorder)
        let started = ContinuousClock.now
        _ = await dispatcher.dispatch(.markStep, source: .voice)
        _ = await dispatcher.dispatch(.callExpert, source: .voice)
        #expect(ContinuousClock.now - started < .milliseconds(300), "the dispatcher waited for the speaker")
        // The warning plays after the mark_step sentence (0.8 s of speech), then the 0.1 s window.
        try await Task.sleep(for: .milliseconds(500))
        #expect(performer.performed.withLock { $0 } == [.markStep], "the call ran before its warning was heard")
        #expect(await eventually { performer.performed.withLock { $0 } == [.markStep, .callExpert] })
        #expect(await eventually { feedback.heard.withLock { $0 }.count == 3 })
        #expect(feedback.heard.withLock { $0 }[1].hasPrefix("Calling the expert in 1 second. Say hang up the call to cancel."))
    }
}
