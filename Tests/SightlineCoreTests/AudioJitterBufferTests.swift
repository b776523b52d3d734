import Testing
@testable import SightlineCore

@Suite("Audio jitter buffer")
struct AudioJitterBufferTests {
    typealias Buffer = AudioJitterBuffer<Int>

    /// Runs a schedule: each packet `(sequence, arrival ms)` is inserted when its time comes,
    /// and the buffer is popped every 20 ms from `start` ms, for `pops` pops.
    static func run(_ buffer: inout Buffer, arrivals: [(UInt16, Int)], start: Int, pops: Int, clocked: Bool = false) -> [Buffer.Playout] {
        var pending = arrivals.sorted { $0.1 < $1.1 }
        var out: [Buffer.Playout] = []
        for tick in 0..<pops {
            let now = start + tick * 20
            while let first = pending.first, first.1 <= now {
                buffer.insert(sequence: first.0, payload: Int(first.0), arrival: .milliseconds(first.1))
                pending.removeFirst()
            }
            out.append(buffer.pop(at: clocked ? .milliseconds(now) : nil))
        }
        return out
    }

    static func played(_ playouts: [Buffer.Playout]) -> [Int] {
        playouts.compactMap { if case .packet(let payload, _) = $0 { payload } else { nil } }
    }

    @Test("Steady arrivals play in order at the minimum depth, nothing lost")
    func steady() {
        var buffer = Buffer()
        let arrivals = (0..<50).map { (UInt16($0), 100 + $0 * 20) }
        let out = Self.run(&buffer, arrivals: arrivals, start: 100, pops: 50)
        #expect(Self.played(out) == Array(0..<50))
        #expect(buffer.targetDepth == 1)
        #expect(buffer.statistics.concealed == 0 && buffer.statistics.late == 0 && buffer.statistics.recovered == 0)
    }

    @Test("With a clock, the delay returns to what the jitter needs once a late packet has left the window; counted in frames, a frame stays")
    func clockedDelayShrinks() throws {
        // 30 ms on the way and 0–4 ms of jitter, but packet 20 comes 45 ms late; 8 s in all.
        let arrivals: [(UInt16, Int)] = (0..<400).map { (index: Int) -> (UInt16, Int) in
            let jitter: Int = (index * 7) % 5
            let late: Int = index == 20 ? 45 : 0
            return (UInt16(index), 30 + index * 20 + jitter + late)
        }
        let arrival = Dictionary(uniqueKeysWithValues: arrivals.map { (Int($0.0), $0.1) })
        func lastWaits(_ out: [Buffer.Playout], start: Int) -> [Int] {
            let waits = out.enumerated().compactMap { tick, playout -> Int? in
                guard case .packet(let payload, _) = playout, let arrived = arrival[payload] else { return nil }
                return start + tick * 20 - arrived
            }
            return Array(waits.suffix(100))
        }
        for phase in [3, 11, 17] {
            var clocked = Buffer(), counted = Buffer()
            let timed = Self.run(&clocked, arrivals: arrivals, start: phase, pops: 420, clocked: true)
            let framed = Self.run(&counted, arrivals: arrivals, start: phase, pops: 420)
            let timedWaits = lastWaits(timed, start: phase), framedWaits = lastWaits(framed, start: phase)
            // The late packet upsets both alike (late, concealed, a refill); the clock costs
            // one skipped frame, once, and no more losses.
            let (withClock, withoutClock) = (clocked.statistics, counted.statistics)
            #expect(withClock.late <= withoutClock.late && withClock.concealed <= withoutClock.concealed, "\(withClock) \(withoutClock)")
            #expect(withClock.skipped == 1 && withClock.played + 1 == withoutClock.played, "\(withClock) \(withoutClock)")
            #expect(try #require(timedWaits.max()) < 20 + 5, "at most a frame's phase plus the jitter: \(timedWaits)")
            #expect(try #require(framedWaits.min()) >= 20, "counted in frames, the late packet's frame stays: \(framedWaits)")
        }
    }

    @Test("Reordered packets within the depth come out in order")
    func reorder() {
        var configuration = Buffer.Configuration()
        configuration.minimumDepth = 3
        var buffer = Buffer(configuration: configuration)
        // 1 and 2 swap, 5 arrives after 6 and 7, all within 40 ms of their time.
        let order: [(UInt16, Int)] = [(0, 0), (2, 40), (1, 45), (3, 60), (4, 80), (6, 120), (7, 140), (5, 150), (8, 160), (9, 180)]
        let out = Self.run(&buffer, arrivals: order + (10..<30).map { (UInt16($0), $0 * 20) }, start: 0, pops: 40)
        #expect(Self.played(out) == Array(0..<30), "\(out)")
        #expect(buffer.statistics.late == 0)
        #expect(buffer.targetDepth >= 2, "lateness of 30 ms needs more than one frame")
    }

