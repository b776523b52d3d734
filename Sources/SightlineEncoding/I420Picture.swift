internal import CTurboJPEG
internal import CYUV
import SightlineCore

/// A 4:2:0 picture as OpenH264 takes it (`videoFormatI420`): the Y plane, then U, then V, each
/// tightly packed, back to back in one buffer. That is the layout of a `YU12` frame, so those are
/// used as they come, without a copy.
///
/// YUYV and NV12 are converted by libyuv (`YUY2ToI420`, `NV12ToI420`), and MJPEG chroma is
/// resampled by its `ScalePlane`. libyuv rather than Swift loops because it picks SSE2/AVX2 (NEON
/// on ARM) row functions at run time and Debian ships it optimised, so conversion is fast in any
/// build of Sightline. The tests and the daemon under test run debug builds, where the per-pixel
/// Swift this replaced took 25 ms for one 720p YUYV frame, three times the 8 ms encode budget.
/// Scaling to the coded size stays with OpenH264.
struct I420Picture {
    let width: Int
    let height: Int
    /// Y, U, V. Longer than `lumaByteCount + 2 * chromaByteCount` when a YU12 frame has padding at its end.
    let bytes: [UInt8]

    var chromaWidth: Int { (width + 1) / 2 }
    var chromaHeight: Int { (height + 1) / 2 }
    var lumaByteCount: Int { width * height }
    var chromaByteCount: Int { chromaWidth * chromaHeight }

    /// The longest side taken, so that libyuv's `int` strides and sizes cannot overflow.
    static let maximumSide = 16384

    private init(width: Int, height: Int, bytes: [UInt8]) {
        self.width = width
        self.height = height
        self.bytes = bytes
    }

    /// A new picture whose three planes `fill` writes completely: it gets the Y, U and V planes
    /// (strides `width`, `chromaWidth`, `chromaWidth`) and returns libyuv's result, 0 on success.
    /// Nil when `fill` fails.
    init?(width: Int, height: Int,
          fill: (_ y: UnsafeMutablePointer<UInt8>, _ u: UnsafeMutablePointer<UInt8>, _ v: UnsafeMutablePointer<UInt8>) -> Int32) {
        let lumaCount = width * height, chromaCount = ((width + 1) / 2) * ((height + 1) / 2)
        var result: Int32 = -1
        // Uninitialized: libyuv writes every byte, and zero-filling 1.4 MB per 720p frame is wasted work.
        let bytes = [UInt8](unsafeUninitializedCapacity: lumaCount + 2 * chromaCount) { buffer, initializedCount in
            guard let base = buffer.baseAddress else { return }
            result = fill(base, base + lumaCount, base + lumaCount + chromaCount)
            initializedCount = lumaCount + 2 * chromaCount
        }
        guard result == 0 else { return nil }
        self.init(width: width, height: height, bytes: bytes)
    }

    /// Converts any input the H.264 encoder takes. MJPEG needs `jpegDecoder`, made on first use.
    static func from(_ frame: CapturedFrame, jpegDecoder: () throws(EncoderError) -> JPEGPlaneDecoder) throws(EncoderError) -> I420Picture {
        let fourCC = frame.mode.fourCC, width = frame.mode.size.width, height = frame.mode.size.height
        let malformed = EncoderError.malformedFrame(fourCC, byteCount: frame.bytes.count, width: width, height: height)
        let sizeFits = width > 0 && height > 0 && width <= maximumSide && height <= maximumSide
        let chromaWidth = (width + 1) / 2, chromaHeight = (height + 1) / 2
        switch fourCC {
        case .yuyv:
            // Y0 U Y1 V: one U and one V for each pair of pixels, so the width is even.
            guard sizeFits, width % 2 == 0, frame.bytes.count >= 2 * width * height else { throw malformed }
            let picture = frame.bytes.withUnsafeBufferPointer { source in
                I420Picture(width: width, height: height) { y, u, v in
                    YUY2ToI420(source.baseAddress, Int32(2 * width), y, Int32(width), u, Int32(chromaWidth), v, Int32(chromaWidth),
                               Int32(width), Int32(height))
                }
            }
            guard let picture else { throw malformed }
            return picture
        case .nv12:
            // V4L2 gives both planes one `bytesperline`, the width; whole U/V pairs need it even.
            guard sizeFits, width % 2 == 0, frame.bytes.count >= width * (height + chromaHeight) else { throw malformed }
            let picture = frame.bytes.withUnsafeBufferPointer { source in
                I420Picture(width: width, height: height) { y, u, v in
                    guard let luma = source.baseAddress else { return -1 }
                    return NV12ToI420(luma, Int32(width), luma + width * height, Int32(width),
                                      y, Int32(width), u, Int32(chromaWidth), v, Int32(chromaWidth), Int32(width), Int32(height))
                }
            }
            guard let picture else { throw malformed }
            return picture
        case .i420:
            guard sizeFits, frame.bytes.count >= width * height + 2 * chromaWidth * chromaHeight else { throw malformed }
            return I420Picture(width: width, height: height, bytes: frame.bytes)
        case .mjpeg, .jpeg:
            return try jpegDecoder().decode(frame.bytes, fourCC: fourCC)
        default:
            throw .unsupportedInput(fourCC, codec: .h264)
        }
    }

