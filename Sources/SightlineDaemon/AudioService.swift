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
///
/// With `audio.capture_preference` (or `audio.playback_preference`) the device registry's
/// policy for the role chooses among the sound cards discovery finds: the chosen PCM node is
/// opened under the backend's name for it (ALSA `plughw:CARD=n,DEV=d`, or the Pulse source or
/// sink with the same `alsa.card`/`alsa.device`), a new decision closes it and opens the next,
/// and with none present the configured device stands in (`audio.fallback`) once
/// `audio.switch_delay_ms` has passed.
final class AudioService: Service, Sendable {
    static let name = "audio"
    private let configuration: DaemonConfiguration.AudioConfiguration
    private let state: DaemonState
    private let logger: Logger
    private let current = Mutex<Snapshot>(Snapshot())
    private let retryInterval: Duration
    private let voice: AsyncStream<[Int16]>.Continuation?
    private let pulseServer: String?
    private let registry: DeviceRegistry?
    /// Counts speaker changes, so a playback opened on the previous speaker knows to move.
    private let speakerChanges = Atomic<Int>(0)

    private struct Snapshot {
        var backend = "none"
        var reason = "starting"
        var capture: (any AudioCapture)?
        var problem: String?
        var muted = false
        /// Set once the backend is chosen; nil while no speaker may be used.
        var feedback: FeedbackSpeaker?
        var chosen: (any AudioBackend)?
        /// The microphone being opened or open, and why it was chosen.
        var captureDevice = AudioDeviceChoice(name: nil, why: "audio.capture_device")
        /// The speaker playback opens, and why; nil name: the sound system's default.
        var playbackDevice = AudioDeviceChoice(name: nil, why: "audio.playback_device")
        /// No speaker may be used now (no preferred one present, no fallback), and why.
        var playbackUnavailable: String?
    }
    /// Who else gets the 48 kHz frames (the call's voice channel), newest kept when one lags.
    private let listeners = Mutex<[UUID: AsyncStream<AudioFrame>.Continuation]>([:])

