import Foundation
import Hummingbird
import Logging
import Metrics
import ServiceLifecycle
import SightlineCamera
import SightlineCore
import SightlineSystem
import Synchronization

/// Runs the camera: a V4L2 device when one is configured or found, the built-in test pattern
/// otherwise. It keeps the newest frame for snapshots, reports progress to the watchdog, and
/// survives an unplugged camera by waiting for it to return.
public final class CameraService: Service, Sendable {
    static let loopName = "camera"
    private let configuration: DaemonConfiguration.CameraConfiguration
    private let evidence: EvidenceDirectory
    private let state: DaemonState
    private let logger: Logger
    private let latest = Mutex<CapturedFrame?>(nil)
    private let device = Mutex<V4L2Camera?>(nil)
    private let stalled = Atomic<Bool>(false)
    private let frameCounter = Counter(label: "sightline_camera_frames_total")
    private let droppedCounter = Counter(label: "sightline_camera_frames_dropped_total")
    private let missedCounter = Counter(label: "sightline_camera_frames_missed_total")
    private let disconnects = Counter(label: "sightline_camera_disconnects_total")

    init(configuration: DaemonConfiguration.CameraConfiguration, evidence: EvidenceDirectory, state: DaemonState, logger: Logger) {
        self.configuration = configuration
        self.evidence = evidence
        self.state = state
        self.logger = logger
    }

    /// Fault injection: the loop stops making progress while pretending to be alive.
    func stall() { stalled.store(true, ordering: .releasing) }

    public func run() async throws {
        await state.registerLoop(Self.loopName)
        defer { Task { [state] in await state.unregisterLoop(Self.loopName) } }
        let path: String?
        switch configuration.device {
        case "test-pattern": path = nil
        case "auto": path = CameraDiscovery.captureNodes().first
        default: path = configuration.device
        }
        if let path {
            await runDevice(path: path)
        } else {
            await runTestPattern(reason: configuration.device == "auto" ? "no camera found" : "configured")
        }
        await state.set("camera", .stopped, "shut down")
    }

    // MARK: V4L2

    private func runDevice(path: String) async {
        var reportedWaiting = false
        while !Task.isShuttingDownGracefully {
            do {
                try await stream(path: path)
                reportedWaiting = false
            } catch {
                if !reportedWaiting {
                    logger.error("camera unavailable; retrying every second", metadata: ["device": "\(path)", "reason": "\(error)"])
                    await state.set("camera", .degraded, "\(error.description); retrying every second")
                    reportedWaiting = true
                }
            }
            guard !Task.isShuttingDownGracefully else { break }
            await progress()
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Streams from `path` until shutdown (returns) or until the camera goes away (throws).
    private func stream(path: String) async throws(CameraError) {
        let camera = try V4L2Camera(path: path)
        defer { camera.close() }
        let request = ModeNegotiation.Request(
            preference: configuration.formatPreference.compactMap(VideoFormat.init(rawValue:)),
            size: FrameSize(width: configuration.width, height: configuration.height), fps: configuration.fps)
        let session = try CaptureSession(camera: camera, request: request, bufferCount: configuration.buffers)
        device.withLock { $0 = camera }
        defer { device.withLock { $0 = nil } }
        logger.info("camera streaming", metadata: ["device": "\(path)", "card": "\(camera.card)", "mode": "\(session.mode)"])
        await state.set("camera", .running, "\(camera.card) at \(path): \(session.mode)")
        await withGracefulShutdownHandler {
            var sinceUpdate = 0
            for await frame in session.frames {
                await deliver(frame)
                sinceUpdate += 1
                if sinceUpdate >= 10 {
                    sinceUpdate = 0
                    let counters = session.counters
                    await state.updateCamera(CameraStatus(
                        source: path, width: session.mode.size.width, height: session.mode.size.height,
                        fps: Int((session.mode.interval?.framesPerSecond ?? 0).rounded()),
                        framesCaptured: counters.captured, framesDropped: session.dropped + counters.missed))
                }
            }
        } onGracefulShutdown: {
            Task { await session.stop() }
        }
        let failure = session.counters.failure
        await session.stop()
        droppedCounter.increment(by: Int64(session.dropped))
        missedCounter.increment(by: Int64(session.counters.missed))
        if let failure {
            disconnects.increment()
            throw failure
        }
    }

    private func deliver(_ frame: CapturedFrame) async {
        guard !stalled.load(ordering: .acquiring) else { return }
        latest.withLock { $0 = frame }
        frameCounter.increment()
        await progress()
    }

    private func progress() async {
        guard !stalled.load(ordering: .acquiring) else { return }
        await state.progress(Self.loopName)
    }

    // MARK: Test pattern

    private func runTestPattern(reason: String) async {
        var pattern = TestPattern(width: configuration.width, height: configuration.height, fps: configuration.fps)
        let period = Duration.seconds(1) / configuration.fps
        var deadline = ContinuousClock.now
        var captured: UInt64 = 0
        var dropped: UInt64 = 0
        await state.set("camera", .running, "test pattern \(pattern.mode.size) at \(configuration.fps) fps (\(reason))")
        logger.info("camera: built-in test pattern", metadata: ["mode": "\(pattern.mode)", "reason": "\(reason)"])
        while !Task.isShuttingDownGracefully {
            await deliver(pattern.nextFrame())
            captured += 1
            if captured % UInt64(configuration.fps) == 0 {
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

    // MARK: Snapshots and controls

    /// Writes the newest frame as a full-resolution JPEG into the evidence area and returns
    /// its path. JPEG work runs off the capture path.
    func snapshot() async throws -> SnapshotInfo {
        guard let frame = latest.withLock({ $0 }) else {
            throw HTTPError(.conflict, message: "no frame captured yet: is the camera streaming? (sightctl status)")
        }
        let jpeg = try SnapshotEncoder.jpeg(from: frame, encoder: try JPEGEncoder())
        let path = try evidence.store(jpeg, kind: "photo", extension: "jpg", sequence: frame.sequence)
        return SnapshotInfo(path: path, width: frame.mode.size.width, height: frame.mode.size.height,
                            sourceFormat: frame.mode.fourCC.description, bytes: jpeg.count)
    }

    func controls() throws -> [CameraControl] {
        guard let camera = device.withLock({ $0 }) else {
            throw HTTPError(.conflict, message: "no V4L2 camera is streaming (the test pattern has no controls)")
        }
        return try camera.controls()
    }

    func setControl(_ key: String, to value: Int64) throws -> Int64 {
        guard let camera = device.withLock({ $0 }) else {
            throw HTTPError(.conflict, message: "no V4L2 camera is streaming (the test pattern has no controls)")
        }
        return try camera.setControl(key, to: value)
    }
}
