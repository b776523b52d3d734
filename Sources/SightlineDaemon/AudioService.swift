import Foundation
import Logging
import ServiceLifecycle
import SightlineAudio
import SightlineCore
import Synchronization

/// Runs the microphone: chooses the backend (`audio.backend`), keeps a capture open, reopens it
/// when it cannot be opened (no device yet, no server), and serves its status to
/// `GET /v1/audio`. Frames go to the voice tap (16 kHz mono, `VoiceTap`) when one is attached;
/// the rest are drained here so the lossless queue never backs up into xruns. Earcons and spoken
/// confirmations go to the speaker (`audio.playback_device`) through `feedback`.
final class AudioService: Service, Sendable {
    static let name = "audio"
    private let configuration: DaemonConfiguration.AudioConfiguration
    private let state: DaemonState
    private let logger: Logger
    private let current = Mutex<Snapshot>(Snapshot())
    private let retryInterval: Duration
    private let voice: AsyncStream<[Int16]>.Continuation?
    private let pulseServer: String?

    private struct Snapshot {
        var backend = "none"
        var reason = "starting"
        var capture: (any AudioCapture)?
        var problem: String?
        var muted = false
        /// Set once the backend is chosen.
        var feedback: FeedbackSpeaker?
        var chosen: (any AudioBackend)?
    }
    /// Who else gets the 48 kHz frames (the call's voice channel), newest kept when one lags.
    private let listeners = Mutex<[UUID: AsyncStream<AudioFrame>.Continuation]>([:])

    /// - Parameters:
    ///   - voice: where 16 kHz mono chunks for voice commands go (`VoiceTap.makeStream`).
    ///   - pulseServer: a libpulse server string; nil for libpulse's defaults (`PULSE_SERVER`, the runtime directory).
    init(configuration: DaemonConfiguration.AudioConfiguration, state: DaemonState, logger: Logger, retryInterval: Duration = .seconds(5),
         voice: AsyncStream<[Int16]>.Continuation? = nil, pulseServer: String? = nil) {
        self.pulseServer = pulseServer
        self.configuration = configuration
        self.state = state
        self.logger = logger
        self.retryInterval = retryInterval
        self.voice = voice
    }

    /// Privacy: mutes at the source, so no sample reaches the voice tap or a call; kept across
    /// reopened captures.
    func setMuted(_ muted: Bool) {
        let capture = current.withLock { snapshot in
            snapshot.muted = muted
            return snapshot.capture
        }
        capture?.setMuted(muted)
        // `sightctl status` shows privacy mode on the audio service's line.
        guard capture != nil else { return }
        let state = state, detail = runningDetail(muted: muted)
        Task { await state.set(Self.name, .running, detail) }
    }

    private func runningDetail(muted: Bool) -> String {
        let backend = current.withLock { $0.chosen?.kind.rawValue ?? "no" }
        return "\(backend) capture from \(configuration.captureDevice ?? "the default device")\(muted ? ", muted (privacy)" : "")"
    }

    var isMuted: Bool { current.withLock { $0.muted } }
    /// A microphone is open (it may be muted).
    var isCapturing: Bool { current.withLock { $0.capture != nil } }

    /// The captured 48 kHz frames from now on, until `unsubscribe`. Nothing arrives while muted:
    /// privacy mode stops samples at the source.
    func subscribe() -> (id: UUID, frames: AsyncStream<AudioFrame>) {
        let id = UUID()
        // 250 ms: a consumer that falls further behind loses the oldest, never stalls capture.
        let (frames, continuation) = AsyncStream.makeStream(of: AudioFrame.self, bufferingPolicy: .bufferingNewest(12))
        listeners.withLock { $0[id] = continuation }
        return (id, frames)
    }

    func unsubscribe(_ id: UUID) {
        listeners.withLock { $0.removeValue(forKey: id) }?.finish()
    }

    /// A playback stream on the speaker (`audio.playback_device`) in the stream's format that
    /// pulls the expert's voice from `source`; fails until the sound system is chosen.
    func openPlayback(source: @escaping AudioFrameSource) throws -> any AudioPlayback {
        guard let backend = current.withLock({ $0.chosen }) else {
            throw AudioError.playbackStalled(device: configuration.playbackDevice ?? "the default device", lastError: "the sound system is not chosen yet")
        }
        return try backend.openPlayback(device: configuration.playbackDevice, format: .stream, source: source)
    }

