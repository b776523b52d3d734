/// H.264 Annex-B byte streams: NAL units behind `00 00 01` or `00 00 00 01` start codes.
///
/// Hand-written because no library the project lists parses H.264 NAL units (OpenH264 only
/// encodes and decodes whole pictures); the format is small and every path here is unit tested.
public enum AnnexB {
    /// `nal_unit_type` values the encoders care about (H.264 table 7-1).
    public enum NALType {
        public static let nonIDRSlice: UInt8 = 1
        public static let idrSlice: UInt8 = 5
        public static let sei: UInt8 = 6
        public static let sps: UInt8 = 7
        public static let pps: UInt8 = 8
        public static let accessUnitDelimiter: UInt8 = 9
    }

    /// One NAL unit: where it sits in the stream, start code excluded.
    public struct NALUnit: Sendable, Equatable {
        /// `nal_unit_type`, the low five bits of the header byte.
        public let type: UInt8
        /// Header byte through the last payload byte; trailing zero bytes belong to the next start code.
        public let range: Range<Int>
        /// Where its start code begins, so a caller can copy the unit with its start code.
        public let startCodeOffset: Int
    }

    /// The NAL units of `stream` in order. Bytes before the first start code, empty units and
    /// units with the forbidden bit set are skipped, so garbage yields no units rather than a trap.
    public static func nalUnits(in stream: [UInt8]) -> [NALUnit] {
        nalUnits(in: stream, stoppingAtFirstSlice: false)
    }

    /// The NAL units in front of the first slice (delimiter, SPS, PPS, SEI): where an access
    /// unit carries its parameter sets. Stops at the slice's start code instead of reading
    /// through the picture's bytes, for a caller that looks at every frame of a stream.
    public static func unitsBeforeFirstSlice(in stream: [UInt8]) -> [NALUnit] {
        nalUnits(in: stream, stoppingAtFirstSlice: true)
    }

    private static func nalUnits(in stream: [UInt8], stoppingAtFirstSlice: Bool) -> [NALUnit] {
        var units: [NALUnit] = []
        var current: (payload: Int, startCode: Int)?
        var index = 0
        while index + 2 < stream.count {
            guard stream[index + 2] <= 1 else {  // Neither 00 nor 01 can end here: skip ahead.
                index += 3
                continue
            }
            guard stream[index] == 0, stream[index + 1] == 0, stream[index + 2] == 1 else {
                index += 1
                continue
            }
            // A zero before `00 00 01` makes it a four-byte start code (or trailing zeros).
            var startCode = index
            while startCode > 0, stream[startCode - 1] == 0, startCode - 1 >= (current?.payload ?? 0) { startCode -= 1 }
            if let open = current { append(open, end: startCode, stream: stream, to: &units) }
            // Slices are NAL unit types 1 to 5 (H.264 table 7-1).
            if stoppingAtFirstSlice, index + 3 < stream.count, (1...5).contains(stream[index + 3] & 0x1F) { return units }
            current = (payload: index + 3, startCode: startCode)
            index += 3
        }
        if let open = current { append(open, end: stream.count, stream: stream, to: &units) }
        return units
    }

    private static func append(_ open: (payload: Int, startCode: Int), end: Int, stream: [UInt8], to units: inout [NALUnit]) {
        var end = end
        while end > open.payload, stream[end - 1] == 0 { end -= 1 }  // trailing_zero_8bits
        guard end > open.payload else { return }
        let header = stream[open.payload]
        guard header & 0x80 == 0 else { return }
        units.append(NALUnit(type: header & 0x1F, range: open.payload..<end, startCodeOffset: open.startCode))
    }

    /// Whether the access unit holds an IDR slice, where a decoder can start.
    public static func containsIDR(_ stream: [UInt8]) -> Bool {
        nalUnits(in: stream).contains { $0.type == NALType.idrSlice }
    }
}

/// The first bytes of a sequence parameter set, enough to tell the profile a stream uses.
public struct SPSProfile: Sendable, Equatable {
    public let profileIdc: UInt8
    /// `constraint_set0_flag` … `constraint_set5_flag`, from the high bit down.
    public let constraintFlags: UInt8
    public let levelIdc: UInt8

    /// Baseline (66) with `constraint_set1_flag`: decodable by every H.264 decoder, browsers included.
    public var isConstrainedBaseline: Bool { profileIdc == 66 && constraintFlags & 0x40 != 0 }

    /// From an SPS NAL unit, header byte included. These three bytes precede any
    /// Exp-Golomb field, so no emulation-prevention bytes can occur in them.
    public init?<Bytes: Collection<UInt8>>(nalUnit: Bytes) {
        let bytes = Array(nalUnit.prefix(4))
        guard bytes.count == 4, bytes[0] & 0x1F == AnnexB.NALType.sps else { return nil }
        profileIdc = bytes[1]
        constraintFlags = bytes[2]
        levelIdc = bytes[3]
    }
}

/// Makes every IDR self-contained for cameras that send SPS and PPS only once at stream start:
/// a viewer that joins at a later keyframe would otherwise have nothing to decode it with.
public struct ParameterSetRepeater: Sendable {
    private var sps: [UInt8]?
    private var pps: [UInt8]?

    public init() {}

    /// Both an SPS and a PPS have been seen.
    public var isComplete: Bool { sps != nil && pps != nil }

    /// Remembers the newest SPS and PPS in an access unit, reading only the units in front of
    /// its first slice, where they stand.
    public mutating func remember(_ accessUnit: [UInt8]) {
        _ = scan(accessUnit, units: AnnexB.unitsBeforeFirstSlice(in: accessUnit))
    }

    /// Remembers the newest SPS and PPS and puts them in front of an IDR access unit that lacks them.
    /// - Parameter units: the access unit's NAL units, when the caller has them already.
    public mutating func completing(_ accessUnit: [UInt8], units: [AnnexB.NALUnit]? = nil) -> [UInt8] {
        let found = scan(accessUnit, units: units ?? AnnexB.nalUnits(in: accessUnit))
        guard found.idr, !(found.sps && found.pps), let sps, let pps else { return accessUnit }
        let startCode: [UInt8] = [0, 0, 0, 1]
        var completed: [UInt8] = []
        completed.reserveCapacity(accessUnit.count + sps.count + pps.count + 8)
        if !found.sps { completed += startCode + sps }
        if !found.pps { completed += startCode + pps }
        return completed + accessUnit
    }

    private mutating func scan(_ accessUnit: [UInt8], units: [AnnexB.NALUnit]) -> (sps: Bool, pps: Bool, idr: Bool) {
        var found = (sps: false, pps: false, idr: false)
        for unit in units {
            switch unit.type {
            case AnnexB.NALType.sps: found.sps = true; sps = Array(accessUnit[unit.range])
            case AnnexB.NALType.pps: found.pps = true; pps = Array(accessUnit[unit.range])
            case AnnexB.NALType.idrSlice: found.idr = true
            default: break
            }
        }
        return found
    }
}
