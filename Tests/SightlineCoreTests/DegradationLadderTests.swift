import Testing
@testable import SightlineCore

@Suite struct DegradationLadderTests {
    let calm = DegradationLadder.Second(framesSent: 30, framesDropped: 0, worstSendDelay: .milliseconds(5))
    let lossy = DegradationLadder.Second(framesSent: 20, framesDropped: 10, worstSendDelay: .milliseconds(5))
    let stuck = DegradationLadder.Second(framesSent: 2, framesDropped: 0, worstSendDelay: .milliseconds(1500))

    @Test func stepsDownAfterThreeTroubledSecondsAndNotOnOneBlip() {
        var ladder = DegradationLadder()
        #expect(ladder.record(lossy) == nil)
        #expect(ladder.record(calm) == nil)
        #expect(ladder.record(lossy) == nil)
        #expect(ladder.record(lossy) == nil)
        #expect(ladder.record(lossy) == .low)
        #expect(ladder.record(stuck) == nil)
        #expect(ladder.record(stuck) == nil)
        #expect(ladder.record(stuck) == .stills)
        #expect((0..<5).compactMap { _ in ladder.record(stuck) }.isEmpty, "without a microphone there is no step below stills")
    }

    @Test func climbsBackOneStepPerTenCalmSeconds() {
        var ladder = DegradationLadder()
        for _ in 0..<6 { _ = ladder.record(stuck) }
        #expect(ladder.step == .stills)
        let changes = (0..<25).compactMap { _ in ladder.record(calm) }
        #expect(changes == [.low, .full])
        #expect(ladder.step == .full)
    }

    @Test func tenPercentLossIsTheLine() {
        var ladder = DegradationLadder()
        let atLimit = DegradationLadder.Second(framesSent: 27, framesDropped: 3, worstSendDelay: .zero)
        #expect((0..<5).compactMap { _ in ladder.record(atLimit) }.isEmpty)
        let above = DegradationLadder.Second(framesSent: 26, framesDropped: 4, worstSendDelay: .zero)
        #expect((0..<3).compactMap { _ in ladder.record(above) } == [.low])
    }

    @Test func audioOnlyIsTheLowestRungOnlyWhileAMicrophoneFeedsTheCall() {
        var ladder = DegradationLadder()
        var stuckWithAudio = stuck
        stuckWithAudio.carriesAudio = true
        let changes = (0..<12).compactMap { _ in ladder.record(stuckWithAudio) }
        #expect(changes == [.low, .stills, .audioOnly])
        #expect(ladder.step == .audioOnly)

        // The microphone goes away (unplugged, privacy): back to stills at once, and no lower.
        #expect(ladder.record(stuck) == .stills)
        #expect((0..<6).compactMap { _ in ladder.record(stuck) }.isEmpty)
    }

    @Test func climbsBackFromAudioOnly() {
        var ladder = DegradationLadder()
        var stuckWithAudio = stuck, calmWithAudio = calm
        stuckWithAudio.carriesAudio = true
        calmWithAudio.carriesAudio = true
        for _ in 0..<9 { _ = ladder.record(stuckWithAudio) }
        #expect(ladder.step == .audioOnly)
        #expect((0..<35).compactMap { _ in ladder.record(calmWithAudio) } == [.stills, .low, .full])
    }
}
