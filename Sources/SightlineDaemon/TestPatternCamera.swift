import Logging
import Metrics
import ServiceLifecycle
import SightlineCore
import Synchronization

/// The built-in camera for machines without one: a YUYV colour-bar frame with a moving marker,
/// produced at the configured rate on the wall clock. It is a main loop like a real capture
/// loop, so it reports progress to the watchdog and can be stalled on purpose in tests.
public final class TestPatternCamera: Service, Sendable {
    private let state: DaemonState
    private let width: Int
    private let height: Int
    private let fps: Int
    private let logger: Logger
    private let stalled = Mutex(false)
    static let loopName = "camera"

    public init(state: DaemonState, width: Int, height: Int, fps: Int, logger: Logger) {
        self.state = state
        self.width = width
        self.height = height
        self.fps = fps
        self.logger = logger
    }

    /// Fault injection: the loop stops producing frames while pretending to be alive.
    public func stall() { stalled.withLock { $0 = true } }

    public func run() async throws {
        let frames = Counter(label: "sightline_camera_frames_total", dimensions: [("source", "test-pattern")])
        let drops = Counter(label: "sightline_camera_frames_dropped_total", dimensions: [("source", "test-pattern")])
        var frame = TestPattern.colourBars(width: width, height: height)
        let period = Duration.seconds(1) / fps
        var deadline = ContinuousClock.now
        var captured: UInt64 = 0
        var dropped: UInt64 = 0
        await state.registerLoop(Self.loopName)
        await state.set("camera", .running, "test pattern \(width)x\(height) at \(fps) fps (no camera configured or found)")
        logger.info("camera: built-in test pattern", metadata: ["size": "\(width)x\(height)", "fps": "\(fps)"])
        while !Task.isShuttingDownGracefully {
            if stalled.withLock({ $0 }) {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            TestPattern.moveMarker(in: &frame, width: width, height: height, frameNumber: captured)
            captured += 1
            frames.increment()
            await state.progress(Self.loopName)
            if captured % UInt64(fps) == 0 {
                await state.updateCamera(CameraStatus(source: "test-pattern", width: width, height: height, fps: fps,
                                                      framesCaptured: captured, framesDropped: dropped))
            }
            deadline += period
            let now = ContinuousClock.now
            if now > deadline + period {
                // Behind by more than a frame: skip the missed slots instead of bursting.
                let missed = UInt64((now - deadline) / period)
                dropped += missed
                drops.increment(by: Int64(missed))
                deadline = now
            }
            try? await Task.sleep(until: deadline, clock: .continuous)
        }
        await state.unregisterLoop(Self.loopName)
        await state.set("camera", .stopped, "shut down")
    }
}

/// Pixel work for the test pattern, kept apart so it is testable without a clock.
enum TestPattern {
    /// BT.601 YUV of the eight SMPTE-style bars: white, yellow, cyan, green, magenta, red, blue, black.
    static let bars: [(y: UInt8, u: UInt8, v: UInt8)] = [
        (235, 128, 128), (210, 16, 146), (170, 166, 16), (145, 54, 34),
        (106, 202, 222), (81, 90, 240), (41, 240, 110), (16, 128, 128),
    ]

    /// A packed YUYV 4:2:2 frame of vertical bars.
    static func colourBars(width: Int, height: Int) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: width * height * 2)
        for x in stride(from: 0, to: width, by: 2) {
            let bar = bars[min(x * bars.count / width, bars.count - 1)]
            for y in 0..<height {
                let offset = (y * width + x) * 2
                frame[offset] = bar.y
                frame[offset + 1] = bar.u
                frame[offset + 2] = bar.y
                frame[offset + 3] = bar.v
            }
        }
        return frame
    }

    /// Draws a small grey marker that walks along the bottom edge, so motion is visible.
    static func moveMarker(in frame: inout [UInt8], width: Int, height: Int, frameNumber: UInt64) {
        let size = max(8, height / 20)
        let x = Int(frameNumber % UInt64(max(1, width / 2 - size / 2))) * 2
        for y in (height - size)..<height {
            for dx in 0..<size where x + dx < width {
                frame[(y * width + x + dx) * 2] = UInt8(truncatingIfNeeded: 128 + Int(frameNumber % 64))
            }
        }
    }
}
