import Synchronization

/// One captured frame, copied out of the driver's buffer (the mmap'd buffer itself never
/// leaves the capture adapter).
public struct CapturedFrame: Sendable {
    public let mode: CameraMode
    /// The driver's sequence number (`v4l2_buffer.sequence`).
    public let sequence: UInt32
    /// The driver's capture time on CLOCK_MONOTONIC.
    public let timestamp: Duration
    public let bytes: [UInt8]
    /// Frames the driver skipped just before this one (sequence gap).
    public let missedBefore: UInt32

    public init(mode: CameraMode, sequence: UInt32, timestamp: Duration, bytes: [UInt8], missedBefore: UInt32) {
        self.mode = mode
        self.sequence = sequence
        self.timestamp = timestamp
        self.bytes = bytes
        self.missedBefore = missedBefore
    }
}

/// Detects gaps in the driver's frame sequence numbers.
public struct SequenceGapDetector: Sendable {
    private var last: UInt32?
    public private(set) var missedTotal: UInt64 = 0

    public init() {}

    /// Returns how many frames are missing before `sequence`.
    public mutating func observe(_ sequence: UInt32) -> UInt32 {
        defer { last = sequence }
        guard let last else { return 0 }
        let gap = sequence &- last &- 1
        // A sequence that goes backwards (a restart of streaming) is not a gap.
        guard gap < UInt32.max / 2 else { return 0 }
        missedTotal += UInt64(gap)
        return gap
    }
}

/// A single-consumer stream where the newest frame wins: a producer never waits, and a frame
/// the consumer did not take in time is replaced and counted as dropped. That keeps latency
/// bounded to one frame however slow the consumer is.
public final class NewestFrameStream<Element: Sendable>: AsyncSequence, Sendable {
    private struct State {
        var pending: Element?
        var waiter: CheckedContinuation<Element?, Never>?
        var finished = false
        var dropped: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Offers a frame; returns false when it replaced one the consumer had not taken (a drop).
    @discardableResult
    public func offer(_ element: Element) -> Bool {
        let (waiter, replaced): (CheckedContinuation<Element?, Never>?, Bool) = state.withLock { state in
            guard !state.finished else { return (nil, false) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, false)
            }
            let replaced = state.pending != nil
            if replaced { state.dropped += 1 }
            state.pending = element
            return (nil, replaced)
        }
        waiter?.resume(returning: element)
        return !replaced
    }

    /// Ends the stream; a waiting consumer gets nil after any pending frame.
    public func finish() {
        let waiter: CheckedContinuation<Element?, Never>? = state.withLock { state in
            state.finished = true
            guard state.pending == nil else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    public var droppedCount: UInt64 { state.withLock { $0.dropped } }

    func next() async -> Element? {
        await withCheckedContinuation { continuation in
            let immediate: Element?? = state.withLock { state in
                if let pending = state.pending {
                    state.pending = nil
                    return .some(pending)
                }
                if state.finished { return .some(nil) }
                state.waiter = continuation
                return .none
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: NewestFrameStream
        public mutating func next() async -> Element? { await stream.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }
}
