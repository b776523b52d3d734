import Foundation
import Hummingbird
import Logging
import Metrics
import ServiceLifecycle
import SightlineCamera
import SightlineArchive
import SightlineCore
import SightlineEncoding
import SightlineSystem
import Synchronization

/// Runs the camera the device registry's policy chooses: a V4L2 device when there is one, the
/// built-in test pattern otherwise (also the placeholder while a camera is gone). It keeps the
/// newest frame for snapshots, reports progress to the watchdog, and follows hotplug: a camera
/// that goes away is reported once and streaming resumes when one returns.
public final class CameraService: Service, Sendable {
    static let loopName = "camera"
    private let configuration: DaemonConfiguration.CameraConfiguration
    private let evidence: EvidenceDirectory
    private let cases: CaseService
    private let state: DaemonState
    private let registry: DeviceRegistry
    private let logger: Logger
    private let latest = Mutex<CapturedFrame?>(nil)
    /// The live stream's tap: newest frame wins, so a slow encoder never holds capture back.
    private let subscriber = Mutex<NewestFrameStream<CapturedFrame>?>(nil)
    /// The recorder's tap, beside the live stream's: a recording never takes frames from a call.
    private let recorder = Mutex<NewestFrameStream<CapturedFrame>?>(nil)
    private let device = Mutex<V4L2Camera?>(nil)
    /// The newest SPS and PPS of the camera's own H.264: a camera may send them once, at its
    /// stream's start, and a call or recording that starts later needs them for every keyframe.
    private let parameterSets = Mutex(ParameterSetRepeater())
    private let stalled = Atomic<Bool>(false)
    /// Privacy mode: frames are captured (so the camera stays ready) but go nowhere: not to a
    /// call, not to a recording, not into a snapshot.
    private let privacy = Atomic<Bool>(false)
    private let frameCounter = Counter(label: "sightline_camera_frames_total")
    private let droppedCounter = Counter(label: "sightline_camera_frames_dropped_total")
    private let missedCounter = Counter(label: "sightline_camera_frames_missed_total")
    private let recoveries = Counter(label: "sightline_camera_recoveries_total")
    private let firstFrameTimer = Metrics.Timer(label: "sightline_camera_first_frame_after_add")
    private let deviceThread = CameraDeviceThread()

    init(configuration: DaemonConfiguration.CameraConfiguration, evidence: EvidenceDirectory, cases: CaseService, state: DaemonState,
         registry: DeviceRegistry, logger: Logger) {
        self.configuration = configuration
        self.evidence = evidence
        self.cases = cases
        self.state = state
        self.registry = registry
        self.logger = logger
    }

    /// Fault injection: the loop stops making progress while pretending to be alive.
    func stall() { stalled.store(true, ordering: .releasing) }

    public func run() async throws {
        await state.registerLoop(Self.loopName)
        if configuration.device == "test-pattern" {
            await runPattern(status: .running, detail: "configured")
        } else {
            await followDecisions()
        }
        await state.unregisterLoop(Self.loopName)
        await state.set("camera", .stopped, "shut down")
    }

    /// Runs one source per decision; a new decision cancels the running source first.
    private func followDecisions() async {
        var source: Task<Void, Never>?
        for await decision in await registry.cameraDecisions().cancelOnGracefulShutdown() {
            let decidedAt = ContinuousClock.now
            source?.cancel()
            await source?.value
            source = Task {
                guard await self.settled(decision) else { return }
                await self.run(decision, decidedAt: decidedAt)
            }
        }
        source?.cancel()
        await source?.value
    }

    /// Longest an open waits for the rest of a burst of device events.
    static let burstWait = Duration.milliseconds(100)

