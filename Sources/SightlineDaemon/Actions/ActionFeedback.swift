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
/// short spoken sentence. `SpeakerFeedback` plays them on the device's speaker;
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

/// Feedback on the device's speaker (`audio.playback_device`): the core's synthesised earcons
/// and espeak-ng speech, through `AudioService`; everything is logged as well, and a missing
/// speaker never holds an action up.
struct SpeakerFeedback: ActionFeedback {
    let audio: AudioService
    let log: LoggingFeedback

    func cue(_ cue: ActionCue, for action: VoiceAction) async {
        await log.cue(cue, for: action)
        await audio.play(Self.earcon(for: cue, action: action))
    }

    func speak(_ text: String) async {
        await log.speak(text)
        await audio.speak(text)
    }

    /// Recording has sounds of its own, so a technician hears it start and stop without words.
    static func earcon(for cue: ActionCue, action: VoiceAction) -> Earcon {
        switch (cue, action) {
        case (.done, .startRecording): .recordingStarted
        case (.done, .stopRecording): .recordingStopped
        case (.done, _): .accepted
        case (.pending, _): .pending
        case (.cancelled, _): .cancelled
        case (.failed, _): .rejected
        }
    }
}
