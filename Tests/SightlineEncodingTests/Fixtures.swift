import CTurboJPEG
import SightlineCore
import SightlineTesting
@testable import SightlineEncoding

/// Synthetic camera frames: a diagonal gradient with a ring texture, both moving, so the
/// encoder has detail to spend bits on and motion to predict.
enum SyntheticFrames {
    static func luma(x: Int, y: Int, frame: Int) -> UInt8 {
        let gradient = (x + 3 * frame) * 160 / 1280 + (y + frame) * 60 / 720
        let dx = x - 640 - 4 * frame, dy = y - 360
        let ring = ((dx * dx + dy * dy) >> 9) & 0x1F
        return UInt8(clamping: 16 + gradient + ring)
    }

    static func chroma(x: Int, y: Int, frame: Int, phase: Int) -> UInt8 {
        UInt8(clamping: 96 + ((x + y + 2 * frame + phase) >> 4) & 0x3F)
    }

    static func lumaPlane(width: Int, height: Int, frame: Int) -> [UInt8] {
        var plane = [UInt8](repeating: 0, count: width * height)
        for y in 0..<height { for x in 0..<width { plane[y * width + x] = luma(x: x, y: y, frame: frame) } }
        return plane
    }

    static func i420(width: Int, height: Int, frame: Int) -> CapturedFrame {
        var bytes = lumaPlane(width: width, height: height, frame: frame)
        let chromaWidth = width / 2, chromaHeight = height / 2
        for phase in [0, 64] {
            for y in 0..<chromaHeight {
                for x in 0..<chromaWidth { bytes.append(chroma(x: 2 * x, y: 2 * y, frame: frame, phase: phase)) }
            }
        }
        return captured(.i420, width: width, height: height, frame: frame, bytes: bytes)
    }

    static func yuyv(width: Int, height: Int, frame: Int) -> CapturedFrame {
        var bytes = [UInt8](repeating: 0, count: width * height * 2)
        for y in 0..<height {
            for x in stride(from: 0, to: width, by: 2) {
                let offset = (y * width + x) * 2
                bytes[offset] = luma(x: x, y: y, frame: frame)
                bytes[offset + 1] = chroma(x: x, y: y, frame: frame, phase: 0)
                bytes[offset + 2] = luma(x: x + 1, y: y, frame: frame)
                bytes[offset + 3] = chroma(x: x, y: y, frame: frame, phase: 64)
            }
        }
        return captured(.yuyv, width: width, height: height, frame: frame, bytes: bytes)
    }

    /// NV12: the luma plane, then U and V interleaved at half width and half height.
    static func nv12(width: Int, height: Int, frame: Int) -> CapturedFrame {
        var bytes = lumaPlane(width: width, height: height, frame: frame)
        for y in 0..<(height / 2) {
            for x in 0..<(width / 2) {
                bytes.append(chroma(x: 2 * x, y: 2 * y, frame: frame, phase: 0))
                bytes.append(chroma(x: 2 * x, y: 2 * y, frame: frame, phase: 64))
            }
        }
        return captured(.nv12, width: width, height: height, frame: frame, bytes: bytes)
    }

    /// The 4:2:0 chroma plane a YUYV frame converts to: each pair of rows averaged, rounding up
    /// (what libyuv's `YUY2ToI420` computes). `phase` 0 is U, 64 is V.
    static func yuyvChroma420(width: Int, height: Int, frame: Int, phase: Int) -> [UInt8] {
        var plane: [UInt8] = []
        plane.reserveCapacity(width / 2 * height / 2)
        for y in 0..<(height / 2) {
            for x in 0..<(width / 2) {
                let top = Int(chroma(x: 2 * x, y: 2 * y, frame: frame, phase: phase))
                let bottom = Int(chroma(x: 2 * x, y: 2 * y + 1, frame: frame, phase: phase))
                plane.append(UInt8((top + bottom + 1) / 2))
            }
        }
        return plane
    }

    /// The chroma plane of `i420` and `nv12` frames. `phase` 0 is U, 64 is V.
    static func chroma420(width: Int, height: Int, frame: Int, phase: Int) -> [UInt8] {
        var plane: [UInt8] = []
        plane.reserveCapacity(width / 2 * height / 2)
        for y in 0..<(height / 2) {
            for x in 0..<(width / 2) { plane.append(chroma(x: 2 * x, y: 2 * y, frame: frame, phase: phase)) }
        }
        return plane
    }

    static func captured(_ fourCC: FourCC, width: Int, height: Int, frame: Int, bytes: [UInt8]) -> CapturedFrame {
        CapturedFrame(mode: CameraMode(fourCC: fourCC, size: FrameSize(width: width, height: height),
                                       interval: FrameInterval(numerator: 1, denominator: 30)),
                      sequence: UInt32(frame), timestamp: .milliseconds(1000 + frame * 33), bytes: bytes, missedBefore: 0)
    }
}

/// The mean absolute difference of two equally sized planes.
func meanAbsoluteDifference(_ a: [UInt8], _ b: [UInt8]) -> Double {
    precondition(a.count == b.count)
    var total = 0
    for index in a.indices { total += abs(Int(a[index]) - Int(b[index])) }
    return Double(total) / Double(max(a.count, 1))
}

/// Width and height from a JPEG header (`tjDecompressHeader3`), or nil when turbojpeg rejects it.
func jpegDimensions(_ jpeg: [UInt8]) -> (width: Int, height: Int)? {
    guard let handle = tjInitDecompress() else { return nil }
    defer { tjDestroy(handle) }
    var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
    let result = jpeg.withUnsafeBufferPointer {
        tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count), &width, &height, &subsampling, &colorspace)
    }
    return result == 0 ? (Int(width), Int(height)) : nil
}

/// The median of durations, in milliseconds.
func medianMilliseconds(_ durations: [Duration]) -> Double {
    let sorted = durations.sorted()
    guard !sorted.isEmpty else { return .nan }
    let middle = sorted[sorted.count / 2]
    return Double(middle.components.seconds) * 1000 + Double(middle.components.attoseconds) / 1e15
}
