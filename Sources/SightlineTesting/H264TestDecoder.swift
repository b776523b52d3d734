import COpenH264

/// OpenH264's decoder (`WelsCreateDecoder`, `DecodeFrameNoDelay`): a second implementation that
/// has to accept the encoder's bitstream, which proves it valid beyond the NAL headers.
/// Shared by the encoder tests and the lab's camera passthrough tests.
public final class H264TestDecoder {
    public struct Failure: Error, CustomStringConvertible { public let description: String }
    /// Tightly packed planes; `u` and `v` are (width / 2) x (height / 2).
    public struct Picture { public let width: Int; public let height: Int; public let luma: [UInt8]; public let u: [UInt8]; public let v: [UInt8] }

    private let handle: UnsafeMutablePointer<ISVCDecoder?>

    public init() throws {
        var created: UnsafeMutablePointer<ISVCDecoder?>?
        guard WelsCreateDecoder(&created) == 0, let created else { throw Failure(description: "WelsCreateDecoder failed") }
        var parameters = SDecodingParam()
        parameters.sVideoProperty.eVideoBsType = VIDEO_BITSTREAM_AVC
        guard copenh264_decoder_initialize(created, &parameters) == 0 else {
            WelsDestroyDecoder(created)
            throw Failure(description: "decoder Initialize failed")
        }
        handle = created
    }

    deinit {
        _ = copenh264_decoder_uninitialize(handle)
        WelsDestroyDecoder(handle)
    }

    /// Decodes one access unit; nil when the decoder has no picture to show yet.
    public func decode(_ accessUnit: [UInt8]) throws -> Picture? {
        var planes: [UnsafeMutablePointer<UInt8>?] = [nil, nil, nil]
        var info = SBufferInfo()
        let state = accessUnit.withUnsafeBufferPointer { buffer in
            copenh264_decoder_decode(handle, buffer.baseAddress, Int32(buffer.count), &planes, &info)
        }
        guard state == dsErrorFree else { throw Failure(description: "DecodeFrameNoDelay: state \(state.rawValue)") }
        guard info.iBufferStatus == 1, let luma = planes[0], let u = planes[1], let v = planes[2] else { return nil }
        let width = Int(info.UsrData.sSystemBuffer.iWidth), height = Int(info.UsrData.sSystemBuffer.iHeight)
        let lumaStride = Int(info.UsrData.sSystemBuffer.iStride.0), chromaStride = Int(info.UsrData.sSystemBuffer.iStride.1)
        return Picture(width: width, height: height,
                       luma: Self.packed(luma, stride: lumaStride, width: width, height: height),
                       u: Self.packed(u, stride: chromaStride, width: width / 2, height: height / 2),
                       v: Self.packed(v, stride: chromaStride, width: width / 2, height: height / 2))
    }

    private static func packed(_ plane: UnsafeMutablePointer<UInt8>, stride: Int, width: Int, height: Int) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(width * height)
        for row in 0..<height { output.append(contentsOf: UnsafeBufferPointer(start: plane + row * stride, count: width)) }
        return output
    }
}