    /// Devices arrive in bursts (one USB plug adds several nodes, a hub several cameras): while
    /// discovery still holds events, a camera is not opened, since one of them may replace the
    /// decision (a better camera) and the camera would be opened only to be closed again. With
    /// nothing pending it is opened at once; a placeholder never waits. False when the decision
    /// no longer stands or the wait was cancelled.
    private func settled(_ decision: CameraPolicy.Decision) async -> Bool {
        guard case .use(let camera) = decision else { return true }
        let started = ContinuousClock.now
        var waited = false
        while registry.pendingEvents.any, ContinuousClock.now - started < Self.burstWait {
            waited = true
            try? await Task.sleep(for: .milliseconds(5))
            guard !Task.isCancelled else { return false }
        }
        guard !Task.isCancelled else { return false }
        guard waited else { return true }
        let current = await registry.decision(for: .camera)
        logger.debug("camera: open held back while device events were pending", metadata: [
            "device": "\(camera.devnode)", "ms": "\((ContinuousClock.now - started).inMilliseconds)",
            "still chosen": "\(current == decision)"])
        return current == decision
    }

    private func run(_ decision: CameraPolicy.Decision, decidedAt: ContinuousClock.Instant) async {
        switch decision {
        case .placeholder(let reason):
            let status: ServiceState = reason == "no camera found" ? .running : .degraded
            await runPattern(status: status, detail: reason)
        case .use(let camera):
            var reported = false
            while !Task.isCancelled {
                do {
                    try await stream(camera, decidedAt: decidedAt)
                    return
                } catch {
                    await registry.markFailed(camera.syspath, reason: error.description)
                    if !reported {
                        logger.error("camera unavailable; retrying every second",
                                     metadata: ["device": "\(camera.devnode)", "identity": "\(camera.identity)", "reason": "\(error)"])
                        reported = true
                    }
                    await state.set("camera", .degraded, "\(error.description); retrying every second")
                }
                // Show the placeholder until the retry or a new decision.
                let retry = Task { await runPattern(status: nil, detail: "") }
                try? await Task.sleep(for: .seconds(1))
                retry.cancel()
                await retry.value
            }
        }
    }

    // MARK: V4L2

