import Testing
@testable import SightlineCore
@testable import SightlineDaemon

@Suite("Test-pattern camera")
struct TestPatternTests {
    @Test("frames have the configured size, counted sequence numbers and a moving picture")
    func frames() {
        var pattern = TestPattern(width: 640, height: 360, fps: 30)
        let first = pattern.nextFrame()
        let second = pattern.nextFrame()
        #expect(first.bytes.count == 640 * 360 * 2)
        #expect(first.mode.fourCC == .yuyv)
        #expect((first.sequence, second.sequence) == (0, 1))
        #expect(second.timestamp >= first.timestamp)
        #expect(first.bytes != second.bytes, "the picture did not change between frames")
    }

    @Test("the burned-in counter changes the pixels of the text box and only those near it")
    func counterIsBurnedIn() {
        var one = TestPattern.colourBars(width: 320, height: 240)
        var two = one
        DigitFont.draw("0000001", into: &one, width: 320, height: 240)
        DigitFont.draw("0000002", into: &two, width: 320, height: 240)
        let differing = (0..<(320 * 240)).filter { one[$0 * 2] != two[$0 * 2] }
        #expect(!differing.isEmpty)
        #expect(differing.allSatisfy { $0 / 320 < 20 }, "pixels outside the text box changed")
    }

    @Test("the burned-in counter reads back from the luma plane, and nothing is read where none is drawn")
    func counterReadsBack() {
        var pattern = TestPattern(width: 1280, height: 720, fps: 30)
        _ = pattern.nextFrame()
        let frame = pattern.nextFrame()
        let luma = stride(from: 0, to: frame.bytes.count, by: 2).map { frame.bytes[$0] }
        #expect(DigitFont.read(count: 7, luma: luma, width: 1280, frameHeight: 720) == "0000001")
        let bars = TestPattern.colourBars(width: 1280, height: 720)
        let barsLuma = stride(from: 0, to: bars.count, by: 2).map { bars[$0] }
        #expect(DigitFont.read(count: 7, luma: barsLuma, width: 1280, frameHeight: 720) == nil)
    }

    @Test("sizes and rates from the configuration are honoured", arguments: [(160, 120, 5), (1280, 720, 30), (1921, 1080, 60)])
    func anySize(width: Int, height: Int, fps: Int) {
        var pattern = TestPattern(width: width, height: height, fps: fps)
        let frame = pattern.nextFrame()
        #expect(frame.mode.size == FrameSize(width: width & ~1, height: height))
        #expect(frame.mode.interval == FrameInterval(numerator: 1, denominator: UInt32(fps)))
        #expect(frame.bytes.count == (width & ~1) * height * 2)
    }
}
