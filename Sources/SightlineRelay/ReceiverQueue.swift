/// What the relay knows about a queued message: enough to apply the slow-receiver policy
/// (docs/PROTOCOL.md, "Slow receivers") and nothing more, because media is sealed.
public enum QueuedKind: Sendable, Equatable {
    /// A JSON control message (or a relay ping). Never dropped: losing a `media-key` or a
    /// `kx-answer` would break the call for good, while control traffic is small and
    /// rate-limited.
    case control
    /// A video frame; only a keyframe lets a receiver start decoding again after a gap.
    case video(keyframe: Bool)
    /// An audio frame: every one decodes on its own, so it is never held back for a keyframe.
    case audio
    /// A full-resolution snapshot the expert asked for.
    case still

    var isVideo: Bool {
        if case .video = self { return true }
        return false
    }
}

/// The bounds of one receiver's queue (docs/PROTOCOL.md: 4 MiB, 500 ms, reports every 250 ms).
public struct ReceiverQueueLimits: Sendable, Equatable {
    public var maxBytes: Int
    public var maxDelay: Duration
    /// How often at most a ``CongestionReport`` is produced while the receiver drops.
    public var reportInterval: Duration

    public init(maxBytes: Int = 4 << 20, maxDelay: Duration = .milliseconds(500), reportInterval: Duration = .milliseconds(250)) {
        self.maxBytes = maxBytes
        self.maxDelay = maxDelay
        self.reportInterval = reportInterval
    }
}

public enum FrameDropReason: String, Sendable, Equatable, CaseIterable {
    /// The queue would have grown past its byte limit.
    case queueFull = "queue-full"
    /// The oldest queued entry had waited longer than the delay limit.
    case queueDelay = "queue-delay"
    /// A video frame that is not a keyframe, after a drop.
    case waitingForKeyframe = "waiting-for-keyframe"
}

public struct FrameDrop: Sendable, Equatable {
    public var reason: FrameDropReason
    public var frames: Int
    public var bytes: Int
}

public struct EnqueueOutcome: Sendable, Equatable {
    /// Everything this enqueue dropped, the new entry included if it was dropped.
    public var drops: [FrameDrop] = []
    /// A control message did not fit even after every queued media frame was dropped: the
    /// receiver reads too slowly to follow the call and has to be disconnected.
    public var controlOverflow = false
}

/// Drops since the last report, for the device's `congestion` message.
public struct CongestionReport: Sendable, Equatable {
    public var droppedFrames: Int
    public var droppedBytes: Int
    public var queuedBytes: Int
    public var queueDelay: Duration
}

/// The bounded send queue of one receiver, as a pure value so that the drop policy can be
/// tested with made-up instants instead of real sockets.
///
/// The sender is never blocked: it enqueues and gets back what was dropped. When the queue
/// would exceed ``Limits/maxBytes``, or its oldest entry has waited longer than
/// ``Limits/maxDelay``, the queued video is dropped and video is skipped until the next
/// keyframe, so the receiver resumes on a frame it can decode while the other receivers stay
/// live. Audio and stills are only dropped when dropping video alone did not make room.
public struct ReceiverQueue<Payload> {
    public typealias Limits = ReceiverQueueLimits

    private struct Entry {
        var kind: QueuedKind
        var size: Int
        var enqueuedAt: ContinuousClock.Instant
        var payload: Payload
    }

    public let limits: Limits
    /// An array with a moving head: dequeue stays O(1) amortised and the rare drop pass is a
    /// plain filter.
    private var entries: [Entry] = []
    private var head = 0
    public private(set) var queuedBytes = 0
    /// True after a drop until the next video keyframe.
    public private(set) var isSkippingVideo = false
    private var unreportedFrames = 0
    private var unreportedBytes = 0
    private var lastReport: ContinuousClock.Instant?

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    public var count: Int { entries.count - head }
    public var isEmpty: Bool { count == 0 }

    /// How long the oldest entry has waited at `now`; zero for an empty queue.
    public func delay(at now: ContinuousClock.Instant) -> Duration {
        guard head < entries.count else { return .zero }
        return now - entries[head].enqueuedAt
    }

    public mutating func enqueue(_ payload: Payload, kind: QueuedKind, size: Int, now: ContinuousClock.Instant) -> EnqueueOutcome {
        var outcome = EnqueueOutcome()
        let congestion: FrameDropReason? =
            if queuedBytes + size > limits.maxBytes { .queueFull }
            else if delay(at: now) > limits.maxDelay { .queueDelay }
            else { nil }
        if let congestion {
            isSkippingVideo = true
            record(removeQueued(where: \.isVideo, reason: congestion), into: &outcome)
            if queuedBytes + size > limits.maxBytes {
                record(removeQueued(where: { $0 == .audio || $0 == .still }, reason: congestion), into: &outcome)
            }
        }
        if case .video(let keyframe) = kind, isSkippingVideo {
            guard keyframe else {
                record(FrameDrop(reason: .waitingForKeyframe, frames: 1, bytes: size), into: &outcome)
                return outcome
            }
            isSkippingVideo = false
        }
        guard queuedBytes + size <= limits.maxBytes else {
            if kind == .control {
                outcome.controlOverflow = true
            } else {
                if kind.isVideo { isSkippingVideo = true }
                record(FrameDrop(reason: .queueFull, frames: 1, bytes: size), into: &outcome)
            }
            return outcome
        }
        entries.append(Entry(kind: kind, size: size, enqueuedAt: now, payload: payload))
        queuedBytes += size
        return outcome
    }

    public mutating func dequeue() -> Payload? {
        guard head < entries.count else { return nil }
        let entry = entries[head]
        head += 1
        queuedBytes -= entry.size
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64, head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return entry.payload
    }

    /// Discards everything queued: a receiver that is being closed gets nothing more.
    public mutating func removeAll() {
        entries.removeAll()
        head = 0
        queuedBytes = 0
    }

    /// The drops since the last report, at most once per ``Limits/reportInterval``; nil while
    /// there is nothing new or the last report is too recent.
    public mutating func congestionReport(now: ContinuousClock.Instant) -> CongestionReport? {
        guard unreportedFrames > 0 else { return nil }
        if let lastReport, now - lastReport < limits.reportInterval { return nil }
        let report = CongestionReport(
            droppedFrames: unreportedFrames, droppedBytes: unreportedBytes,
            queuedBytes: queuedBytes, queueDelay: delay(at: now))
        unreportedFrames = 0
        unreportedBytes = 0
        lastReport = now
        return report
    }

    private mutating func removeQueued(where matches: (QueuedKind) -> Bool, reason: FrameDropReason) -> FrameDrop {
        var drop = FrameDrop(reason: reason, frames: 0, bytes: 0)
        var kept: [Entry] = []
        kept.reserveCapacity(count)
        for entry in entries[head...] {
            if matches(entry.kind) {
                drop.frames += 1
                drop.bytes += entry.size
            } else {
                kept.append(entry)
            }
        }
        entries = kept
        head = 0
        queuedBytes -= drop.bytes
        return drop
    }

    private mutating func record(_ drop: FrameDrop, into outcome: inout EnqueueOutcome) {
        guard drop.frames > 0 else { return }
        outcome.drops.append(drop)
        unreportedFrames += drop.frames
        unreportedBytes += drop.bytes
    }
}
