import NIOCore
import Synchronization

/// What the relay writes to one peer's socket.
enum OutboundMessage: Sendable {
    case text(String)
    case binary(ByteBuffer)
    /// A WebSocket ping, so that a quiet but live peer answers and does not count as idle.
    case ping
}

/// One receiver's ``ReceiverQueue``, filled by the event loops of the peers that send to it and
/// drained to the socket by the receiver's own event loop (``RelayPeerHandler``).
///
/// Senders only take a short lock, so a slow socket never blocks them. The first message that
/// finds the writer idle wakes it (`wakeWriter`, one event-loop task); the messages that
/// follow before it runs ride along, so a burst costs one wake-up, not one per message. A
/// close request discards whatever is still queued; the socket's task then sends the `error`
/// message and the close frame.
final class PeerOutbox: Sendable {
    private struct State {
        var queue: ReceiverQueue<(OutboundMessage, QueuedKind)>
        /// A drain is scheduled, or the writer waits for the socket to become writable again:
        /// either way it will look at the queue, so enqueuers need not wake it.
        var writerArmed = false
        var closing: RelayRefusal?
        var finished = false
        var closeWaiter: CheckedContinuation<RelayRefusal?, Never>?
    }

    private let state: Mutex<State>
    private let wakeWriter: @Sendable () -> Void

    /// `wakeWriter` schedules a drain on the receiver's event loop; it is called without the lock.
    init(limits: ReceiverQueueLimits, wakeWriter: @escaping @Sendable () -> Void) {
        state = Mutex(State(queue: ReceiverQueue(limits: limits)))
        self.wakeWriter = wakeWriter
    }

    /// Queues a message and wakes an idle writer; returns what the queue dropped and, at most
    /// every report interval while it drops, a congestion report.
    @discardableResult
    func enqueue(_ message: OutboundMessage, kind: QueuedKind, size: Int,
                 now: ContinuousClock.Instant = .now) -> (outcome: EnqueueOutcome, report: CongestionReport?) {
        let (result, wake): ((EnqueueOutcome, CongestionReport?), Bool) = state.withLock { state in
            guard !state.finished, state.closing == nil else { return ((EnqueueOutcome(), nil), false) }
            let outcome = state.queue.enqueue((message, kind), kind: kind, size: size, now: now)
            let report = state.queue.congestionReport(now: now)
            let wake = !state.writerArmed && !state.queue.isEmpty
            if wake { state.writerArmed = true }
            return ((outcome, report), wake)
        }
        if wake { wakeWriter() }
        return result
    }

    /// For the writer on the receiver's event loop: the next message to write, or nil when there
    /// is none (the writer is then idle and the next enqueue wakes it again).
    func nextForWriter() -> (OutboundMessage, QueuedKind)? {
        state.withLock { state in
            if state.closing == nil, !state.finished, let next = state.queue.dequeue() { return next }
            state.writerArmed = false
            return nil
        }
    }

    /// Ends the socket with `refusal`. The first close wins (true); later ones are ignored.
    @discardableResult
    func close(_ refusal: RelayRefusal) -> Bool {
        let (first, waiter): (Bool, CheckedContinuation<RelayRefusal?, Never>?) = state.withLock { state in
            guard !state.finished, state.closing == nil else { return (false, nil) }
            state.closing = refusal
            state.queue.removeAll()
            defer { state.closeWaiter = nil }
            return (true, state.closeWaiter)
        }
        waiter?.resume(returning: refusal)
        return first
    }

    /// Stops everything without a close of its own (the peer went away, or shutdown).
    func finish() {
        let waiter: CheckedContinuation<RelayRefusal?, Never>? = state.withLock { state in
            state.finished = true
            state.queue.removeAll()
            defer { state.closeWaiter = nil }
            return state.closeWaiter
        }
        waiter?.resume(returning: nil)
    }

    var isClosing: Bool { state.withLock { $0.closing != nil || $0.finished } }

    /// Waits until the socket is to be closed: the refusal to send, or nil once finished.
    func closeRequest() async -> RelayRefusal? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<RelayRefusal?, Never>) in
                let ready: RelayRefusal?? = state.withLock { state in
                    if let closing = state.closing { return .some(closing) }
                    if state.finished { return .some(nil) }
                    state.closeWaiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            finish()
        }
    }
}
