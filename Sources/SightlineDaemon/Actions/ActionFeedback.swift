import Logging
import SightlineCore

/// What an action's outcome sounds like, before any speaker decides which sound that is (the
/// speaker's earcons may tell a started recording from any other success).
enum ActionCue: String, Sendable {
    /// The action ran.
    case done
    /// A risky action waits out its cancellation window, or a voice note is being recorded.
    case pending
    case cancelled
    /// The action could not run, or failed.
    case failed
}

/// How actions talk back to a technician who is not looking at a screen: a short sound and a
/// short spoken sentence. Device playback implements it when the speaker exists; until then
/// `LoggingFeedback` records what would be heard, so the dispatcher and its tests do not depend
/// on a speaker.
protocol ActionFeedback: Sendable {
    func cue(_ cue: ActionCue, for action: VoiceAction) async
    func speak(_ text: String) async
}

/// Feedback into the log only: what the technician would hear, for operators and tests.
struct LoggingFeedback: ActionFeedback {
    let logger: Logger

    func cue(_ cue: ActionCue, for action: VoiceAction) async {
        logger.info("feedback: cue", metadata: ["cue": "\(cue.rawValue)", "action": "\(action.rawValue)"])
    }

    func speak(_ text: String) async {
        logger.info("feedback: speech", metadata: ["text": "\(text)"])
    }
}
