internal import CTurboJPEG
import SightlineCore

/// A 4:2:0 picture in three tightly packed planes: what OpenH264 takes (`videoFormatI420`).
///
/// Its own type because `PlanarYUV` has no public initializer; the packed-to-planar work is
/// still `PlanarYUV`'s, this only adds the 4:2:2 → 4:2:0 step and the MJPEG decode.
struct I420Picture {
    let width: Int
    let height: Int
    var y: [UInt8]
    var u: [UInt8]
    var v: [UInt8]

    var chromaWidth: Int { (width + 1) / 2 }
    var chromaHeight: Int { (height + 1) / 2 }

    init(width: Int, height: Int, y: [UInt8], u: [UInt8], v: [UInt8]) {
        self.width = width
        self.height = height
        self.y = y
        self.u = u
        self.v = v
    }

    /// From `PlanarYUV`: 4:2:0 planes are taken as they are, 4:2:2 chroma is averaged over row pairs.
    init(_ planes: PlanarYUV) {
        width = planes.width
        height = planes.height
        y = planes.y
        switch planes.subsampling {
        case .yuv420:
            u = planes.u
            v = planes.v
        case .yuv422:
            let chromaWidth = planes.chromaWidth
            u = Self.halvingRows(planes.u, width: chromaWidth, height: planes.height)
            v = Self.halvingRows(planes.v, width: chromaWidth, height: planes.height)
        }
    }

    /// Converts any input the H.264 encoder takes. MJPEG needs `jpegDecoder`, made on first use.
    static func from(_ frame: CapturedFrame, jpegDecoder: () throws(EncoderError) -> JPEGPlaneDecoder) throws(EncoderError) -> I420Picture {
        let fourCC = frame.mode.fourCC, width = frame.mode.size.width, height = frame.mode.size.height
        let malformed = EncoderError.malformedFrame(fourCC, byteCount: frame.bytes.count, width: width, height: height)
        switch fourCC {
        case .yuyv:
            guard let planes = PlanarYUV.fromYUYV(frame.bytes, width: width, height: height) else { throw malformed }
            return I420Picture(planes)
        case .nv12:
            guard let planes = PlanarYUV.fromNV12(frame.bytes, width: width, height: height) else { throw malformed }
            return I420Picture(planes)
        case .i420:
            let lumaCount = width * height, chromaCount = ((width + 1) / 2) * ((height + 1) / 2)
            guard width > 0, height > 0, frame.bytes.count >= lumaCount + 2 * chromaCount else { throw malformed }
            return I420Picture(width: width, height: height,
                               y: Array(frame.bytes[0..<lumaCount]),
                               u: Array(frame.bytes[lumaCount..<(lumaCount + chromaCount)]),
                               v: Array(frame.bytes[(lumaCount + chromaCount)..<(lumaCount + 2 * chromaCount)]))
        case .mjpeg, .jpeg:
            return try jpegDecoder().decode(frame.bytes, fourCC: fourCC)
        default:
            throw .unsupportedInput(fourCC, codec: .h264)
        }
    }

    /// Averages each pair of rows (the last row of an odd height stands alone).
    private static func halvingRows(_ plane: [UInt8], width: Int, height: Int) -> [UInt8] {
        let outputHeight = (height + 1) / 2
        var output = [UInt8](repeating: 0, count: width * outputHeight)
        plane.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                for row in 0..<outputHeight {
                    let top = 2 * row * width, bottom = min(2 * row + 1, height - 1) * width
                    for column in 0..<width {
                        target[row * width + column] = UInt8((UInt16(source[top + column]) + UInt16(source[bottom + column]) + 1) / 2)
                    }
                }
            }
        }
        return output
    }

    /// Box-resamples a chroma plane to the 4:2:0 size: averages when the JPEG's chroma is larger
    /// (4:4:4, 4:2:2, 4:4:0), repeats samples when it is smaller (4:1:1).
    static func resampled(_ plane: [UInt8], width: Int, height: Int, toWidth: Int, toHeight: Int) -> [UInt8] {
        if width == toWidth, height == toHeight { return plane }
        var output = [UInt8](repeating: 0, count: toWidth * toHeight)
        plane.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                for row in 0..<toHeight {
                    let rowStart = row * height / toHeight, rowEnd = max(rowStart + 1, (row + 1) * height / toHeight)
                    for column in 0..<toWidth {
                        let columnStart = column * width / toWidth, columnEnd = max(columnStart + 1, (column + 1) * width / toWidth)
                        var sum = 0
                        for sourceRow in rowStart..<rowEnd {
                            for sourceColumn in columnStart..<columnEnd { sum += Int(source[sourceRow * width + sourceColumn]) }
                        }
                        let count = (rowEnd - rowStart) * (columnEnd - columnStart)
                        target[row * toWidth + column] = UInt8((sum + count / 2) / count)
                    }
                }
            }
        }
        return output
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
        let planes = planeSizes.indices.map { Array(buffer[offsets[$0]..<(offsets[$0] + planeSizes[$0].width * planeSizes[$0].height)]) }
        // Corrupt-data warnings (result -1 with TJERR_WARNING) still produce a usable picture.
        if result != 0, tjGetErrorCode(handle) != Int32(TJERR_WARNING.rawValue) {
            throw .jpeg("cannot decode a \(width)x\(height) MJPEG frame: \(String(cString: tjGetErrorStr2(handle)))")
        }
        let chromaWidth = (Int(width) + 1) / 2, chromaHeight = (Int(height) + 1) / 2
        guard !isGray else {
            let neutral = [UInt8](repeating: 128, count: chromaWidth * chromaHeight)
            return I420Picture(width: Int(width), height: Int(height), y: planes[0], u: neutral, v: neutral)
        }
        let chroma = planeSizes[1]
        return I420Picture(
            width: Int(width), height: Int(height), y: planes[0],
            u: I420Picture.resampled(planes[1], width: chroma.width, height: chroma.height, toWidth: chromaWidth, toHeight: chromaHeight),
            v: I420Picture.resampled(planes[2], width: chroma.width, height: chroma.height, toWidth: chromaWidth, toHeight: chromaHeight))
    }
}
