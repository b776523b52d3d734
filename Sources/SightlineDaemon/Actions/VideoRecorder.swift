import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import SightlineArchive
import SightlineCore
import SightlineEncoding
import SightlineSystem
import Synchronization

/// Records the camera as H.264 (camera H.264 passed through, else OpenH264) into a 0600 file in
/// the evidence area while it runs, and files it as a `video-recording` item when it stops; the
/// file is removed once filed and kept only when filing fails. The
/// archive streams the file in chunk by chunk (`EvidenceContent.file`), so a long recording
/// never sits in memory. Frames come from a tap of their own, so a recording and a call never
/// compete for frames; encoding runs on its own queue, file writes on another.
final class VideoRecorder: Service, Sendable {
    private struct Running {
        let path: String
        let frames: NewestFrameStream<CapturedFrame>
        let task: Task<RecordingTotals, Never>
        let started: ContinuousClock.Instant
    }

    struct RecordingTotals: Sendable {
        var frames = 0
        var bytes = 0
        var failure: String?
        var reachedLimit = false
        /// The recording ended without a stop request: it must be stopped (and filed) for it.
        var endedBySelf: Bool { failure != nil || reachedLimit }
    }

    private let running = Mutex<Running?>(nil)
    private let camera: CameraService
    private let cases: CaseService
    private let evidence: EvidenceDirectory
    private let settings: EncoderSettings
    private let maximumDuration: Duration
    /// Asks for a stop when a recording ends by itself; set once the action dispatcher exists,
    /// so the stop is journaled, announced and hooked like a spoken one.
    private let stopRequester = Mutex<(@Sendable () async -> Void)?>(nil)
    private let logger: Logger

    init(camera: CameraService, cases: CaseService, evidence: EvidenceDirectory, settings: EncoderSettings,
         maximumDuration: Duration = .seconds(1800), logger: Logger) {
        self.camera = camera
        self.cases = cases
        self.evidence = evidence
        self.settings = settings
        self.maximumDuration = maximumDuration
        self.logger = logger
    }

    /// What to call when a recording stops by itself (its limit, or an encoder or disk failure).
    func whenStoppedBySelf(_ requestStop: @escaping @Sendable () async -> Void) { stopRequester.withLock { $0 = requestStop } }

    var isRecording: Bool { running.withLock { $0 != nil } }

    /// Starts recording; the effect says where, or why not.
    func start() -> ActionEffect {
        let path: String
        do {
            // An empty placeholder reserves the name (0600, in the 0700 evidence directory).
            path = try evidence.store([], kind: "recording", extension: "h264", sequence: UInt32(truncatingIfNeeded: Int(Date().timeIntervalSince1970)))
        } catch {
            return .failed("cannot create the recording file: \(error)", spoken: "Recording could not start.")
        }
        let started: Bool = running.withLock { current in
            guard current == nil else { return false }
            let frames = camera.subscribeRecordingFrames()
            let task = Task { [weak self, camera, settings, maximumDuration, logger] in
                let totals = await Self.record(frames, to: path, settings: settings, parameterSets: { camera.h264ParameterSets },
                                               maximumDuration: maximumDuration, logger: logger)
                // Not awaited: the stop waits for this very task.
                if totals.endedBySelf, let requestStop = self?.stopRequester.withLock({ $0 }) { Task { await requestStop() } }
                return totals
            }
            current = Running(path: path, frames: frames, task: task, started: .now)
            return true
        }
        guard started else {
            unlink(path)
            return .unavailable("a recording is already running", spoken: "Already recording.")
        }
        logger.notice("recording started", metadata: ["path": "\(path)"])
        return ActionEffect(outcome: .done, result: "done: recording to \(path)", spoken: "Recording.", artefacts: [path])
    }