    /// Streams until cancelled (returns) or until the camera fails (throws).
    /// - Parameter decidedAt: when the policy's decision to use the camera reached this service.
    private func stream(_ discovered: DiscoveredDevice, decidedAt: ContinuousClock.Instant) async throws(CameraError) {
        let opening = ContinuousClock.now
        let request = ModeNegotiation.Request(
            preference: configuration.formatPreference.compactMap(VideoFormat.init(rawValue:)),
            size: FrameSize(width: configuration.width, height: configuration.height), fps: configuration.fps)
        let bufferCount = configuration.buffers
        let abandoned = Atomic<Bool>(false)
        let started = await withTaskCancellationHandler {
            await deviceThread.run { () -> Result<(V4L2Camera, ContinuousClock.Instant, CaptureSession?), CameraError> in
                Result { () throws(CameraError) in
                    let camera = try V4L2Camera(path: discovered.devnode)
                    let opened = ContinuousClock.now
                    // A newer decision came meanwhile: no session for a camera about to be closed.
                    guard !abandoned.load(ordering: .acquiring) else { return (camera, opened, nil) }
                    do throws(CameraError) {
                        return (camera, opened, try CaptureSession(camera: camera, request: request, bufferCount: bufferCount))
                    } catch {
                        camera.close()
                        throw error
                    }
                }
            }
        } onCancel: {
            abandoned.store(true, ordering: .releasing)
        }
        let (camera, opened, startedSession) = try started.get()
        guard let session = startedSession else {
            await deviceThread.run { camera.close() }
            return
        }
        device.withLock { $0 = camera }
        parameterSets.withLock { $0 = ParameterSetRepeater() }
        await registry.markInUse(discovered.syspath, role: .camera, why: await registry.reason(for: discovered))
        let added = await registry.addEvent(discovered.syspath)
        logger.info("camera streaming", metadata: ["device": "\(discovered.devnode)", "card": "\(camera.card)", "mode": "\(session.mode)"])
        await state.set("camera", .running, "\(camera.card) at \(discovered.stableLink ?? discovered.devnode): \(session.mode)")
        await withTaskCancellationHandler {
            var sinceUpdate = 0
            var firstFrameAfterAdd: Double?
            var firstFrameAt: Double?
            var phases: [TimedPhase]?
            for await frame in session.frames {
                await deliver(frame)
                if firstFrameAfterAdd == nil, let added {
                    let elapsed = ContinuousClock.now - added.received
                    firstFrameAfterAdd = elapsed.inMilliseconds
                    firstFrameAt = Date().timeIntervalSince1970
                    firstFrameTimer.recordNanoseconds(Int64(elapsed.components.seconds) * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
                    recoveries.increment()
                    sinceUpdate = 10
                    // Step by step only when this add event led to the decision (not a camera
                    // chosen again long after it appeared).
                    if added.registered <= decidedAt {
                        var timeline = StartupTimeline(start: added.received)
                        timeline.mark("queued", at: added.dequeued)
                        timeline.mark("registry", at: added.registered)
                        if let decided = added.decided { timeline.mark("policy", at: decided) }
                        timeline.mark("decision", at: decidedAt)
                        timeline.mark("settle", at: opening)
                        timeline.mark("open", at: opened)
                        for mark in session.setupMarks { timeline.mark(mark.name, at: mark.at) }
                        if let dequeued = session.firstDequeue { timeline.mark("first buffer", at: dequeued) }
                        timeline.mark("delivered", at: .now)
                        phases = timeline.phases
                        logger.debug("camera: first frame after the add event", metadata: [
                            "device": "\(discovered.devnode)", "ms": "\(timeline.totalMs)",
                            "phases": "\(timeline.phases.map { "\($0.name) \($0.ms)" }.joined(separator: ", "))"])
                    }
                }
                sinceUpdate += 1
                if sinceUpdate >= 10 {
                    sinceUpdate = 0
                    let counters = session.counters
                    await state.updateCamera(CameraStatus(
                        source: discovered.devnode, width: session.mode.size.width, height: session.mode.size.height,
                        fps: Int((session.mode.interval?.framesPerSecond ?? 0).rounded()),
                        framesCaptured: counters.captured, framesDropped: session.dropped + counters.missed,
                        firstFrameAfterAddMs: firstFrameAfterAdd, firstFrameAfterAddPhases: phases, firstFrameAfterAddAt: firstFrameAt))
                }
            }
        } onCancel: {
            Task { await session.stop() }
        }
        let failure = session.counters.failure
        await session.stop()
        device.withLock { $0 = nil }
        // `v4l2_close` of a camera being unplugged waits for the driver's teardown too.
        await deviceThread.run { camera.close() }
        await registry.markInUse(nil)
        droppedCounter.increment(by: Int64(session.dropped))
        missedCounter.increment(by: Int64(session.counters.missed))
        if let failure { throw failure }
    }

    /// Turns privacy mode on or off; off again, the newest frame is forgotten, so nothing
    /// captured while private can become a snapshot.
    func setPrivate(_ on: Bool) {
        privacy.store(on, ordering: .releasing)
        if on { latest.withLock { $0 = nil } }
    }

    var isPrivate: Bool { privacy.load(ordering: .acquiring) }

    private func deliver(_ frame: CapturedFrame) async {
        guard !stalled.load(ordering: .acquiring) else { return }
        if frame.mode.fourCC == .h264 { parameterSets.withLock { $0.remember(frame.bytes) } }
        guard !privacy.load(ordering: .acquiring) else {
            await state.progress(Self.loopName)
            return
        }
        latest.withLock { $0 = frame }
        subscriber.withLock { $0 }?.offer(frame)
        recorder.withLock { $0 }?.offer(frame)
        frameCounter.increment()
        await state.progress(Self.loopName)
    }

    // MARK: Test pattern

    /// The test pattern as the camera (`status` .running) or as the placeholder while a camera
    /// is missing; runs until cancelled or shutdown. A nil status leaves the service state alone.
    private func runPattern(status: ServiceState?, detail: String) async {
        var pattern = TestPattern(width: configuration.width, height: configuration.height, fps: configuration.fps)
        let period = Duration.seconds(1) / configuration.fps
        var deadline = ContinuousClock.now
        var captured: UInt64 = 0
        var dropped: UInt64 = 0
        if let status {
            let text = status == .running ? "test pattern \(pattern.mode.size) at \(configuration.fps) fps (\(detail))" : detail
            await state.set("camera", status, text)
            logger.info("camera: built-in test pattern", metadata: ["mode": "\(pattern.mode)", "reason": "\(detail)"])
        }
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            await deliver(pattern.nextFrame())
            captured += 1
            // At once, so the status stops naming a camera that is gone; then once a second.
            if captured == 1 || captured % UInt64(configuration.fps) == 0 {
                await state.updateCamera(CameraStatus(
                    source: "test-pattern", width: pattern.mode.size.width, height: pattern.mode.size.height,
                    fps: configuration.fps, framesCaptured: captured, framesDropped: dropped))
            }
            deadline += period
            let now = ContinuousClock.now
            if now > deadline + period {
                // Behind by more than a frame: skip the missed slots instead of bursting.
                let missed = UInt64((now - deadline) / period)
                dropped += missed
                droppedCounter.increment(by: Int64(missed))
                deadline = now
            }
            try? await Task.sleep(until: deadline, clock: .continuous)
        }
    }

