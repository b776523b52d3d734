/// Every limit the relay enforces, with the values docs/PROTOCOL.md promises as defaults.
/// Tests shorten the timers and shrink the queue so that the policies can be observed in
/// seconds; the executable always uses the defaults.
public struct RelayLimits: Sendable, Equatable {
    /// Largest text message (close 4413 above it).
    public var maxTextBytes = 16 * 1024
    /// Largest binary message: 1 MiB of SFrame frame plus envelope and header (close 4413).
    public var maxBinaryBytes = (1 << 20) + 64
    /// Largest single WebSocket frame the decoder accepts at all. Above the message limits so
    /// that an oversize message is answered with 4413 and an error message; a frame above
    /// this is refused by the WebSocket layer itself (1009) before it is buffered.
    public var maxFrameBytes = 4 << 20
    public var textMessagesPerSecond = 50.0
    public var binaryMessagesPerSecond = 2000.0
    /// The first message must arrive within this time (close 4408).
    public var helloTimeout: Duration = .seconds(5)
    /// A socket that received nothing (not even a ping or pong) for this long is closed (4408).
    public var idleTimeout: Duration = .seconds(60)
    /// After this much silence the relay pings the peer, so that a live peer that has nothing
    /// to say answers with a pong and is not taken for idle.
    public var pingAfterSilence: Duration = .seconds(20)
    /// How long a session waits for its device to come back.
    public var deviceResumeWindow: Duration = .seconds(60)
    /// Time for a peer to answer the relay's close frame before the socket is closed hard.
    public var closeGrace: Duration = .seconds(2)
    /// Sessions one provisioned device may hold at once (open plus waiting for resume).
    public var sessionsPerDevice = 4
    /// Per-receiver send queue.
    public var queue = ReceiverQueueLimits()
    /// Unsent bytes the kernel may hold per socket (`TCP_NOTSENT_LOWAT`). Without it Linux
    /// buffers megabytes for a slow receiver, seconds of video the drop policy never sees
    /// because it only watches its own queue; with it the backlog stays in the queue.
    public var socketUnsentBytes = 32 * 1024

    public init() {}
}

/// A token bucket: up to one second's worth of messages in a burst, refilled continuously.
/// A fixed one-second window would let a peer send twice the rate across a window edge.
struct MessageRateLimiter {
    private let ratePerSecond: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant

    init(ratePerSecond: Double, now: ContinuousClock.Instant) {
        self.ratePerSecond = ratePerSecond
        self.tokens = ratePerSecond
        self.last = now
    }

    /// Takes one token; false when the peer exceeds the rate.
    mutating func allow(now: ContinuousClock.Instant) -> Bool {
        let elapsed = now - last
        last = now
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(ratePerSecond, tokens + max(0, seconds) * ratePerSecond)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
