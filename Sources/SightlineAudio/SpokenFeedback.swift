import CESpeakNG
import Foundation
import SightlineCore
import Synchronization

/// Speech synthesis for spoken confirmations through the espeak-ng library.
///
/// espeak-ng keeps its voice and output callback in process-wide state and is not reentrant, so
/// there is one voice per process (`shared`) and every synthesis holds its lock. Synthesis runs on
/// a thread of its own (`espeak_Synth` in synchronous mode blocks for tens of milliseconds per
/// word), never on the caller's thread or the cooperative pool.
public final class SpeechVoice: Sendable {
    public static let shared = SpeechVoice()

    /// espeak-ng's sample rate once initialised (22050 Hz for its voices); nil before.
    private let state = Mutex<Int?>(nil)

    private init() {}

    /// Speaks `text` into an `AudioClip` at espeak-ng's own rate; convert it to the sink's format
    /// with `AudioClip.converted(to:)`.
    /// - Parameter wordsPerMinute: espeak-ng's rate (80…450); a little slower than its default
    ///   carries better over machine noise.
    public func synthesize(_ text: String, voice: String = "en", wordsPerMinute: Int = 160) async throws(AudioError) -> AudioClip {
        let result = await withCheckedContinuation { (done: CheckedContinuation<Result<AudioClip, AudioError>, Never>) in
            let thread = Thread { [self] in
                done.resume(returning: Result { () throws(AudioError) in try synthesizeNow(text, voice: voice, wordsPerMinute: wordsPerMinute) })
            }
            thread.name = "espeak-ng"
            thread.start()
        }
        return try result.get()
    }

    /// Collects what espeak-ng's callback delivers for one `espeak_Synth` call.
    private final class Collector {
        var samples: [Int16] = []
    }

    private func synthesizeNow(_ text: String, voice: String, wordsPerMinute: Int) throws(AudioError) -> AudioClip {
        try state.withLock { rate throws(AudioError) -> AudioClip in
            let sampleRate: Int
            if let rate {
                sampleRate = rate
            } else {
                // Synchronous output: espeak_Synth returns only when the callback has had every sample.
                let initialized = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 200, nil, Int32(espeakINITIALIZE_DONT_EXIT))
                guard initialized > 0 else { throw .speech(operation: "espeak_Initialize", code: initialized) }
                espeak_SetSynthCallback { wav, count, events in
                    guard let events, let user = events.pointee.user_data else { return 0 }
                    let collector = Unmanaged<Collector>.fromOpaque(user).takeUnretainedValue()
                    if let wav, count > 0 {
                        collector.samples.append(contentsOf: UnsafeBufferPointer(start: wav, count: Int(count)))
                    }
                    return 0  // go on
                }
                sampleRate = Int(initialized)
                rate = sampleRate
            }
            let chosen = espeak_SetVoiceByName(voice)
            guard chosen == EE_OK else { throw .speech(operation: "espeak_SetVoiceByName \(voice)", code: Int32(chosen.rawValue)) }
            let speed = espeak_SetParameter(espeakRATE, Int32(min(450, max(80, wordsPerMinute))), 0)
            guard speed == EE_OK else { throw .speech(operation: "espeak_SetParameter rate", code: Int32(speed.rawValue)) }
            let collector = Collector()
            let user = Unmanaged.passRetained(collector)
            defer { user.release() }
            let bytes = Array(text.utf8CString)
            let spoken = bytes.withUnsafeBufferPointer { buffer in
                espeak_Synth(buffer.baseAddress, buffer.count, 0, POS_CHARACTER, 0, UInt32(espeakCHARS_UTF8), nil, user.toOpaque())
            }
            guard spoken == EE_OK else { throw .speech(operation: "espeak_Synth", code: Int32(spoken.rawValue)) }
            return AudioClip(format: AudioFormat(sampleRate: sampleRate, channels: 1), samples: collector.samples)
        }
    }
}

/// Hands-free feedback on the device's speaker: earcons and short spoken confirmations.
///
/// Each clip gets a playback stream of its own (opened, drained, closed), so an idle speaker holds
/// no device and counts no underruns; clips never overlap, they play one after another in the
/// order asked for.
public actor FeedbackSpeaker {
    public let backend: any AudioBackend
    /// The backend's playback device; nil for the sound system's default.
    public let device: String?
    public let format: AudioFormat
    /// Silence before each clip: a speaker (or sound server) waking up loses its first moments.
    public let leadIn: Duration
    private let voice: SpeechVoice
    private var playing = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(backend: any AudioBackend, device: String?, format: AudioFormat = .stream, leadIn: Duration = .milliseconds(60),
                voice: SpeechVoice = .shared) {
        self.backend = backend
        self.leadIn = leadIn
        self.device = device
        self.format = format
        self.voice = voice
    }

    /// Plays one of the earcons; returns the playback's counters.
    @discardableResult
    public func earcon(_ earcon: Earcon) async throws(AudioError) -> AudioStreamStatistics {
        try await play(earcon.clip(sampleRate: format.sampleRate))
    }

    /// Speaks `text` (synthesised off this actor, then played).
    @discardableResult
    public func speak(_ text: String) async throws(AudioError) -> AudioStreamStatistics {
        let clip = try await voice.synthesize(text)
        return try await play(clip)
    }

    /// Plays `clip` converted to the speaker's format, after any clip asked for earlier.
    @discardableResult
    public func play(_ clip: AudioClip) async throws(AudioError) -> AudioStreamStatistics {
        let converted: AudioClip
        do {
            converted = try clip.converted(to: format)
        } catch {
            throw .unsupportedFormat(.init(text: "\(clip.format) (\(error))"))
        }
        await takeTurn()
        defer { passTurn() }
        let playback: any AudioPlayback
        do {
            playback = try backend.openPlayback(device: device, format: format)
        } catch let error as AudioError {
            throw error
        } catch {
            throw .playbackStalled(device: device ?? "the default device", lastError: "\(error)")
        }
        // Enough for the clip, a slow stream start and a reconnect; never forever. A speaker
        // that takes no audio at all (a missing device) would otherwise block the clip's frames
        // for good, and every clip after it: stopping the stream at the limit releases them.
        let limit = leadIn + converted.duration + .seconds(3)
        let started = ContinuousClock.now
        let watchdog = Task {
            try await Task.sleep(for: limit)
            await playback.stop()
        }
        defer { watchdog.cancel() }
        for frame in converted.frames(lead: leadIn) {
            guard await playback.play(frame) else { break }
        }
        let drained = await playback.drain(timeout: max(.zero, limit - (ContinuousClock.now - started)))
        let statistics = playback.statistics
        await playback.stop()
        guard drained else { throw .playbackStalled(device: device ?? "the default device", lastError: statistics.lastError) }
        return statistics
    }

    private func takeTurn() async {
        if playing {
            await withCheckedContinuation { waiting.append($0) }
        }
        playing = true
    }

    private func passTurn() {
        if waiting.isEmpty {
            playing = false
        } else {
            // `playing` stays true: the turn goes straight to the next waiter.
            waiting.removeFirst().resume()
        }
    }
}
