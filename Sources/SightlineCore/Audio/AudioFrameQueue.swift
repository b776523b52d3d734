import Foundation

/// A bounded, lossless FIFO for audio frames between a device thread and async code.
///
/// Unlike video (newest frame wins), audio must not lose frames in the middle of a stream: a full
/// queue makes the producer wait instead of dropping. A capture thread that waits too long lets
/// the device buffer overrun, which the backend sees, counts as an xrun and recovers from, so loss
/// happens in one visible place only. Both sides can be a thread (blocking calls with a timeout)
/// or async code (suspending calls).
public final class AudioFrameQueue: AsyncSequence, @unchecked Sendable {
    public typealias Element = AudioFrame

    public let capacity: Int
    // All state below is guarded by `condition`.
    private let condition = NSCondition()
    private var frames: [AudioFrame] = []
    private var head = 0
    private var finished = false
    private var consumerWaiter: CheckedContinuation<AudioFrame?, Never>?
    private var producerWaiters: [CheckedContinuation<Void, Never>] = []
    private var highWater = 0

    public init(capacity: Int) {
        self.capacity = Swift.max(1, capacity)
    }

    private var countLocked: Int { frames.count - head }

    /// Frames waiting now.
    public var count: Int { condition.withLock { countLocked } }
    /// The most frames that ever waited at once.
    public var highWaterMark: Int { condition.withLock { highWater } }
    public var isFinished: Bool { condition.withLock { finished } }

    /// Appends `frame`, waiting up to `timeout` for space (for a device thread). Returns false
    /// when the queue stayed full or is finished; the frame was not queued.
    public func push(_ frame: AudioFrame, timeout: Duration) -> Bool {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + Double(timeout.components.attoseconds) * 1e-18)
        condition.lock()
        while countLocked >= capacity, !finished {
            if !condition.wait(until: deadline) { break }
        }
        guard countLocked < capacity, !finished else {
            condition.unlock()
            return false
        }
        let waiter = appendLocked(frame)
        condition.unlock()
        waiter?.resume(returning: frame)
        return true
    }

    /// Appends `frame`, suspending while the queue is full (for async producers such as
    /// playback). Returns false when the queue was finished.
    @discardableResult
    public func send(_ frame: AudioFrame) async -> Bool {
        while true {
            switch offer(frame) {
            case .queued: return true
            case .finished: return false
            case .full:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    waitForSpace(continuation)
                }
            }
        }
    }

    private enum Offer { case queued, full, finished }

    private func offer(_ frame: AudioFrame) -> Offer {
        condition.lock()
        if finished {
            condition.unlock()
            return .finished
        }
        guard countLocked < capacity else {
            condition.unlock()
            return .full
        }
        let waiter = appendLocked(frame)
        condition.unlock()
        waiter?.resume(returning: frame)
        return .queued
    }

    private func waitForSpace(_ continuation: CheckedContinuation<Void, Never>) {
        condition.lock()
        if countLocked < capacity || finished {
            condition.unlock()
            continuation.resume()
        } else {
            producerWaiters.append(continuation)
            condition.unlock()
        }
    }

    /// Takes the oldest frame, waiting up to `timeout` (for a device thread); nil on timeout or
    /// when the queue is finished and empty.
    public func pop(timeout: Duration) -> AudioFrame? {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + Double(timeout.components.attoseconds) * 1e-18)
        condition.lock()
        while countLocked == 0, !finished {
            if !condition.wait(until: deadline) { break }
        }
        let (frame, waiters) = removeLocked()
        condition.unlock()
        waiters.forEach { $0.resume() }
        return frame
    }

    /// Takes the oldest frame, suspending until one arrives; nil once finished and drained.
    /// One consumer at a time.
    public func next() async -> AudioFrame? {
        await withCheckedContinuation { (continuation: CheckedContinuation<AudioFrame?, Never>) in
            condition.lock()
            if countLocked > 0 || finished {
                let (frame, waiters) = removeLocked()
                condition.unlock()
                waiters.forEach { $0.resume() }
                continuation.resume(returning: frame)
            } else {
                consumerWaiter = continuation
                condition.unlock()
            }
        }
    }

    /// Ends the stream: producers stop, the consumer drains what is queued and then gets nil.
    public func finish() {
        condition.lock()
        finished = true
        let consumer = countLocked == 0 ? consumerWaiter : nil
        if consumer != nil { consumerWaiter = nil }
        let producers = producerWaiters
        producerWaiters.removeAll()
        condition.broadcast()
        condition.unlock()
        consumer?.resume(returning: nil)
        producers.forEach { $0.resume() }
    }

    /// Queues the frame or hands it to a waiting consumer, which the caller resumes after unlocking.
    private func appendLocked(_ frame: AudioFrame) -> CheckedContinuation<AudioFrame?, Never>? {
        if let waiter = consumerWaiter {
            consumerWaiter = nil
            return waiter
        }
        frames.append(frame)
        highWater = Swift.max(highWater, countLocked)
        condition.broadcast()
        return nil
    }

    private func removeLocked() -> (AudioFrame?, [CheckedContinuation<Void, Never>]) {
        guard countLocked > 0 else { return (nil, []) }
        let frame = frames[head]
        head += 1
        if head > 64, head * 2 > frames.count {
            frames.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        let waiters = producerWaiters
        producerWaiters.removeAll()
        return (frame, waiters)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let queue: AudioFrameQueue
        public mutating func next() async -> AudioFrame? { await queue.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(queue: self) }
}