    /// Stops the recording and files it in the active case.
    func stop() async -> ActionEffect {
        guard let current = running.withLock({ current in defer { current = nil }; return current }) else {
            return .unavailable("no recording is running", spoken: "Nothing is being recorded.")
        }
        camera.unsubscribeFrames(current.frames)
        let totals = await current.task.value
        let seconds = Double((ContinuousClock.now - current.started).components.seconds)
        guard totals.frames > 0 else {
            unlink(current.path)
            if let failure = totals.failure { return .failed("\(failure); nothing was recorded", spoken: "The recording failed.") }
            return .failed("no frames arrived from the camera (sightctl status)", spoken: "Nothing was recorded: the camera sent no picture.")
        }
        do {
            let path = current.path
            let (caseID, item) = try await cases.perform { archive in
                let caseID = try archive.activeCaseID()
                let draft = EvidenceDraft(kind: .videoRecording, capturedAt: EvidenceArchive.systemClock(), mediaType: "video/h264")
                return (caseID, try archive.file(draft, content: .file(path: path), into: caseID))
            }
            logger.notice("recording filed", metadata: [
                "case": "\(caseID)", "item": "\(item.id)", "frames": "\(totals.frames)", "bytes": "\(totals.bytes)", "seconds": "\(seconds)",
            ])
            // The archive holds it encrypted now; a plaintext copy would outlive its retention.
            unlink(path)
            if let failure = totals.failure {
                // What was encoded before the failure is evidence too: filed, and the failure said.
                return ActionEffect(outcome: .failed, result: "failed: \(failure); the \(totals.frames) frames recorded before are filed",
                                    spoken: "The recording stopped with an error. What was recorded is saved.", caseId: caseID, itemId: item.id)
            }
            if totals.reachedLimit {
                let minutes = Int(maximumDuration.components.seconds / 60)
                return .done("Recording stopped at its limit\(minutes > 0 ? " of \(minutes) minutes" : "") and saved.", caseId: caseID, itemId: item.id)
            }
            return .done("Recording saved.", caseId: caseID, itemId: item.id)
        } catch {
            return ActionEffect(outcome: .failed, result: "failed: \(DaemonActionPerformer.reason(error)); the recording stays in \(current.path)",
                                spoken: "The recording could not be filed.", artefacts: [current.path])
        }
    }

    /// Waits for shutdown; a recording still running then is stopped and filed, so a restart or
    /// an update never loses what was being recorded.
    func run() async throws {
        try? await gracefulShutdown()
        guard isRecording else { return }
        let effect = await stop()
        logger.notice("recording stopped by shutdown", metadata: ["result": "\(effect.result)", "item": "\(effect.itemId ?? "")"])
    }

    /// Encodes frames until the stream ends, appending each encoded frame to `path`.
    private static func record(_ frames: NewestFrameStream<CapturedFrame>, to path: String, settings: EncoderSettings,
                               parameterSets: @escaping @Sendable () -> ParameterSetRepeater,
                               maximumDuration: Duration, logger: Logger) async -> RecordingTotals {
        var totals = RecordingTotals()
        guard let handle = FileHandle(forWritingAtPath: path) else {
            totals.failure = "cannot open \(path) for writing"
            return totals
        }
        let writer = DispatchQueue(label: "sightline.recording-writer")
        let worker = EncodingWorker(codec: .h264, parameterSets: parameterSets)
        var wanted = settings
        var lastEncoded: Duration?
        var first = true
        var startedAt: Duration?
        for await frame in frames {
            if let startedAt, frame.timestamp - startedAt >= maximumDuration {
                logger.notice("recording reached its limit", metadata: ["path": "\(path)", "limit": "\(maximumDuration)"])
                totals.reachedLimit = true
                break
            }
            startedAt = startedAt ?? frame.timestamp
            wanted.width = frame.mode.size.width
            wanted.height = frame.mode.size.height
            // The camera's own H.264 is not paced: every P-frame needs the one before it.
            if !worker.passesThrough, let lastEncoded, frame.timestamp - lastEncoded < .seconds(0.9 / wanted.fps) { continue }
            lastEncoded = frame.timestamp
            do {
                guard let encoded = try await worker.encode(frame, settings: wanted, forceKeyframe: first) else { continue }
                first = false
                let data = Data(encoded.data)
                let written: Result<Void, any Error> = await withCheckedContinuation { done in
                    writer.async { done.resume(returning: Result { try handle.write(contentsOf: data) }) }
                }
                try written.get()
                totals.frames += 1
                totals.bytes += data.count
            } catch {
                logger.error("recording stopped by an error", metadata: ["path": "\(path)", "error": "\(error)"])
                totals.failure = "\(error)"
                break
            }
        }
        do {
            try handle.synchronize()
            try handle.close()
        } catch {
            totals.failure = totals.failure ?? "cannot finish \(path): \(error)"
        }
        return totals
    }
}