    @Test("One lost packet is rebuilt from the next one's FEC; two in a row are concealed, then FEC")
    func loss() {
        var buffer = Buffer()
        let lost: Set<UInt16> = [10, 20, 21]
        let arrivals = (0..<40).filter { !lost.contains(UInt16($0)) }.map { (UInt16($0), $0 * 20) }
        // Start one frame late so the packet after a hole is already here when the hole is due.
        let out = Self.run(&buffer, arrivals: arrivals, start: 20, pops: 40)
        #expect(out.contains(.recover(next: 11, sequence: 10 + (1 << 16))), "\(out)")
        #expect(out.contains(.conceal(sequence: 20 + (1 << 16))), "\(out)")
        #expect(out.contains(.recover(next: 22, sequence: 21 + (1 << 16))), "\(out)")
        #expect(Self.played(out) == Array(0..<40).filter { !lost.contains(UInt16($0)) })
        #expect(buffer.statistics.recovered == 2 && buffer.statistics.concealed == 1)
    }

    @Test("A packet that comes after its turn is dropped, counted, never played")
    func late() {
        var buffer = Buffer()
        var arrivals = (0..<30).filter { $0 != 12 }.map { (UInt16($0), $0 * 20) }
        arrivals.append((12, 12 * 20 + 200))
        let out = Self.run(&buffer, arrivals: arrivals, start: 0, pops: 30)
        #expect(!Self.played(out).contains(12))
        #expect(buffer.statistics.late == 1)
        #expect(Self.played(out).filter { $0 > 12 }.first == 13)
    }

    @Test("The target depth follows the lateness seen: up at once with jitter, down after calm, within bounds")
    func adaptiveDepth() {
        var buffer = Buffer()
        // Every fifth packet 90 ms late.
        let jittery: [(UInt16, Int)] = (0..<100).map { (index: Int) -> (UInt16, Int) in
            (UInt16(index), index * 20 + (index % 5 == 0 ? 90 : 0))
        }
        _ = Self.run(&buffer, arrivals: jittery, start: 0, pops: 100)
        #expect(buffer.targetDepth == 6, "90 ms of lateness is 5 frames plus the one playing: \(buffer.targetDepth)")
        // Two seconds and more of calm: the lateness leaves the window.
        let calm = (100..<300).map { (UInt16($0), $0 * 20) }
        let out = Self.run(&buffer, arrivals: calm, start: 2000, pops: 200)
        #expect(buffer.targetDepth == 1)
        // The queue came down too, by skipping frames rather than by waiting forever.
        #expect(buffer.depth <= 2, "depth \(buffer.depth)")
        #expect(buffer.statistics.skipped > 0)
        #expect(Self.played(out).count > 150)

        var wild = Buffer()
        let wildArrivals: [(UInt16, Int)] = (0..<20).map { (index: Int) -> (UInt16, Int) in
            (UInt16(index), index * 20 + (index == 3 ? 2000 : 0))
        }
        _ = Self.run(&wild, arrivals: wildArrivals, start: 0, pops: 110)
        #expect(wild.targetDepth == Buffer.Configuration().maximumDepth)
    }

    @Test("Sequence numbers wrap from 65535 to 0 without a hiccup; duplicates play once")
    func wrapAndDuplicates() {
        var buffer = Buffer()
        var arrivals = (0..<20).map { (UInt16((65530 + $0) % 65536), $0 * 20) }
        arrivals.append((65534, 4 * 20))
        var out: [Buffer.Playout] = []
        var pending = arrivals.sorted { $0.1 < $1.1 }
        for tick in 0..<20 {
            while let first = pending.first, first.1 <= tick * 20 {
                buffer.insert(sequence: first.0, payload: Int(first.0), arrival: .milliseconds(first.1))
                pending.removeFirst()
            }
            out.append(buffer.pop())
        }
        #expect(Self.played(out) == (0..<20).map { (65530 + $0) % 65536 })
        #expect(buffer.statistics.duplicates == 1)
    }

    @Test("When the stream stalls it conceals briefly, then waits silently; what comes after its turn is late, the rest plays")
    func underrun() {
        var buffer = Buffer()
        let first = (0..<10).map { (UInt16($0), $0 * 20) }
        let stalled = (10..<20).map { (UInt16($0), 1000 + $0 * 20) }
        let out = Self.run(&buffer, arrivals: first + stalled, start: 0, pops: 90)
        let limit = Buffer.Configuration().concealLimit
        #expect(out[10..<(10 + limit)].allSatisfy { if case .conceal = $0 { true } else { false } }, "\(out)")
        #expect(out[10 + limit] == .silence)
        #expect(buffer.statistics.underruns >= 1)
        #expect(buffer.statistics.late == UInt64(limit))
        #expect(Self.played(out) == Array(0..<10) + Array((10 + limit)..<20))
    }

    @Test("A sender that starts over far from the old numbers is followed, not dropped as late")
    func senderRestart() {
        var buffer = Buffer()
        let before = (0..<20).map { (UInt16(30000 + $0), $0 * 20) }
        let after = (0..<20).map { (UInt16($0), 400 + $0 * 20) }
        let out = Self.run(&buffer, arrivals: before + after, start: 0, pops: 40)
        #expect(Self.played(out).suffix(15).allSatisfy { $0 < 20 }, "\(Self.played(out))")
        #expect(buffer.statistics.late == 0)
    }
}
