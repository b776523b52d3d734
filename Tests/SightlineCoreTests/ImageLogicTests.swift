import Testing
@testable import SightlineCore

@Suite("Planar YUV and JPEG metadata")
struct ImageLogicTests {
    @Test("YUYV splits into 4:2:2 planes, honouring the row stride")
    func yuyv() throws {
        // Two rows of 2 pixels, stride 6 (2 bytes of padding per row).
        let bytes: [UInt8] = [10, 20, 11, 30, 0, 0, 12, 21, 13, 31, 0, 0]
        let planes = try #require(PlanarYUV.fromYUYV(bytes, width: 2, height: 2, stride: 6))
        #expect(planes.y == [10, 11, 12, 13])
        #expect(planes.u == [20, 21])
        #expect(planes.v == [30, 31])
        #expect(planes.subsampling == .yuv422)
        #expect(PlanarYUV.fromYUYV(Array(bytes.prefix(9)), width: 2, height: 2, stride: 6) == nil)
        #expect(PlanarYUV.fromYUYV(bytes, width: 3, height: 2) == nil)
    }

    @Test("NV12 splits into 4:2:0 planes")
    func nv12() throws {
        let bytes: [UInt8] = [1, 2, 3, 4, /* UV */ 50, 60]
        let planes = try #require(PlanarYUV.fromNV12(bytes, width: 2, height: 2))
        #expect(planes.y == [1, 2, 3, 4])
        #expect(planes.u == [50])
        #expect(planes.v == [60])
        #expect(PlanarYUV.fromNV12(Array(bytes.prefix(5)), width: 2, height: 2) == nil)
    }

    @Test("EXIF (with location) and comments are stripped; JFIF and image data stay")
    func stripMetadata() throws {
        let app0: [UInt8] = [0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46]
        let exif: [UInt8] = [0xFF, 0xE1, 0x00, 0x06, 0x45, 0x78, 0x69, 0x66]
        let comment: [UInt8] = [0xFF, 0xFE, 0x00, 0x03, 0x41]
        let quantisation: [UInt8] = [0xFF, 0xDB, 0x00, 0x03, 0x01]
        let scan: [UInt8] = [0xFF, 0xDA, 0x00, 0x02, 0x11, 0x22, 0xFF, 0xD9]
        let jpeg: [UInt8] = [0xFF, 0xD8] + app0 + exif + comment + quantisation + scan
        #expect(JPEGMetadata.hasApplicationMetadata(jpeg))
        let clean = try #require(JPEGMetadata.strippingMetadata(jpeg))
        #expect(clean == [0xFF, 0xD8] + app0 + quantisation + scan)
        #expect(!JPEGMetadata.hasApplicationMetadata(clean))
        #expect(JPEGMetadata.strippingMetadata([0x00, 0x01, 0x02, 0x03]) == nil)
        #expect(JPEGMetadata.strippingMetadata([0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x40]) == nil)
    }
}
