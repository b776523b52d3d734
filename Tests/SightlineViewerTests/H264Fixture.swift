/// A tiny H.264 stream written bit by bit, so the WebCodecs tests need no encoder (ffmpeg is
/// not installed here). Constrained baseline, level 3.1, like the device's encoders: keyframes
/// are IDR pictures of I_PCM macroblocks (raw samples: lossless, so the test knows exactly
/// which colour each pixel must have) with SPS and PPS in front; delta frames are P pictures
/// whose macroblocks are all skipped (a copy of the previous picture).
struct H264Fixture {
    /// One macroblock's colour as Y, Cb, Cr samples.
    struct Color: Sendable, Equatable {
        let y: UInt8, cb: UInt8, cr: UInt8

        static let white = Color(y: 235, cb: 128, cr: 128)
        static let black = Color(y: 16, cb: 128, cr: 128)
        static let red = Color(y: 81, cb: 90, cr: 240)
        static let green = Color(y: 145, cb: 54, cr: 34)
        static let blue = Color(y: 41, cb: 240, cr: 110)
    }

    let widthInMacroblocks: Int
    let heightInMacroblocks: Int
    var width: Int { widthInMacroblocks * 16 }
    var height: Int { heightInMacroblocks * 16 }

    /// log2_max_frame_num: frame_num counts 0…15, then wraps.
    private let frameNumBits = 4

    /// Sequence and picture parameter sets (NAL units with Annex B start codes).
    var parameterSets: [UInt8] {
        var sps = BitWriter()
        sps.bits(66, 8)  // profile_idc: baseline
        sps.bits(0b1110_0000, 8)  // constraint_set0..2 (0xE0: "42E0" of avc1.42E01F)
        sps.bits(31, 8)  // level_idc 3.1
        sps.ue(0)  // seq_parameter_set_id
        sps.ue(UInt32(frameNumBits - 4))  // log2_max_frame_num_minus4
        sps.ue(2)  // pic_order_cnt_type 2: output order is decode order
        sps.ue(1)  // max_num_ref_frames
        sps.bit(false)  // gaps_in_frame_num_value_allowed_flag
        sps.ue(UInt32(widthInMacroblocks - 1))
        sps.ue(UInt32(heightInMacroblocks - 1))
        sps.bit(true)  // frame_mbs_only_flag
        sps.bit(true)  // direct_8x8_inference_flag
        sps.bit(false)  // frame_cropping_flag
        sps.bit(false)  // vui_parameters_present_flag
        sps.trailing()

        var pps = BitWriter()
        pps.ue(0)  // pic_parameter_set_id
        pps.ue(0)  // seq_parameter_set_id
        pps.bit(false)  // entropy_coding_mode_flag: CAVLC
        pps.bit(false)  // bottom_field_pic_order_in_frame_present_flag
        pps.ue(0)  // num_slice_groups_minus1
        pps.ue(0)  // num_ref_idx_l0_default_active_minus1
        pps.ue(0)  // num_ref_idx_l1_default_active_minus1
        pps.bit(false)  // weighted_pred_flag
        pps.bits(0, 2)  // weighted_bipred_idc
        pps.se(0)  // pic_init_qp_minus26
        pps.se(0)  // pic_init_qs_minus26
        pps.se(0)  // chroma_qp_index_offset
        pps.bit(true)  // deblocking_filter_control_present_flag
        pps.bit(false)  // constrained_intra_pred_flag
        pps.bit(false)  // redundant_pic_cnt_present_flag
        pps.trailing()

        return Self.nal(type: 7, sps.bytes) + Self.nal(type: 8, pps.bytes)
    }

