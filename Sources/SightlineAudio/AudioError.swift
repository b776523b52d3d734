import CALSA
import CESpeakNG
import COpus
import CPulse
import SightlineCore

/// Failures of the sound systems and the codec, each with the C library's own message and what
/// the operator can do.
public enum AudioError: Error, Equatable, CustomStringConvertible {
    /// No PulseAudio server answered at `server` (nil: the default places).
    case pulseUnavailable(server: String?, reason: String)
    case pulse(operation: String, code: Int32)
    case alsa(operation: String, device: String, code: Int32)
    case opus(operation: String, code: Int32)
    case unsupportedFormat(AudioFormatDescription)
    case wrongFrameSize(expected: Int, got: Int)
    /// espeak-ng refused (its `espeak_ERROR` or `espeak_Initialize`'s result).
    case speech(operation: String, code: Int32)
    /// A playback did not get its audio to the device in time.
    case playbackStalled(device: String, lastError: String?)
    /// The sound server has no source or sink for a card that discovery chose.
    case noServerDevice(SoundServerMatch.NoMatch)

    public struct AudioFormatDescription: Equatable, Sendable {
        public let text: String
    }

    public var description: String {
        switch self {
        case .pulseUnavailable(let server, let reason):
            "no PulseAudio server at \(server ?? "the default address"): \(reason); "
                + "start the user's sound server, set PULSE_SERVER, or set audio.backend to alsa"
        case .pulse(let operation, let code):
            "PulseAudio \(operation) failed: \(Self.pulseMessage(code)); check `pactl info` and the server's log"
        case .alsa(let operation, let device, let code):
            "ALSA \(operation) on \(device) failed: \(Self.alsaMessage(code)); check the device with "
                + "`arecord -L`/`aplay -L` and that the service may open it (group audio)"
        case .opus(let operation, let code):
            "Opus \(operation) failed: \(Self.opusMessage(code)); this is a bug in the caller's parameters"
        case .unsupportedFormat(let format):
            "audio format \(format.text) is not supported; use 8, 12, 16, 24 or 48 kHz with 1 or 2 channels"
        case .wrongFrameSize(let expected, let got):
            "audio frame of \(got) samples where \(expected) (20 ms) were expected"
        case .speech(let operation, let code):
            "espeak-ng \(operation) failed (code \(code)); check that espeak-ng-data is installed "
                + "(`espeak-ng --voices` lists the voices) and the voice name is one of them"
        case .playbackStalled(let device, let lastError):
            "playback on \(device) did not finish: \(lastError ?? "the sound system took no audio"); "
                + "check the speaker with `sightctl audio` and `pactl list short sinks` or `aplay -L`"
        case .noServerDevice(let missing):
            missing.description
        }
    }

    static func pulseMessage(_ code: Int32) -> String {
        pa_strerror(code).map { String(cString: $0) } ?? "error \(code)"
    }

    static func alsaMessage(_ code: Int32) -> String {
        snd_strerror(code).map { String(cString: $0) } ?? "error \(code)"
    }

    static func opusMessage(_ code: Int32) -> String {
        opus_strerror(code).map { String(cString: $0) } ?? "error \(code)"
    }
}
