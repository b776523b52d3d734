import Testing
@testable import SightlineEncoding

@Suite("Annex-B NAL scanner")
struct AnnexBTests {
    @Test("four- and three-byte start codes, trailing zeros stay out of the units")
    func startCodes() {
        let stream: [UInt8] = [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1F,  // SPS behind a 4-byte code
                               0, 0, 1, 0x68, 0xCE,  // PPS behind a 3-byte code
                               0, 0, 0, 1, 0x65, 0x88, 0x84, 0, 0]  // IDR, then trailing zeros
        let units = AnnexB.nalUnits(in: stream)
        #expect(units.map(\.type) == [7, 8, 5])
        #expect(units.map(\.range) == [4..<8, 11..<13, 17..<20])
        #expect(units.map(\.startCodeOffset) == [0, 8, 13])
        #expect(AnnexB.containsIDR(stream))
    }

    @Test("empty, start-code-only and garbage input yield no units")
    func nothingToFind() {
        #expect(AnnexB.nalUnits(in: []).isEmpty)
        #expect(AnnexB.nalUnits(in: [0, 0, 1]).isEmpty)
        #expect(AnnexB.nalUnits(in: [0, 0, 0, 1, 0, 0, 1]).isEmpty)
        #expect(AnnexB.nalUnits(in: [0xFF, 0xD8, 0xFF, 0xE0, 0x12, 0x34, 0x00, 0x02]).isEmpty)
        #expect(!AnnexB.containsIDR([0x65, 0x88, 0x84]))  // An IDR header without a start code is not a unit.
    }

    @Test("leading garbage is skipped and a forbidden bit marks a unit as invalid")
    func garbageAround() {
        let stream: [UInt8] = [0x12, 0x34, 0, 0, 1, 0x41, 0x9A, 0, 0, 1, 0xE5, 0x00, 0x11]
        let units = AnnexB.nalUnits(in: stream)
        #expect(units.map(\.type) == [1])
        #expect(units.first?.range == 5..<7)
        #expect(!AnnexB.containsIDR(stream))
    }

    @Test("the units before the first slice end at its start code, wherever the slice ends")
    func unitsBeforeFirstSlice() {
        let delimiterAndParameterSets: [UInt8] = [0, 0, 0, 1, 0x09, 0xF0,  // access unit delimiter
                                                  0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1F, 0, 0, 1, 0x68, 0xCE]
        let slices: [UInt8] = [0, 0, 0, 1, 0x65, 0x88, 0x84, 0, 0, 1, 0x67, 0x4D]  // an SPS after the slice is not read
        let units = AnnexB.unitsBeforeFirstSlice(in: delimiterAndParameterSets + slices)
        #expect(units.map(\.type) == [9, 7, 8])
        #expect(units.last?.range == 17..<19)
        #expect(AnnexB.unitsBeforeFirstSlice(in: [0, 0, 1, 0x41, 0x9A, 0, 0, 1, 0x67, 0x42]).isEmpty)
        #expect(AnnexB.unitsBeforeFirstSlice(in: Array(delimiterAndParameterSets.prefix(14))).map(\.type) == [9, 7])
    }

    @Test("an SPS tells profile, constraints and level")
    func spsProfile() throws {
        let profile = try #require(SPSProfile(nalUnit: [0x67, 66, 0xC0, 31, 0xDA]))
        #expect(profile == SPSProfile(nalUnit: [0x67, 66, 0xC0, 31]))
        #expect(profile.isConstrainedBaseline)
        #expect(profile.levelIdc == 31)
        #expect(SPSProfile(nalUnit: [0x67, 100, 0x00, 40])?.isConstrainedBaseline == false)
        #expect(SPSProfile(nalUnit: [0x68, 66, 0xC0, 31]) == nil)  // A PPS.
        #expect(SPSProfile(nalUnit: [0x67, 66]) == nil)
    }

    @Test("the repeater puts the last SPS and PPS in front of an IDR that lacks them")
    func parameterSetRepeater() {
        var repeater = ParameterSetRepeater()
        let first: [UInt8] = [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1F, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88]
        #expect(repeater.completing(first) == first)
        let predicted: [UInt8] = [0, 0, 0, 1, 0x41, 0x9A]
        #expect(repeater.completing(predicted) == predicted)
        let bareIDR: [UInt8] = [0, 0, 0, 1, 0x65, 0x88, 0x80]
        let completed = repeater.completing(bareIDR)
        #expect(AnnexB.nalUnits(in: completed).map(\.type) == [7, 8, 5])
        #expect(completed == [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1F, 0, 0, 0, 1, 0x68, 0xCE] + bareIDR)

        var empty = ParameterSetRepeater()
        #expect(empty.completing(bareIDR) == bareIDR, "without a known SPS there is nothing to add")
    }
}
