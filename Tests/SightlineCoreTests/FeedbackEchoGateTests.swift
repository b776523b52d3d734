import Testing
@testable import SightlineCore

@Suite struct FeedbackEchoGateTests {
    @Test func closesWhileFeedbackPlaysAndForTheEchoTail() {
        var gate = FeedbackEchoGate()
        #expect(gate.admits(capturedAt: .seconds(1)))
        gate.began(at: .seconds(10))
        #expect(gate.admits(capturedAt: .milliseconds(9_990)), "audio captured before the feedback started still counts")
        #expect(!gate.admits(capturedAt: .seconds(10)))
        #expect(!gate.admits(capturedAt: .seconds(11)))
        gate.ended(at: .seconds(12))
        #expect(!gate.admits(capturedAt: .milliseconds(12_399)))
        #expect(gate.admits(capturedAt: .milliseconds(12_400)))
    }

    @Test func countsWhatItKeepsBack() {
        var gate = FeedbackEchoGate()
        let before = gate.pass(capturedAt: .seconds(1), length: .milliseconds(20))
        gate.began(at: .seconds(2))
        let during = [gate.pass(capturedAt: .seconds(2), length: .milliseconds(20)),
                      gate.pass(capturedAt: .milliseconds(2020), length: .milliseconds(20))]
        #expect(before && during == [false, false])
        #expect(gate.withheld == .milliseconds(40))
    }

    @Test func overlappingFeedbackKeepsItClosedUntilTheLastEnds() {
        var gate = FeedbackEchoGate()
        gate.began(at: .seconds(1))
        gate.began(at: .seconds(2))
        gate.ended(at: .seconds(3))
        #expect(!gate.admits(capturedAt: .seconds(4)), "the second clip still plays")
        gate.ended(at: .seconds(5))
        #expect(!gate.admits(capturedAt: .seconds(5)))
        #expect(gate.admits(capturedAt: .seconds(6)))
    }
}
