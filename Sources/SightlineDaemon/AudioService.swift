import Foundation
import Logging
import ServiceLifecycle
import SightlineAudio
import SightlineCore
import Synchronization

/// Runs the microphone: chooses the backend (`audio.backend`), keeps a capture open, reopens it
/// when it cannot be opened (no device yet, no server), and serves its status to
/// `GET /v1/audio`. Until the call and voice paths take the frames, they are drained here so the
/// lossless queue never backs up into xruns.
final class AudioService: Service, Sendable {
    static let name = "audio"
    private let configuration: DaemonConfiguration.AudioConfiguration
    private let state: DaemonState
    private let logger: Logger
    private let current = Mutex<Snapshot>(Snapshot())
    private let retryInterval: Duration

    private struct Snapshot {
        var backend = "none"
        var reason = "starting"
        var capture: (any AudioCapture)?
        var problem: String?
    }

    init(configuration: DaemonConfiguration.AudioConfiguration, state: DaemonState, logger: Logger, retryInterval: Duration = .seconds(5)) {
        self.configuration = configuration
        self.state = state
        self.logger = logger
        self.retryInterval = retryInterval
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
        let kind = configuration.backend
        let choice = await withCheckedContinuation { (done: CheckedContinuation<AudioBackendSelection.Choice, Never>) in
            Thread { done.resume(returning: AudioBackendSelection.choose(kind)) }.start()
        }
        current.withLock {
            $0.backend = choice.backend.kind.rawValue
            $0.reason = choice.reason
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
            current.withLock {
                $0.capture = capture
                $0.problem = nil
            }
            await state.set(Self.name, .running, "\(choice.backend.kind.rawValue) capture from \(configuration.captureDevice ?? "the default device")")
            await withGracefulShutdownHandler {
                for await _ in capture.frames.cancelOnGracefulShutdown() {}
            } onGracefulShutdown: {
                Task { await capture.stop() }
            }
            await capture.stop()
        }
    }
}
