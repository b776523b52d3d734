import NIOCore
import Synchronization

/// What the relay writes to one peer's socket.
enum OutboundMessage: Sendable {
    case text(String)
    case binary(ByteBuffer)
    /// A WebSocket ping, so that a quiet but live peer answers and does not count as idle.
    case ping
}

/// One receiver's ``ReceiverQueue`` shared between the tasks that send to it and the one
/// writer task that drains it to the socket.
///
/// Senders only take a short lock, so a slow socket never blocks them; the writer waits
/// without a lock. A close request jumps the queue: whatever is still queued is discarded
/// and the writer sends the `error` message and the close frame next.
final class PeerOutbox: Sendable {
    enum Next: Sendable {
        case message(OutboundMessage, QueuedKind)
        /// Send this refusal as an `error` message, then the close frame, then stop.
        case close(RelayRefusal)
        case finished
    }

    private struct State {
        var queue: ReceiverQueue<(OutboundMessage, QueuedKind)>
        var waiter: CheckedContinuation<Next, Never>?
        var closing: RelayRefusal?
        var finished = false
    }

    private let state: Mutex<State>

    init(limits: ReceiverQueueLimits) {
        state = Mutex(State(queue: ReceiverQueue(limits: limits)))
    }

    /// Queues a message and hands it to a waiting writer; returns what the queue dropped and,
    /// at most every report interval while it drops, a congestion report.
    @discardableResult
    func enqueue(_ message: OutboundMessage, kind: QueuedKind, size: Int,
                 now: ContinuousClock.Instant = .now) -> (outcome: EnqueueOutcome, report: CongestionReport?) {
        let (result, waiter): ((EnqueueOutcome, CongestionReport?), CheckedContinuation<Next, Never>?) = state.withLock { state in
            guard !state.finished, state.closing == nil else { return ((EnqueueOutcome(), nil), nil) }
            if let waiter = state.waiter {
                // The writer is idle, so the queue is empty: hand the message over directly.
                state.waiter = nil
                return ((EnqueueOutcome(), nil), waiter)
            }
            let outcome = state.queue.enqueue((message, kind), kind: kind, size: size, now: now)
            return ((outcome, state.queue.congestionReport(now: now)), nil)
        }
        waiter?.resume(returning: .message(message, kind))
        return result
    }

    /// Ends the socket with `refusal`. The first close wins (true); later ones are ignored.
    @discardableResult
    func close(_ refusal: RelayRefusal) -> Bool {
        let (first, waiter): (Bool, CheckedContinuation<Next, Never>?) = state.withLock { state in
            guard !state.finished, state.closing == nil else { return (false, nil) }
            state.closing = refusal
            state.queue.removeAll()
            guard let waiter = state.waiter else { return (true, nil) }
            // Handed to the writer right here, so a later next() must not close again.
            state.waiter = nil
            state.finished = true
            return (true, waiter)
        }
        waiter?.resume(returning: .close(refusal))
        return first
    }

    /// Stops the writer without a close of its own (the peer went away, or shutdown).
    func finish() {
        let waiter: CheckedContinuation<Next, Never>? = state.withLock { state in
            state.finished = true
            state.queue.removeAll()
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: .finished)
    }

    var isClosing: Bool { state.withLock { $0.closing != nil || $0.finished } }

    /// The next thing for the writer to do; waits while there is nothing.
    func next() async -> Next {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Next, Never>) in
                let ready: Next? = state.withLock { state in
                    if let closing = state.closing {
                        state.finished = true
                        return .close(closing)
                    }
                    if state.finished { return .finished }
                    if let (message, kind) = state.queue.dequeue() { return .message(message, kind) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            finish()
        }
    }
}