    // MARK: Live frames, snapshots and controls

    /// The camera's newest SPS and PPS (none while it delivers no H.264 of its own).
    var h264ParameterSets: ParameterSetRepeater { parameterSets.withLock { $0 } }

    /// Frames from now on, for one consumer (the call's media sender); a new subscription
    /// ends the previous one.
    func subscribeFrames() -> NewestFrameStream<CapturedFrame> {
        let stream = NewestFrameStream<CapturedFrame>()
        subscriber.withLock { current in
            current?.finish()
            current = stream
        }
        return stream
    }

    func unsubscribeFrames(_ stream: NewestFrameStream<CapturedFrame>) {
        stream.finish()
        subscriber.withLock { current in
            if current === stream { current = nil }
        }
        recorder.withLock { current in
            if current === stream { current = nil }
        }
    }

    /// Frames from now on for the video recorder; a new recording subscription ends the previous one.
    func subscribeRecordingFrames() -> NewestFrameStream<CapturedFrame> {
        let stream = NewestFrameStream<CapturedFrame>()
        recorder.withLock { current in
            current?.finish()
            current = stream
        }
        return stream
    }

    /// Files the newest frame as a full-resolution JPEG in the evidence archive.
    func snapshot() async throws -> SnapshotInfo {
        try await takeSnapshot().info
    }

