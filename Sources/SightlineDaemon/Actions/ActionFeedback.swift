import Logging

/// Short sounds that tell a technician who is not looking at a screen what happened.
enum Earcon: String, Sendable {
    /// The action ran.
    case done
    /// A risky action waits out its cancellation window.
    case pending
    case cancelled
    /// The action could not run, or failed.
    case failed
}

/// How actions talk back: an earcon and a short spoken sentence. The device's speaker plays them
/// when audio playback exists; until then `LoggingFeedback` records what would be heard, so the
/// dispatcher and its tests do not depend on a speaker.
protocol ActionFeedback: Sendable {
    func earcon(_ earcon: Earcon) async
    func speak(_ text: String) async
}

/// Feedback into the log only: what the technician would hear, for operators and tests.
struct LoggingFeedback: ActionFeedback {
    let logger: Logger

    func earcon(_ earcon: Earcon) async {
        logger.info("feedback: earcon", metadata: ["earcon": "\(earcon.rawValue)"])
    }

    func speak(_ text: String) async {
        logger.info("feedback: speech", metadata: ["text": "\(text)"])
    }
}
