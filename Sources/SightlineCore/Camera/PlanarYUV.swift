/// Planar Y, U, V planes as JPEG encoders take them, split from the packed layouts cameras
/// deliver. Written by hand: libturbojpeg 2.1 accepts planar YUV only.
public struct PlanarYUV: Sendable, Equatable {
    public enum Subsampling: Sendable, Equatable {
        /// 4:2:2: chroma at half width, full height.
        case yuv422
        /// 4:2:0: chroma at half width and half height.
        case yuv420
    }

    public let width: Int
    public let height: Int
    public let subsampling: Subsampling
    public var y: [UInt8]
    public var u: [UInt8]
    public var v: [UInt8]

    public var chromaWidth: Int { (width + 1) / 2 }
    public var chromaHeight: Int { subsampling == .yuv422 ? height : (height + 1) / 2 }

    /// From packed YUYV 4:2:2 (Y0 U Y1 V per two pixels), `stride` bytes per row.
    public static func fromYUYV(_ bytes: [UInt8], width: Int, height: Int, stride: Int? = nil) -> PlanarYUV? {
        let stride = stride ?? width * 2
        guard width > 0, height > 0, width % 2 == 0, stride >= width * 2, bytes.count >= stride * (height - 1) + width * 2 else {
            return nil
        }
        var y = [UInt8](repeating: 0, count: width * height)
        var u = [UInt8](repeating: 0, count: width / 2 * height)
        var v = [UInt8](repeating: 0, count: width / 2 * height)
        for row in 0..<height {
            let source = row * stride
            for pair in 0..<(width / 2) {
                let offset = source + pair * 4
                y[row * width + pair * 2] = bytes[offset]
                u[row * width / 2 + pair] = bytes[offset + 1]
                y[row * width + pair * 2 + 1] = bytes[offset + 2]
                v[row * width / 2 + pair] = bytes[offset + 3]
            }
        }
        return PlanarYUV(width: width, height: height, subsampling: .yuv422, y: y, u: u, v: v)
    }

    /// From NV12 (a Y plane, then interleaved U/V at half resolution), `stride` bytes per row.
    public static func fromNV12(_ bytes: [UInt8], width: Int, height: Int, stride: Int? = nil) -> PlanarYUV? {
        let stride = stride ?? width
        let chromaWidth = (width + 1) / 2, chromaHeight = (height + 1) / 2
        guard width > 0, height > 0, stride >= width, bytes.count >= stride * height + stride * (chromaHeight - 1) + chromaWidth * 2 else {
            return nil
        }
        var y = [UInt8](repeating: 0, count: width * height)
        for row in 0..<height {
            y.replaceSubrange(row * width..<(row + 1) * width, with: bytes[row * stride..<row * stride + width])
        }
        var u = [UInt8](repeating: 0, count: chromaWidth * chromaHeight)
        var v = [UInt8](repeating: 0, count: chromaWidth * chromaHeight)
        let chromaStart = stride * height
        for row in 0..<chromaHeight {
            for column in 0..<chromaWidth {
                let offset = chromaStart + row * stride + column * 2
                u[row * chromaWidth + column] = bytes[offset]
                v[row * chromaWidth + column] = bytes[offset + 1]
            }
        }
        return PlanarYUV(width: width, height: height, subsampling: .yuv420, y: y, u: u, v: v)
    }
}

/// JPEG marker handling for snapshots taken straight from an MJPEG camera.
public enum JPEGMetadata {
    /// Removes APP1…APP15 segments (EXIF with GPS, XMP, maker notes …) and comments, keeping
    /// APP0 (JFIF) and everything the decoder needs. Returns nil when `jpeg` is not a JPEG.
    public static func strippingMetadata(_ jpeg: [UInt8]) -> [UInt8]? {
        guard jpeg.count >= 4, jpeg[0] == 0xFF, jpeg[1] == 0xD8 else { return nil }
        var output: [UInt8] = [0xFF, 0xD8]
        var index = 2
        while index + 4 <= jpeg.count {
            guard jpeg[index] == 0xFF else { return nil }
            let marker = jpeg[index + 1]
            if marker == 0xDA {  // Start of scan: the entropy-coded data follows to the end.
                output.append(contentsOf: jpeg[index...])
                return output
            }
            let length = Int(jpeg[index + 2]) << 8 | Int(jpeg[index + 3])
            guard length >= 2, index + 2 + length <= jpeg.count else { return nil }
            let isMetadata = (0xE1...0xEF).contains(marker) || marker == 0xFE
            if !isMetadata { output.append(contentsOf: jpeg[index..<(index + 2 + length)]) }
            index += 2 + length
        }
        return nil
    }

    /// Whether the JPEG carries an APP1 (EXIF/XMP) segment.
    public static func hasApplicationMetadata(_ jpeg: [UInt8]) -> Bool {
        var index = 2
        while index + 4 <= jpeg.count, jpeg[index] == 0xFF, jpeg[index + 1] != 0xDA {
            if (0xE1...0xEF).contains(jpeg[index + 1]) { return true }
            index += 2 + (Int(jpeg[index + 2]) << 8 | Int(jpeg[index + 3]))
        }
        return false
    }
}
