import Foundation
import SightlineCore

/// What one action did, before the dispatcher adds where the request came from.
struct ActionEffect: Sendable, Equatable {
    var outcome: ActionReport.Outcome
    var result: String
    var spoken: String
    var caseId: String?
    var itemId: String?
    var artefacts: [String] = []

    static func done(_ spoken: String, caseId: String? = nil, itemId: String? = nil, artefacts: [String] = []) -> ActionEffect {
        ActionEffect(outcome: .done, result: "done", spoken: spoken, caseId: caseId, itemId: itemId, artefacts: artefacts)
    }

    static func unavailable(_ reason: String, spoken: String) -> ActionEffect {
        ActionEffect(outcome: .unavailable, result: "unavailable: \(reason)", spoken: spoken)
    }

    static func failed(_ reason: String, spoken: String) -> ActionEffect {
        ActionEffect(outcome: .failed, result: "failed: \(reason)", spoken: spoken)
    }
}

/// The hardware side of the actions: camera, call, archive, microphone. The dispatcher decides
/// when an action runs; a performer only runs it. Some actions finish later than they start (a
/// voice note ends at silence): they hand their final effect to `later`.
protocol ActionPerformer: Sendable {
    func perform(_ action: VoiceAction, later: @escaping @Sendable (ActionEffect) async -> Void) async -> ActionEffect
}

/// Receives every report: the status counters, the case journal, the command journal and the
/// hooks. `command` is the recognised phrase for spoken actions; `deferred` marks reports that
/// come after the command was answered (a pending action that ran, a voice note that ended).
typealias ActionRecorder = @Sendable (_ report: ActionReport, _ command: RecognizedCommand?, _ deferred: Bool) async -> Void

