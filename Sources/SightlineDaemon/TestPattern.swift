import Foundation
import SightlineCore

/// The built-in camera for machines without one: YUYV colour bars with a marker that walks
/// along the bottom edge, so motion and frame drops are visible downstream.
struct TestPattern {
    let mode: CameraMode
    private var frame: [UInt8]
    private var sequence: UInt32 = 0

    init(width: Int, height: Int, fps: Int) {
        let width = width & ~1
        mode = CameraMode(fourCC: .yuyv, size: FrameSize(width: width, height: height),
                          interval: FrameInterval(numerator: 1, denominator: UInt32(fps)))
        frame = Self.colourBars(width: width, height: height)
    }

    /// The next frame, stamped with the monotonic clock like a driver would.
    mutating func nextFrame() -> CapturedFrame {
        Self.moveMarker(in: &frame, width: mode.size.width, height: mode.size.height, frameNumber: UInt64(sequence))
        defer { sequence &+= 1 }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let timestamp = Duration.seconds(Int64(now.tv_sec)) + .nanoseconds(Int64(now.tv_nsec))
        return CapturedFrame(mode: mode, sequence: sequence, timestamp: timestamp, bytes: frame, missedBefore: 0)
    }

    /// BT.601 YUV of eight SMPTE-style bars: white, yellow, cyan, green, magenta, red, blue, black.
    static let bars: [(y: UInt8, u: UInt8, v: UInt8)] = [
        (235, 128, 128), (210, 16, 146), (170, 166, 16), (145, 54, 34),
        (106, 202, 222), (81, 90, 240), (41, 240, 110), (16, 128, 128),
    ]

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

    /// Paints the marker band anew each frame: bars restored, then a grey block at this frame's place.
    static func moveMarker(in frame: inout [UInt8], width: Int, height: Int, frameNumber: UInt64) {
        let size = max(8, height / 20) & ~1
        let travel = max(1, (width - size) / 2)
        let x = Int(frameNumber % UInt64(travel)) * 2
        for y in (height - size)..<height {
            for column in stride(from: 0, to: width, by: 2) {
                let offset = (y * width + column) * 2
                let luma: UInt8 = (x..<(x + size)).contains(column) ? 128 : bars[min(column * bars.count / width, bars.count - 1)].y
                frame[offset] = luma
                frame[offset + 2] = luma
            }
        }
    }
}
