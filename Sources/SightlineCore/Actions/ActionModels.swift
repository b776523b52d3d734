import Foundation

/// Where a request for an action came from. Spoken commands may be false activations, so only
/// they get the cancellation window; a button press or a control-API call is deliberate.
public enum ActionSource: String, Sendable, Codable, Equatable {
    case voice
    case control
    /// The daemon itself: a recording that reached `actions.recording_max_seconds` or whose
    /// encoder failed is stopped (and filed) as if the technician had said so.
    case automatic
}

/// What happened to one action, as the control API answers `POST /v1/actions/{action}`, hooks
/// receive it and the journals record it.
public struct ActionReport: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable, Equatable {
        /// The action ran.
        case done
        /// A risky action waits out its cancellation window; it runs unless cancelled.
        case pending
        /// A pending action was cancelled by its opposite command.
        case cancelled
        /// The action cannot run here (no camera zoom, no open call, …); `result` says why.
        case unavailable
        /// The action was tried and failed; `result` says why and what to do.
        case failed
    }

    public var action: VoiceAction
    public var source: ActionSource
    public var outcome: Outcome
    /// One line for journals and people: `done`, or why not.
    public var result: String
    /// The case the action's evidence went into, when it made any.
    public var caseId: String?
    public var itemId: String?
    /// Files the action wrote (a photo's JPEG, a voice note's WAV).
    public var artefacts: [String]
    /// What the technician hears.
    public var spoken: String

    public init(action: VoiceAction, source: ActionSource, outcome: Outcome, result: String, caseId: String? = nil,
                itemId: String? = nil, artefacts: [String] = [], spoken: String) {
        self.action = action
        self.source = source
        self.outcome = outcome
        self.result = result
        self.caseId = caseId
        self.itemId = itemId
        self.artefacts = artefacts
        self.spoken = spoken
    }
}

/// The voice and action part of `GET /v1/status`.
public struct VoiceStatus: Sendable, Codable, Equatable {
    public var enabled: Bool
    /// The recognizer has its model loaded and is reading the microphone's tap.
    public var listening: Bool
    public var lastCommand: LastCommand?
    public var actionsRun: Int
    public var hooksRun: Int
    public var hookFailures: Int
    /// Hook runs dropped because the hook queue was full.
    public var hooksDropped: Int
    public var lastHookFailure: String?

    public struct LastCommand: Sendable, Codable, Equatable {
        public var time: String
        public var action: VoiceAction
        public var source: ActionSource
        /// The recognised phrase; nil for actions from the control API.
        public var phrase: String?
        public var result: String

        public init(time: String, action: VoiceAction, source: ActionSource, phrase: String?, result: String) {
            self.time = time
            self.action = action
            self.source = source
            self.phrase = phrase
            self.result = result
        }
    }

    public init(enabled: Bool, listening: Bool = false, lastCommand: LastCommand? = nil, actionsRun: Int = 0, hooksRun: Int = 0,
                hookFailures: Int = 0, hooksDropped: Int = 0, lastHookFailure: String? = nil) {
        self.enabled = enabled
        self.listening = listening
        self.lastCommand = lastCommand
        self.actionsRun = actionsRun
        self.hooksRun = hooksRun
        self.hookFailures = hookFailures
        self.hooksDropped = hooksDropped
        self.lastHookFailure = lastHookFailure
    }
}

extension ControlAPI {
    public static let actionsPath = "/v1/actions"
    public static func actionPath(_ action: String) -> String { "\(actionsPath)/\(action)" }
}

/// Which actions are risky and what undoes them while they wait. Starting a recording or a call
/// on a false activation exposes people who did not ask for it, so these wait out a short window
/// in which their opposite command ("finish recording", "hang up the call") cancels them. The
/// opposite command is already in the vocabulary, so cancelling needs no extra phrase that could
/// itself be misheard, and a real command costs only the window's delay instead of a second
/// spoken confirmation.
public enum ActionRisk {
    /// The command that cancels `action` while it is pending, or nil when `action` runs at once.
    public static func cancelledBy(_ action: VoiceAction) -> VoiceAction? {
        switch action {
        case .startRecording: .stopRecording
        case .callExpert: .endCall
        default: nil
        }
    }

    /// The pending action that `action` cancels, if any.
    public static func cancels(_ action: VoiceAction) -> VoiceAction? {
        VoiceAction.allCases.first { cancelledBy($0) == action }
    }
}
