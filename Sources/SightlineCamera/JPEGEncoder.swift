import CTurboJPEG
import SightlineCore

/// Compresses planar YUV to JPEG with libturbojpeg (`tjCompressFromYUVPlanes`). One encoder
/// per thread: a turbojpeg handle is not safe to share.
public final class JPEGEncoder {
    private let handle: tjhandle

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init() throws(Failure) {
        guard let handle = tjInitCompress() else { throw Failure(description: "libturbojpeg: cannot create a compressor") }
        self.handle = handle
    }

    deinit { tjDestroy(handle) }

    /// - Parameter quality: 1…100.
    public func encode(_ image: PlanarYUV, quality: Int32 = 90) throws(Failure) -> [UInt8] {
        let subsampling = image.subsampling == .yuv422 ? Int32(TJSAMP_422.rawValue) : Int32(TJSAMP_420.rawValue)
        var strides: [Int32] = [Int32(image.width), Int32(image.chromaWidth), Int32(image.chromaWidth)]
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let result = image.y.withUnsafeBufferPointer { y in
            image.u.withUnsafeBufferPointer { u in
                image.v.withUnsafeBufferPointer { v in
                    var planes: [UnsafePointer<UInt8>?] = [y.baseAddress, u.baseAddress, v.baseAddress]
                    return tjCompressFromYUVPlanes(handle, &planes, Int32(image.width), &strides, Int32(image.height),
                                                   subsampling, &output, &size, quality, TJFLAG_FASTDCT)
                }
            }
        }
        defer { if let output { tjFree(output) } }
        guard result == 0, let output else {
            throw Failure(description: "libturbojpeg: \(String(cString: tjGetErrorStr2(handle)))")
        }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }
}

/// Turns a captured frame into a full-resolution JPEG without location or other metadata:
/// MJPEG frames pass through with their APPn segments removed, YUYV and NV12 are compressed.
public enum SnapshotEncoder {
    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
    }

    public static func jpeg(from frame: CapturedFrame, encoder: JPEGEncoder) throws -> [UInt8] {
        let size = frame.mode.size
        switch frame.mode.fourCC {
        case .mjpeg, .jpeg:
            guard let clean = JPEGMetadata.strippingMetadata(frame.bytes) else {
                throw Unsupported(description: "the camera delivered a damaged JPEG frame")
            }
            return clean
        case .yuyv:
            guard let planes = PlanarYUV.fromYUYV(frame.bytes, width: size.width, height: size.height) else {
                throw Unsupported(description: "YUYV frame of \(frame.bytes.count) bytes is too short for \(size)")
            }
            return try encoder.encode(planes)
        case .nv12:
            guard let planes = PlanarYUV.fromNV12(frame.bytes, width: size.width, height: size.height) else {
                throw Unsupported(description: "NV12 frame of \(frame.bytes.count) bytes is too short for \(size)")
            }
            return try encoder.encode(planes)
        default:
            throw Unsupported(description: "snapshots from \(frame.mode.fourCC) frames are not supported; prefer mjpeg, yuyv or nv12")
        }
    }
}