/// Turns requests for actions, spoken or from the control API, into their effects: holds risky
/// spoken actions for the cancellation window (see `ActionRisk`), repeats the last result on
/// request, gives feedback for every action and hands each report to the recorder. One actor, so
/// two commands never race over the pending actions or the last result.
actor ActionDispatcher {
    private let performer: any ActionPerformer
    private let feedback: any ActionFeedback
    private let cancelWindow: Duration
    private let record: ActionRecorder
    /// How feedback names a command: the first configured phrase of each action.
    private let phrases: [VoiceAction: String]
    private var pending: [VoiceAction: Task<Void, Never>] = [:]
    private var lastSpoken: String?
    /// Feedback plays in order on a task of its own: a sentence on the speaker takes seconds, and
    /// the next command (perhaps the one that cancels) must not wait for it.
    private let announcements: AsyncStream<Announcement>.Continuation

    private struct Announcement: Sendable {
        let cue: ActionCue
        let action: VoiceAction
        let text: String
        /// Called once the feedback has played.
        let played: (@Sendable () -> Void)?
    }

    init(performer: any ActionPerformer, feedback: any ActionFeedback, cancelWindow: Duration, vocabulary: VoiceVocabulary = .builtIn,
         record: @escaping ActionRecorder) {
        var phrases: [VoiceAction: String] = [:]
        for phrase in vocabulary.phrases where phrases[phrase.action] == nil { phrases[phrase.action] = phrase.phrase }
        self.phrases = phrases
        self.performer = performer
        self.feedback = feedback
        self.cancelWindow = cancelWindow
        self.record = record
        let (stream, continuation) = AsyncStream.makeStream(of: Announcement.self)
        announcements = continuation
        Task {
            for await announcement in stream {
                await feedback.cue(announcement.cue, for: announcement.action)
                await feedback.speak(announcement.text)
                announcement.played?()
            }
        }
    }

    deinit {
        for task in pending.values { task.cancel() }
        announcements.finish()
    }

    /// Runs `action` (or schedules it, for a risky spoken one) and returns what happened.
    func dispatch(_ action: VoiceAction, source: ActionSource, command: RecognizedCommand? = nil) async -> ActionReport {
        if action == .repeatLast {
            let spoken = lastSpoken ?? "Nothing to repeat yet."
            return await finish(ActionReport(action: action, source: source, outcome: .done, result: "done", spoken: spoken),
                                command: command, remember: false)
        }
        if let target = ActionRisk.cancels(action), let task = pending.removeValue(forKey: target) {
            task.cancel()
            let report = ActionReport(action: action, source: source, outcome: .cancelled, result: "cancelled pending \(target.rawValue)",
                                      spoken: "Cancelled.")
            return await finish(report, command: command)
        }
        if source == .voice, cancelWindow > .zero, let canceller = ActionRisk.cancelledBy(action) {
            // Whole seconds, rounded up: "in 0 seconds" would tell the technician nothing.
            let seconds = max(1, Int((Double(cancelWindow.components.seconds) + Double(cancelWindow.components.attoseconds) / 1e18).rounded(.up)))
            let phrase = Self.describe(action)
            if pending[action] != nil {
                let report = ActionReport(action: action, source: source, outcome: .pending, result: "pending: already waiting",
                                          spoken: "\(phrase) is already on its way.")
                return await finish(report, command: command)
            }
            let report = ActionReport(action: action, source: source, outcome: .pending,
                                      result: "pending: runs in \(seconds) s unless cancelled by \(canceller.rawValue)",
                                      spoken: "\(phrase) in \(seconds) second\(seconds == 1 ? "" : "s"). \(cancelHint(canceller))")
            // The window counts from the end of the spoken warning: the technician can only
            // cancel what they have heard about.
            let window = cancelWindow, announcements = self.announcements
            pending[action] = Task { [weak self] in
                await withCheckedContinuation { (heard: CheckedContinuation<Void, Never>) in
                    let announcement = Announcement(cue: .pending, action: action, text: report.spoken, played: { heard.resume() })
                    // A dispatcher being torn down plays nothing more; the wait must still end.
                    if case .terminated = announcements.yield(announcement) { heard.resume() }
                }
                do { try await Task.sleep(for: window) } catch { return }
                await self?.runPending(action, source: source, command: command)
            }
            return await finish(report, command: command, announce: false)
        }
        return await run(action, source: source, command: command)
    }

    /// What to say to cancel: the canceller's phrase, or the control API when it has none.
    private func cancelHint(_ canceller: VoiceAction) -> String {
        guard let phrase = phrases[canceller] else { return "Cancel with sightctl action \(canceller.rawValue)." }
        return "Say \(phrase) to cancel."
    }

    /// Whether a risky action is waiting out its window (for tests and status).
    func isPending(_ action: VoiceAction) -> Bool { pending[action] != nil }

    private func runPending(_ action: VoiceAction, source: ActionSource, command: RecognizedCommand?) async {
        // Cancelled in the meantime: the cancelling command removed the entry.
        guard pending.removeValue(forKey: action) != nil, !Task.isCancelled else { return }
        _ = await run(action, source: source, command: command, deferred: true)
    }

    private func run(_ action: VoiceAction, source: ActionSource, command: RecognizedCommand?, deferred: Bool = false) async -> ActionReport {
        let effect = await performer.perform(action) { [weak self] later in
            await self?.finishLater(later, action: action, source: source, command: command)
        }
        return await finish(Self.report(effect, action: action, source: source), command: command, deferred: deferred)
    }

    private func finishLater(_ effect: ActionEffect, action: VoiceAction, source: ActionSource, command: RecognizedCommand?) async {
        _ = await finish(Self.report(effect, action: action, source: source), command: command, deferred: true)
    }

    private func finish(_ report: ActionReport, command: RecognizedCommand?, remember: Bool = true, deferred: Bool = false,
                        announce: Bool = true) async -> ActionReport {
        if remember { lastSpoken = report.spoken }
        if announce {
            let cue: ActionCue = switch report.outcome {
            case .done: .done
            case .pending: .pending
            case .cancelled: .cancelled
            case .failed, .unavailable: .failed
            }
            announcements.yield(Announcement(cue: cue, action: report.action, text: report.spoken, played: nil))
        }
        await record(report, command, deferred)
        return report
    }

    private static func report(_ effect: ActionEffect, action: VoiceAction, source: ActionSource) -> ActionReport {
        ActionReport(action: action, source: source, outcome: effect.outcome, result: effect.result, caseId: effect.caseId,
                     itemId: effect.itemId, artefacts: effect.artefacts, spoken: effect.spoken)
    }

    /// How feedback names a pending action.
    static func describe(_ action: VoiceAction) -> String {
        switch action {
        case .startRecording: "Recording starts"
        case .callExpert: "Calling the expert"
        default: action.rawValue.replacingOccurrences(of: "_", with: " ").capitalized
        }
    }
}