    /// The speaker for earcons and spoken confirmations; nil until the sound system is chosen
    /// (within about a second of start).
    var feedback: FeedbackSpeaker? { current.withLock { $0.feedback } }

    /// Plays an earcon on the speaker. Feedback is a courtesy: a missing speaker is logged, never
    /// fatal to the caller. Returns whether it played.
    @discardableResult
    func play(_ earcon: Earcon) async -> Bool {
        await playFeedback("earcon \(earcon.rawValue)") { try await $0.earcon(earcon) }
    }

    /// Speaks a short confirmation on the speaker (espeak-ng); returns whether it played.
    @discardableResult
    func speak(_ text: String) async -> Bool {
        await playFeedback("spoken \"\(text)\"") { try await $0.speak(text) }
    }

    private func playFeedback(_ what: String, _ body: (FeedbackSpeaker) async throws -> AudioStreamStatistics) async -> Bool {
        guard let speaker = feedback else {
            logger.notice("feedback not played: the sound system is not chosen yet", metadata: ["feedback": "\(what)"])
            return false
        }
        do {
            _ = try await body(speaker)
            return true
        } catch {
            logger.warning("feedback not played", metadata: ["feedback": "\(what)", "problem": "\(error)"])
            return false
        }
    }

    func status() -> AudioStatus {
        current.withLock { snapshot in
            AudioStatus(backend: snapshot.backend, configured: configuration.backend.rawValue, reason: snapshot.reason,
                        captureDevice: configuration.captureDevice ?? "default", sampleRate: AudioFormat.stream.sampleRate,
                        channels: AudioFormat.stream.channels, capture: snapshot.capture?.statistics, problem: snapshot.problem)
        }
    }

    func run() async throws {
        let logger = self.logger
        ALSADiagnostics.setHandler { message in logger.notice("ALSA: \(message)") }
        await state.set(Self.name, .starting, "choosing a sound system (audio.backend: \(configuration.backend.rawValue))")
        // `auto` probes the Pulse server for up to a second: off the cooperative pool.
        let kind = configuration.backend, server = pulseServer
        let choice = await withCheckedContinuation { (done: CheckedContinuation<AudioBackendSelection.Choice, Never>) in
            Thread { done.resume(returning: AudioBackendSelection.choose(kind, pulseServer: server)) }.start()
        }
        let speaker = FeedbackSpeaker(backend: choice.backend, device: configuration.playbackDevice)
        current.withLock {
            $0.backend = choice.backend.kind.rawValue
            $0.reason = choice.reason
            $0.feedback = speaker
            $0.chosen = choice.backend
        }
        logger.info("audio backend", metadata: ["backend": "\(choice.backend.kind.rawValue)", "reason": "\(choice.reason)"])

        var reported: String?
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            let capture: any AudioCapture
            do {
                capture = try choice.backend.openCapture(device: configuration.captureDevice, format: .stream)
            } catch {
                let problem = "\(error)"
                current.withLock { $0.problem = problem }
                if reported != problem {
                    // Logged once per distinct problem, not every retry.
                    logger.warning("microphone unavailable", metadata: ["problem": "\(problem)"])
                    reported = problem
                }
                await state.set(Self.name, .degraded, problem)
                // Ends at once on SIGTERM, so the wait never eats the shutdown budget.
                let interval = retryInterval
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                continue
            }
            reported = nil
            let muted = current.withLock {
                $0.capture = capture
                $0.problem = nil
                return $0.muted
            }
            capture.setMuted(muted)
            await state.set(Self.name, .running, runningDetail(muted: muted))
            await consume(capture)
            await capture.stop()
        }
    }

    /// Feeds the voice tap until the capture ends. Stopping the capture (on SIGTERM or when the
    /// task is cancelled) ends its frame queue, which ends the loop.
    private func consume(_ capture: any AudioCapture) async {
        let voice = self.voice, logger = self.logger
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                var tap = VoiceTap()
                for await frame in capture.frames {
                    for listener in self.listeners.withLock({ Array($0.values) }) { listener.yield(frame) }
                    guard let voice else { continue }
                    do {
                        voice.yield(try tap.convert(frame))
                    } catch {
                        logger.error("voice tap cannot resample", metadata: ["problem": "\(error)"])
                    }
                }
            } onGracefulShutdown: {
                Task { await capture.stop() }
            }
        } onCancel: {
            Task { await capture.stop() }
        }
    }
}