    /// The snapshot with its JPEG bytes and capture time, for sending to an expert as well. It is
    /// filed in the active case (`kind` says whether the wearer or an expert asked for it); the
    /// answer names the case and item only once the archive acknowledged it. Only when the
    /// archive cannot take it for another reason than a full disk is a plaintext copy written
    /// to `STATE/evidence/` instead, so the photo is not lost; a full disk is refused (507) and
    /// nothing is written, since a copy would only take the last space the archive needs.
    func takeSnapshot(kind: EvidenceKind = .photo) async throws -> (info: SnapshotInfo, jpeg: [UInt8], capturedAt: Duration) {
        guard !isPrivate else {
            throw HTTPError(.conflict, message: "privacy mode is on: the camera takes no pictures until privacy is turned off")
        }
        guard let frame = latest.withLock({ $0 }) else {
            throw HTTPError(.conflict, message: "no frame captured yet: is the camera streaming? (sightctl status)")
        }
        let jpeg = try SnapshotEncoder.jpeg(from: frame, encoder: try JPEGEncoder())
        var info = SnapshotInfo(path: nil, width: frame.mode.size.width, height: frame.mode.size.height,
                                sourceFormat: frame.mode.fourCC.description, bytes: jpeg.count)
        let bytes = Array(jpeg)
        do {
            let (caseID, item) = try await cases.perform { archive in
                let caseID = try archive.activeCaseID()
                let draft = EvidenceDraft(kind: kind, capturedAt: EvidenceArchive.systemClock(), mediaType: "image/jpeg")
                return (caseID, try archive.file(draft, content: .bytes(bytes), into: caseID))
            }
            info.caseId = caseID
            info.itemId = item.id
        } catch let error as HTTPError where error.status.code == 507 {
            logger.error("snapshot refused: the disk is full", metadata: ["error": "\(error)"])
            throw error
        } catch {
            let path = try evidence.store(jpeg, kind: "photo", extension: "jpg", sequence: frame.sequence)
            info.path = path
            logger.error("snapshot not filed in the evidence archive; kept as a plaintext file", metadata: ["path": "\(path)", "error": "\(error)"])
        }
        return (info, bytes, frame.timestamp)
    }

    func controls() throws -> [CameraControl] {
        try withCamera { try $0.controls() }
    }

    func setControl(_ key: String, to value: Int64) throws -> Int64 {
        try withCamera { try $0.setControl(key, to: value) }
    }

    /// What asking the camera for a keyframe did. A passthrough stream is the camera's own
    /// encoding, so only the camera can start a new IDR.
    enum CameraKeyframe: Equatable {
        case pressed
        case unsupported(camera: String)
        case failed(String)
        case noCamera
    }

    /// Presses the streaming camera's FORCE_KEY_FRAME control when it has one.
    func requestCameraKeyframe() -> CameraKeyframe {
        device.withLock { camera in
            guard let camera else { return .noCamera }
            guard camera.hasForceKeyFrameControl else { return .unsupported(camera: camera.card) }
            do {
                try camera.forceKeyFrame()
                return .pressed
            } catch {
                return .failed("\(error)")
            }
        }
    }

    /// Runs `body` on the streaming camera under the lock, so the stream cannot end and close
    /// the descriptor (which the kernel may then hand to another file) while `body` uses it.
    private func withCamera<Value: Sendable>(_ body: (V4L2Camera) throws -> Value) throws -> Value {
        try device.withLock { camera throws -> Value in
            guard let camera else {
                throw HTTPError(.conflict, message: "no V4L2 camera is streaming (the test pattern has no controls)")
            }
            return try body(camera)
        }
    }
}

/// Opens cameras, starts their capture sessions and closes them on one thread kept for the
/// purpose. The requests block (libv4l2's open, negotiation, buffers: a hundred milliseconds and
/// more under emulation; the close of an unplugged camera until the driver's teardown is done);
/// on the cooperative pool, one thread on a one-core device, they held up discovery's next events
/// and the decision that could abandon the open. The thread is made once: made for each open, it
/// started behind the busy udev workers and the re-add took ~90 ms longer at the median under
/// emulation (docs/PERFORMANCE.md, "hotplug").
private final class CameraDeviceThread: Sendable {
    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let ready = DispatchSemaphore(value: 0)
    private let thread = Mutex<Thread?>(nil)

    /// Runs `body` on the device thread and returns its result.
    func run<Value: Sendable>(_ body: @escaping @Sendable () -> Value) async -> Value {
        startIfNeeded()
        return await withCheckedContinuation { continuation in
            jobs.withLock { $0.append { continuation.resume(returning: body()) } }
            ready.signal()
        }
    }

    private func startIfNeeded() {
        thread.withLock { thread in
            guard thread == nil else { return }
            let started = Thread { [self] in
                while true {
                    ready.wait()
                    let job = jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
                    job?()
                }
            }
            started.name = "camera device"
            started.start()
            thread = started
        }
    }
}
