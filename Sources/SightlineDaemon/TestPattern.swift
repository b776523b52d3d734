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
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        let seconds = Int(wall.tv_sec) % 86_400
        let time = String(format: "%02d:%02d:%02d.%03d", seconds / 3600, seconds / 60 % 60, seconds % 60, Int(wall.tv_nsec) / 1_000_000)
        DigitFont.draw("\(String(format: "%07u", sequence)) \(time)", into: &frame, width: mode.size.width, height: mode.size.height)
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

/// A 5x7 pixel font for the digits, ':' and '.', burned into the luma of a YUYV frame so a
/// viewer shows the frame counter and capture time (UTC) of the test pattern. Hand-written: the
/// text is a handful of fixed glyphs, no font library is needed for that.
enum DigitFont {
    /// Rows top to bottom, bit 4 = leftmost pixel.
    static let glyphs: [Character: [UInt8]] = [
        "0": [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], "1": [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        "2": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], "3": [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        "4": [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], "5": [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        "6": [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], "7": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        "8": [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], "9": [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ":": [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00], ".": [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        " ": [0, 0, 0, 0, 0, 0, 0],
    ]

    static func scale(height: Int) -> Int { max(1, height / 160) }

    /// Reads back the first `count` characters `draw` burned in, from the top-left corner of a
    /// luma plane (one byte per pixel, `width` bytes per row) of a `frameHeight`-high frame as a
    /// viewer decoded it; nil where a glyph is not recognisable. Each glyph pixel is sampled at
    /// its centre, so blocking from lossy coding does not matter.
    static func read(count: Int, luma: [UInt8], width: Int, frameHeight: Int) -> String? {
        let scale = scale(height: frameHeight)
        let height = luma.count / max(width, 1)
        var text = ""
        for index in 0..<count {
            var rows = [UInt8](repeating: 0, count: 7)
            for row in 0..<7 {
                for column in 0..<5 {
                    let x = scale + index * 6 * scale + column * scale + scale / 2
                    let y = scale + row * scale + scale / 2
                    guard x < width, y < height, y * width + x < luma.count else { return nil }
                    if luma[y * width + x] > 128 { rows[row] |= 0x10 >> UInt8(column) }
                }
            }
            guard let character = glyphs.first(where: { $0.value == rows })?.key else { return nil }
            text.append(character)
        }
        return text
    }

    /// Draws `text` white on a black box at the top left, scaled to about 1/24 of the height.
    static func draw(_ text: String, into frame: inout [UInt8], width: Int, height: Int) {
        let scale = scale(height: height)
        let advance = 6 * scale
        let boxWidth = min(width, text.count * advance + 2 * scale)
        let boxHeight = min(height, 9 * scale)
        for y in 0..<boxHeight {
            for x in 0..<boxWidth { frame[(y * width + x) * 2] = 16 }
        }
        for (index, character) in text.enumerated() {
            guard let rows = glyphs[character] else { continue }
            for (row, bits) in rows.enumerated() {
                for column in 0..<5 where bits & (0x10 >> UInt8(column)) != 0 {
                    for dy in 0..<scale {
                        for dx in 0..<scale {
                            let x = scale + index * advance + column * scale + dx
                            let y = scale + row * scale + dy
                            if x < width, y < height { frame[(y * width + x) * 2] = 235 }
                        }
                    }
                }
            }
        }
    }
}