    /// - Parameters:
    ///   - voice: where 16 kHz mono chunks for voice commands go (`VoiceTap.makeStream`).
    ///   - pulseServer: a libpulse server string; nil for libpulse's defaults (`PULSE_SERVER`, the runtime directory).
    ///   - registry: the device policies to follow for `audio.capture_preference` and
    ///     `audio.playback_preference`; without one the configured device names are used.
    init(configuration: DaemonConfiguration.AudioConfiguration, state: DaemonState, logger: Logger, retryInterval: Duration = .seconds(5),
         registry: DeviceRegistry? = nil, voice: AsyncStream<[Int16]>.Continuation? = nil, pulseServer: String? = nil) {
        self.pulseServer = pulseServer
        self.registry = registry
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
        let (backend, device) = current.withLock { ($0.chosen?.kind.rawValue ?? "no", $0.captureDevice.name) }
        return "\(backend) capture from \(device ?? "the default device")\(muted ? ", muted (privacy)" : "")"
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
        let (backend, device, unavailable) = current.withLock { ($0.chosen, $0.playbackDevice.name, $0.playbackUnavailable) }
        guard let backend else {
            throw AudioError.playbackStalled(device: device ?? "the default device", lastError: "the sound system is not chosen yet")
        }
        if let unavailable { throw AudioError.playbackStalled(device: "the speaker", lastError: unavailable) }
        return try backend.openPlayback(device: device, format: .stream, source: source)
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
            let why = current.withLock { $0.playbackUnavailable } ?? "the sound system is not chosen yet"
            logger.notice("feedback not played: \(why)", metadata: ["feedback": "\(what)"])
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
            var status = AudioStatus(backend: snapshot.backend, configured: configuration.backend.rawValue, reason: snapshot.reason,
                                     captureDevice: snapshot.captureDevice.name ?? "default", sampleRate: AudioFormat.stream.sampleRate,
                                     channels: AudioFormat.stream.channels, capture: snapshot.capture?.statistics, problem: snapshot.problem)
            status.captureChoice = snapshot.captureDevice.why
            status.playbackDevice = snapshot.playbackUnavailable == nil ? snapshot.playbackDevice.name ?? "default" : "none"
            status.playbackChoice = snapshot.playbackUnavailable ?? snapshot.playbackDevice.why
            return status
        }
    }

    func run() async throws {
        let logger = self.logger
        ALSADiagnostics.setHandler { message in logger.notice("ALSA: \(message)") }
        await state.set(Self.name, .starting, "choosing a sound system (audio.backend: \(configuration.backend.rawValue))")
        // `auto` probes the Pulse server for up to a second: off the cooperative pool.
        let kind = configuration.backend, server = pulseServer
        let choice = await Self.offPool { AudioBackendSelection.choose(kind, pulseServer: server) }
        let speaker = FeedbackSpeaker(backend: choice.backend, device: configuration.playbackDevice)
        current.withLock {
            $0.backend = choice.backend.kind.rawValue
            $0.reason = choice.reason
            $0.feedback = speaker
            $0.chosen = choice.backend
            $0.captureDevice = AudioDeviceChoice(name: configuration.captureDevice, why: "audio.capture_device")
            $0.playbackDevice = AudioDeviceChoice(name: configuration.playbackDevice, why: "audio.playback_device")
        }
        logger.info("audio backend", metadata: ["backend": "\(choice.backend.kind.rawValue)", "reason": "\(choice.reason)"])

        let followsSpeaker = registry != nil && !configuration.playbackPreference.isEmpty
        let speakers = followsSpeaker ? Task { await self.followSpeakerDecisions(backend: choice.backend) } : nil
        if let registry, !configuration.capturePreference.isEmpty {
            await followMicrophoneDecisions(registry: registry, backend: choice.backend)
        } else {
            await keepCapturing(backend: choice.backend, device: configuration.captureDevice, discovered: nil)
        }
        speakers?.cancel()
        await speakers?.value
    }

    /// Runs `body` on a thread of its own: backend selection and Pulse introspection block for
    /// up to a second or two, which must not hold a thread of the cooperative pool.
    private static func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (done: CheckedContinuation<T, Never>) in
            Thread { done.resume(returning: body()) }.start()
        }
    }

    // MARK: Following discovery

    /// Opens the microphone each decision names, closing the previous one first.
    private func followMicrophoneDecisions(registry: DeviceRegistry, backend: any AudioBackend) async {
        var running: Task<Void, Never>?
        for await decision in await registry.decisions(for: .microphone).cancelOnGracefulShutdown() {
            running?.cancel()
            await running?.value
            running = Task {
                // A card adds its nodes in a burst: a decision replaced within a moment is never opened.
                try? await Task.sleep(for: .milliseconds(20))
                guard !Task.isCancelled else { return }
                await self.runMicrophone(decision, registry: registry, backend: backend)
            }
        }
        running?.cancel()
        await running?.value
    }

    private func runMicrophone(_ decision: DevicePolicy.Decision, registry: DeviceRegistry, backend: any AudioBackend) async {
        switch decision {
        case .use(let device):
            let why = "microphone \(device.name) [\(device.identity)]: \(await registry.reason(for: device) ?? "chosen by discovery")"
            guard let address = SoundDeviceAddress(device) else { return }
            var failed = false
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                do {
                    let name = try await Self.offPool { Result { try backend.deviceName(for: address) } }.get()
                    current.withLock { $0.captureDevice = AudioDeviceChoice(name: name, why: why) }
                    logger.info("microphone chosen", metadata: ["device": "\(name)", "why": "\(why)"])
                    await keepCapturing(backend: backend, device: name, discovered: device)
                    return
                } catch {
                    current.withLock {
                        $0.captureDevice = AudioDeviceChoice(name: nil, why: why)
                        $0.problem = "\(error)"
                    }
                    if !failed {
                        // Once: the policy passes it over for another preferred microphone if
                        // there is one (a new decision cancels this task), else it stays chosen.
                        logger.warning("microphone cannot be opened; retrying every second", metadata: ["device": "\(device.identity)", "problem": "\(error)"])
                        await state.set(Self.name, .degraded, "\(error)")
                        await registry.markFailed(device.syspath, reason: "\(error)")
                        failed = true
                    }
                    // A sound server loads a new card a moment after udev reports it.
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
                }
            }
        case .placeholder(let reason):
            current.withLock {
                $0.captureDevice = AudioDeviceChoice(name: nil, why: reason)
                $0.problem = reason
            }
            await state.set(Self.name, .degraded, "\(reason)\(configuration.fallback ? "" : "; audio.fallback is false: waiting for a preferred microphone")")
            guard configuration.fallback else { return }
            // Debounced like a switch between preferred devices: a flapping cable does not open the fallback.
            try? await Task.sleep(for: .milliseconds(configuration.switchDelayMilliseconds))
            guard !Task.isCancelled else { return }
            let why = "fallback (audio.fallback): \(reason)"
            current.withLock { $0.captureDevice = AudioDeviceChoice(name: configuration.captureDevice, why: why) }
            logger.notice("no preferred microphone; using audio.capture_device", metadata: ["reason": "\(reason)"])
            await keepCapturing(backend: backend, device: configuration.captureDevice, discovered: nil)
        }
    }

    /// Points playback and spoken feedback at the speaker each decision names.
    private func followSpeakerDecisions(backend: any AudioBackend) async {
        guard let registry else { return }
        for await decision in await registry.decisions(for: .speaker).cancelOnGracefulShutdown() {
            let choice: AudioDeviceChoice?
            switch decision {
            case .use(let device):
                let why = "speaker \(device.name) [\(device.identity)]: \(await registry.reason(for: device) ?? "chosen by discovery")"
                guard let address = SoundDeviceAddress(device) else { continue }
                do {
                    let name = try await Self.offPool { Result { try backend.deviceName(for: address) } }.get()
                    choice = AudioDeviceChoice(name: name, why: why)
                    await registry.markInUse(device.syspath, role: .speaker, why: why)
                } catch {
                    logger.warning("speaker cannot be used", metadata: ["device": "\(device.identity)", "problem": "\(error)"])
                    await registry.markFailed(device.syspath, reason: "\(error)")
                    continue
                }
            case .placeholder(let reason):
                await registry.markInUse(nil, role: .speaker)
                choice = configuration.fallback ? AudioDeviceChoice(name: configuration.playbackDevice, why: "fallback (audio.fallback): \(reason)") : nil
                if choice == nil { setSpeaker(nil, unavailable: "\(reason); audio.fallback is false: waiting for a preferred speaker", backend: backend) }
            }
            guard let choice else { continue }
            logger.info("speaker chosen", metadata: ["device": "\(choice.name ?? "default")", "why": "\(choice.why)"])
            setSpeaker(choice, unavailable: nil, backend: backend)
        }
    }

    private func setSpeaker(_ choice: AudioDeviceChoice?, unavailable: String?, backend: any AudioBackend) {
        let speaker = choice.map { FeedbackSpeaker(backend: backend, device: $0.name) }
        current.withLock {
            if let choice { $0.playbackDevice = choice }
            $0.playbackUnavailable = unavailable
            $0.feedback = speaker
        }
        speakerChanges.add(1, ordering: .releasing)
    }

    /// Changes whenever the speaker does (a preferred one plugged in or gone): a playback opened
    /// under another value plays on a speaker that is no longer the chosen one.
    var speakerGeneration: Int { speakerChanges.load(ordering: .acquiring) }

    // MARK: Capturing

    /// Keeps a capture on `device` open until cancelled or shut down, retrying every
    /// `retryInterval` while it cannot be opened. `discovered`: the node it stands for, marked
    /// in use in the registry while open.
    private func keepCapturing(backend: any AudioBackend, device: String?, discovered: DiscoveredDevice?) async {
        var reported: String?
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            let capture: any AudioCapture
            do {
                capture = try backend.openCapture(device: device, format: .stream)
            } catch {
                let problem = "\(error)"
                current.withLock { $0.problem = problem }
                if reported != problem {
                    // Logged once per distinct problem, not every retry.
                    logger.warning("microphone unavailable", metadata: ["problem": "\(problem)"])
                    // Another preferred microphone, if one is present, takes over after the
                    // switch delay (a new decision cancels this loop); alone, it stays chosen.
                    if reported == nil, let discovered { await registry?.markFailed(discovered.syspath, reason: problem) }
                    reported = problem
                }
                await state.set(Self.name, .degraded, problem)
                // Ends at once on SIGTERM, so the wait never eats the shutdown budget.
                let interval = retryInterval
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                continue
            }
            reported = nil
            let (muted, why) = current.withLock {
                $0.capture = capture
                $0.problem = nil
                return ($0.muted, $0.captureDevice.why)
            }
            capture.setMuted(muted)
            if let discovered { await registry?.markInUse(discovered.syspath, role: .microphone, why: why) }
            await state.set(Self.name, .running, runningDetail(muted: muted))
            await consume(capture)
            await capture.stop()
            if discovered != nil { await registry?.markInUse(nil, role: .microphone) }
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

/// A device name for the backend (nil: the sound system's default) and why it was chosen.
struct AudioDeviceChoice: Sendable, Equatable {
    var name: String?
    var why: String
}
