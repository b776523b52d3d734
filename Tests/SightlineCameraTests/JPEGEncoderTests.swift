import Testing
@testable import SightlineCamera
@testable import SightlineCore

@Suite("JPEG encoding with libturbojpeg")
struct JPEGEncoderTests {
    /// Reads width and height from the baseline/progressive frame header (SOF0…SOF2).
    static func dimensions(of jpeg: [UInt8]) -> (width: Int, height: Int)? {
        var index = 2
        while index + 9 < jpeg.count, jpeg[index] == 0xFF {
            let marker = jpeg[index + 1]
            if (0xC0...0xC2).contains(marker) {
                return (Int(jpeg[index + 7]) << 8 | Int(jpeg[index + 8]), Int(jpeg[index + 5]) << 8 | Int(jpeg[index + 6]))
            }
            index += 2 + (Int(jpeg[index + 2]) << 8 | Int(jpeg[index + 3]))
        }
        return nil
    }

    static func frame(_ fourCC: FourCC, width: Int, height: Int, bytes: [UInt8]) -> CapturedFrame {
        CapturedFrame(mode: CameraMode(fourCC: fourCC, size: FrameSize(width: width, height: height), interval: nil),
                      sequence: 1, timestamp: .zero, bytes: bytes, missedBefore: 0)
    }

    @Test("YUYV and NV12 frames become full-resolution JPEGs without metadata", arguments: [FourCC.yuyv, FourCC.nv12])
    func encode(fourCC: FourCC) throws {
        let width = 640, height = 360
        let size = fourCC == .yuyv ? width * height * 2 : width * height * 3 / 2
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 / 7) }
        let jpeg = try SnapshotEncoder.jpeg(from: Self.frame(fourCC, width: width, height: height, bytes: bytes), encoder: JPEGEncoder())
        #expect(jpeg.prefix(2) == [0xFF, 0xD8])
        #expect(jpeg.suffix(2) == [0xFF, 0xD9])
        #expect(Self.dimensions(of: jpeg)?.width == width)
        #expect(Self.dimensions(of: jpeg)?.height == height)
        #expect(!JPEGMetadata.hasApplicationMetadata(jpeg))
    }

    @Test("a frame too short for its size is refused, not encoded from garbage")
    func shortFrame() {
        #expect(throws: SnapshotEncoder.Unsupported.self) {
            try SnapshotEncoder.jpeg(from: Self.frame(.yuyv, width: 640, height: 360, bytes: [0, 1, 2]), encoder: JPEGEncoder())
        }
    }
}