    /// An access unit that starts a stream: SPS, PPS and an IDR picture with `color(mbX, mbY)`.
    func keyframe(idrPicID: UInt32, color: (Int, Int) -> Color) -> [UInt8] {
        var slice = BitWriter()
        slice.ue(0)  // first_mb_in_slice
        slice.ue(7)  // slice_type: I, all slices of the picture
        slice.ue(0)  // pic_parameter_set_id
        slice.bits(0, frameNumBits)  // frame_num
        slice.ue(idrPicID)  // idr_pic_id
        slice.bit(false)  // no_output_of_prior_pics_flag
        slice.bit(false)  // long_term_reference_flag
        slice.se(0)  // slice_qp_delta
        slice.ue(1)  // disable_deblocking_filter_idc: off, so PCM samples stay exact
        for mbY in 0..<heightInMacroblocks {
            for mbX in 0..<widthInMacroblocks {
                let sample = color(mbX, mbY)
                slice.ue(25)  // mb_type I_PCM
                slice.align()  // pcm_alignment_zero_bit
                for _ in 0..<256 { slice.bits(UInt32(sample.y), 8) }
                for _ in 0..<64 { slice.bits(UInt32(sample.cb), 8) }
                for _ in 0..<64 { slice.bits(UInt32(sample.cr), 8) }
            }
        }
        slice.trailing()
        return parameterSets + Self.nal(type: 5, slice.bytes)
    }

    /// A P picture that repeats the previous one (every macroblock skipped).
    func skippedFrame(frameNum: UInt32) -> [UInt8] {
        var slice = BitWriter()
        slice.ue(0)  // first_mb_in_slice
        slice.ue(5)  // slice_type: P, all slices of the picture
        slice.ue(0)  // pic_parameter_set_id
        slice.bits(frameNum % (1 << frameNumBits), frameNumBits)
        slice.bit(false)  // num_ref_idx_active_override_flag
        slice.bit(false)  // ref_pic_list_modification_flag_l0
        slice.bit(false)  // adaptive_ref_pic_marking_mode_flag
        slice.se(0)  // slice_qp_delta
        slice.ue(1)  // disable_deblocking_filter_idc
        slice.ue(UInt32(widthInMacroblocks * heightInMacroblocks))  // mb_skip_run: the whole picture
        slice.trailing()
        return Self.nal(type: 1, slice.bytes)
    }

    /// Start code, header (nal_ref_idc 3), and the payload with emulation prevention bytes.
    static func nal(type: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, 0, 0, 1, 0x60 | type]
        var zeros = 0
        for byte in payload {
            if zeros >= 2, byte <= 3 {
                out.append(3)
                zeros = 0
            }
            out.append(byte)
            zeros = byte == 0 ? zeros + 1 : 0
        }
        return out
    }
}

/// MSB-first bit writer with the Exp-Golomb codes of H.264 section 9.1.
struct BitWriter {
    private(set) var bytes: [UInt8] = []
    private var used = 0  // bits used in the last byte; 0 means start a new byte

    mutating func bit(_ value: Bool) {
        if used == 0 { bytes.append(0) }
        if value { bytes[bytes.count - 1] |= 0x80 >> UInt8(used) }
        used = (used + 1) % 8
    }

    mutating func bits(_ value: UInt32, _ count: Int) {
        for index in stride(from: count - 1, through: 0, by: -1) { bit((value >> UInt32(index)) & 1 == 1) }
    }

    mutating func ue(_ value: UInt32) {
        let coded = UInt64(value) + 1
        let length = 64 - coded.leadingZeroBitCount
        for _ in 0..<(length - 1) { bit(false) }
        for index in stride(from: length - 1, through: 0, by: -1) { bit((coded >> UInt64(index)) & 1 == 1) }
    }

    mutating func se(_ value: Int32) {
        ue(value > 0 ? UInt32(2 * value - 1) : UInt32(-2 * value))
    }

    mutating func align() {
        while used != 0 { bit(false) }
    }

    /// rbsp_trailing_bits: a one, then zeros to the byte boundary.
    mutating func trailing() {
        bit(true)
        align()
    }
}
