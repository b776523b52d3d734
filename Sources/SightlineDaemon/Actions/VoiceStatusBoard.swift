import Foundation
import Metrics
import SightlineCore
import Synchronization

/// The counters behind the `voice` part of `GET /v1/status`, written from the recognizer, the
/// dispatcher and the hook runner without waiting on any of them; the same counts go to the
/// Prometheus metrics, so a fleet's hook failures can be alerted on.
final class VoiceStatusBoard: Sendable {
    private let current: Mutex<VoiceStatus>
    private let hookRuns = Counter(label: "sightline_hook_runs_total")
    private let hookFailures = Counter(label: "sightline_hook_failures_total")
    private let hooksDropped = Counter(label: "sightline_hooks_dropped_total")

    init(enabled: Bool) {
        current = Mutex(VoiceStatus(enabled: enabled))
    }

    var status: VoiceStatus { current.withLock { $0 } }

    func setListening(_ listening: Bool) {
        current.withLock { $0.listening = listening }
    }

    func recordAction(_ report: ActionReport, phrase: String?) {
        let time = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        Counter(label: "sightline_actions_total", dimensions: [("action", report.action.rawValue), ("outcome", report.outcome.rawValue)])
            .increment()
        current.withLock {
            $0.actionsRun += 1
            $0.lastCommand = .init(time: time, action: report.action, source: report.source, phrase: phrase, result: report.result)
        }
    }

    func recordHook(failure: String?) {
        hookRuns.increment()
        if failure != nil { hookFailures.increment() }
        current.withLock {
            $0.hooksRun += 1
            if let failure {
                $0.hookFailures += 1
                $0.lastHookFailure = failure
            }
        }
    }

    func recordHookDropped(_ reason: String) {
        hooksDropped.increment()
        current.withLock {
            $0.hooksDropped += 1
            $0.lastHookFailure = reason
        }
    }
}
