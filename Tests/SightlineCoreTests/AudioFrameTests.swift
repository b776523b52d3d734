import Foundation
import Testing
@testable import SightlineCore

@Suite("Audio frames and the frame queue")
struct AudioFrameTests {
    @Test("Chunks of any size become 20 ms frames stamped with their first sample's time")
    func assembler() {
        var assembler = AudioFrameAssembler(format: AudioFormat(sampleRate: 48000, channels: 2))
        #expect(assembler.samplesPerFrame == 1920)
        var frames: [AudioFrame] = []
        frames += assembler.append([Int16](repeating: 1, count: 1000), capturedAt: .seconds(10))
        #expect(frames.isEmpty)
        frames += assembler.append([Int16](repeating: 2, count: 3000), capturedAt: .seconds(99))
        #expect(frames.count == 2)
        #expect(frames[0].timestamp == .seconds(10))
        #expect(frames[1].timestamp == .seconds(10) + .milliseconds(20))
        #expect(frames.map(\.sequence) == [0, 1])
        #expect(frames[0].samples.prefix(1000).allSatisfy { $0 == 1 } && frames[0].samples.suffix(920).allSatisfy { $0 == 2 })
        #expect(frames[1].frameCount == 960)
        assembler.discardPartial()
        let next = assembler.append([Int16](repeating: 3, count: 1920), capturedAt: .seconds(20))
        #expect(next.map(\.timestamp) == [.seconds(20)])
        #expect(next.map(\.sequence) == [2])
    }

    static func frame(_ sequence: UInt64) -> AudioFrame {
        AudioFrame(format: .voice, timestamp: .milliseconds(Int64(sequence) * 20), sequence: sequence, samples: [Int16(sequence)])
    }

    @Test("The queue keeps order, never holds more than its capacity, and makes a thread producer wait")
    func boundedAndLossless() async {
        let queue = AudioFrameQueue(capacity: 4)
        for index in 0..<4 { #expect(queue.push(Self.frame(UInt64(index)), timeout: .milliseconds(10))) }
        let start = ContinuousClock.now
        #expect(!queue.push(Self.frame(99), timeout: .milliseconds(50)))
        #expect(ContinuousClock.now - start >= .milliseconds(45))
        #expect(queue.count == 4)

        // A producer thread with 100 more frames; the consumer takes them all, in order.
        let producer = Thread {
            for index in 4..<104 { while !queue.push(Self.frame(UInt64(index)), timeout: .milliseconds(100)) {} }
            queue.finish()
        }
        producer.start()
        var received: [UInt64] = []
        for await frame in queue { received.append(frame.sequence) }
        #expect(received == Array(0..<104))
        #expect(queue.highWaterMark <= 4)
    }

    @Test("An async producer suspends while full; finish ends both sides")
    func asyncProducer() async {
        let queue = AudioFrameQueue(capacity: 2)
        let sent = Task {
            var count = 0
            for index in 0..<10 where await queue.send(Self.frame(UInt64(index))) { count += 1 }
            return count
        }
        var received: [UInt64] = []
        while received.count < 10, let frame = await queue.next() { received.append(frame.sequence) }
        #expect(await sent.value == 10)
        #expect(received == Array(0..<10))
        queue.finish()
        #expect(await queue.next() == nil)
        #expect(await queue.send(Self.frame(0)) == false)
        #expect(queue.pop(timeout: .milliseconds(1)) == nil)
    }
}