    /// A picture from a decoded JPEG's planes in `decoded` (turbojpeg's layout: each plane at
    /// `offsets[index]` with the stride of its width in `sizes`). Luma is copied (`CopyPlane`);
    /// chroma is box-resampled to 4:2:0 (`ScalePlane`): averaged where the JPEG's is larger
    /// (4:4:4, 4:2:2, 4:4:0), interpolated where it is smaller (4:1:1). A grey JPEG gets neutral
    /// chroma (`I400ToI420`).
    fileprivate init?(width: Int, height: Int, decoded: UnsafeBufferPointer<UInt8>,
                      sizes: [(width: Int, height: Int)], offsets: [Int]) {
        guard let base = decoded.baseAddress, let luma = sizes.first, luma.width >= width, luma.height >= height,
              sizes.count == 1 || sizes.count == 3, sizes.count == offsets.count,
              width <= Self.maximumSide, height <= Self.maximumSide else { return nil }
        let chromaWidth = Int32((width + 1) / 2), chromaHeight = Int32((height + 1) / 2)
        self.init(width: width, height: height) { y, u, v in
            guard sizes.count == 3 else {
                return I400ToI420(base, Int32(luma.width), y, Int32(width), u, chromaWidth, v, chromaWidth, Int32(width), Int32(height))
            }
            CopyPlane(base, Int32(luma.width), y, Int32(width), Int32(width), Int32(height))
            let chroma = sizes[1]
            for (plane, offset) in [(u, offsets[1]), (v, offsets[2])] {
                ScalePlane(base + offset, Int32(chroma.width), Int32(chroma.width), Int32(chroma.height),
                           plane, chromaWidth, chromaWidth, chromaHeight, kFilterBox)
            }
            return 0
        }
    }
}

/// Decodes MJPEG frames to planar YUV with libturbojpeg (`tjDecompressToYUVPlanes`), so the
/// H.264 encoder can take MJPEG cameras. Owns its turbojpeg handle; one per encoder, never shared.
final class JPEGPlaneDecoder {
    private let handle: tjhandle

    init() throws(EncoderError) {
        guard let handle = tjInitDecompress() else { throw .jpeg("cannot create a decompressor (out of memory?)") }
        self.handle = handle
    }

    deinit { tjDestroy(handle) }

    func decode(_ jpeg: [UInt8], fourCC: FourCC) throws(EncoderError) -> I420Picture {
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let header = jpeg.withUnsafeBufferPointer { buffer in
            tjDecompressHeader3(handle, buffer.baseAddress, UInt(buffer.count), &width, &height, &subsampling, &colorspace)
        }
        guard header == 0, width > 0, height > 0 else {
            throw .malformedFrame(fourCC, byteCount: jpeg.count, width: Int(width), height: Int(height))
        }
        let isGray = subsampling == Int32(TJSAMP_GRAY.rawValue)
        let planeCount = isGray ? 1 : 3
        var planeSizes: [(width: Int, height: Int)] = []
        for component in 0..<planeCount {
            let planeWidth = tjPlaneWidth(Int32(component), width, subsampling)
            let planeHeight = tjPlaneHeight(Int32(component), height, subsampling)
            guard planeWidth > 0, planeHeight > 0 else { throw .jpeg("JPEG with subsampling \(subsampling) is not supported") }
            planeSizes.append((Int(planeWidth), Int(planeHeight)))
        }
        // One buffer for all planes, so turbojpeg gets its `unsigned char **` from a single borrow.
        let offsets = planeSizes.indices.map { index in planeSizes[..<index].reduce(0) { $0 + $1.width * $1.height } }
        let total = planeSizes.reduce(0) { $0 + $1.width * $1.height }
        var buffer = [UInt8](repeating: 128, count: total)
        var strides = planeSizes.map { Int32($0.width) }
        let result = buffer.withUnsafeMutableBufferPointer { planesBuffer in
            var pointers: [UnsafeMutablePointer<UInt8>?] = offsets.map { offset in planesBuffer.baseAddress.map { $0 + offset } }
            return jpeg.withUnsafeBufferPointer { source in
                tjDecompressToYUVPlanes(handle, source.baseAddress, UInt(source.count), &pointers, width, &strides, height, TJFLAG_FASTDCT)
            }
        }
        // Corrupt-data warnings (result -1 with TJERR_WARNING) still produce a usable picture.
        if result != 0, tjGetErrorCode(handle) != Int32(TJERR_WARNING.rawValue) {
            throw .jpeg("cannot decode a \(width)x\(height) MJPEG frame: \(String(cString: tjGetErrorStr2(handle)))")
        }
        let picture = buffer.withUnsafeBufferPointer { decoded in
            I420Picture(width: Int(width), height: Int(height), decoded: decoded, sizes: planeSizes, offsets: offsets)
        }
        guard let picture else { throw .malformedFrame(fourCC, byteCount: jpeg.count, width: Int(width), height: Int(height)) }
        return picture
    }
}
