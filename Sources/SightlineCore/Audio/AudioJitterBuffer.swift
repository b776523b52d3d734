/// Puts the expert's audio packets, which cross the relay with varying delay and now and then
/// out of order or not at all, back into a steady 20 ms cadence for the speaker.
///
/// The playback side calls `pop` once per 20 ms frame it plays; packets go in with `insert` as
/// they arrive. The buffer holds a *target depth* of frames ahead of playback: enough to cover
/// the worst lateness seen over the last two seconds (relative to the earliest packet, so a
/// constant network delay costs nothing), never less than `minimumDepth`, never more than
/// `maximumDepth`. The queue grows towards a higher target by stretching: when the packet due
/// is late and the queue is thinner than the target, a concealed frame is played and the
/// packet keeps its turn. It shrinks by skipping a frame when the queue has stayed deeper than
/// needed for a while, so delay does not stick after a burst. Holes are reported so the decoder can fill them: with the next packet's in-band FEC
/// when that one is already here, by concealment (PLC) otherwise. Packets that arrive after
/// their turn are dropped and counted.
///
/// Pure and clock-free: arrival times are passed in, so tests drive it with made-up schedules.
public struct AudioJitterBuffer<Payload: Sendable & Equatable>: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Frames kept ahead of playback at least (1 frame = 20 ms).
        public var minimumDepth = 1
        /// Upper bound of the target and of the queue; older frames are dropped past it.
        public var maximumDepth = 10
        /// Packets over which lateness is measured (100 = 2 s).
        public var window = 100
        /// Pops with the queue deeper than the target before one frame is skipped (200 ms).
        public var shrinkAfter = 10
        /// Frames concealed in a row before playback stops and waits to refill.
        public var concealLimit = 5

        public init() {}
    }

    public enum Playout: Sendable, Equatable {
        /// Play this packet.
        case packet(Payload, sequence: UInt64)
        /// `sequence` is missing but the packet after it is here: decode it with FEC for this slot.
        case recover(next: Payload, sequence: UInt64)
        /// `sequence` is missing: conceal (Opus PLC).
        case conceal(sequence: UInt64)
        /// Nothing to play yet (filling up before the start, or after the stream ran dry).
        case silence
    }

    public struct Statistics: Sendable, Equatable, Codable {
        public var received: UInt64 = 0
        public var played: UInt64 = 0
        public var recovered: UInt64 = 0
        public var concealed: UInt64 = 0
        /// Arrived after their turn.
        public var late: UInt64 = 0
        public var duplicates: UInt64 = 0
        /// Skipped to bring the delay down.
        public var skipped: UInt64 = 0
        /// Times the stream ran dry and playback waited to refill.
        public var underruns: UInt64 = 0
        public var targetDepth = 0
        public var depth = 0

        public init() {}
    }

    public let configuration: Configuration
    public private(set) var statistics = Statistics()
    /// Buffered packets by unwrapped sequence number.
    private var packets: [UInt64: Payload] = [:]
    /// The next sequence to play; nil while filling.
    private var next: UInt64?
    /// Everything below this has had its turn (played, recovered, concealed or skipped).
    private var floor: UInt64 = 0
    /// The highest unwrapped sequence seen, to unwrap the next 16-bit one.
    private var highest: UInt64?
    /// `arrival − sequence × 20 ms` of recent packets, in microseconds.
    private var transits: [Int64] = []
    private var concealedInARow = 0
    private var deepPops = 0
    /// Pops while filling with something buffered.
    private var waited = 0

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        statistics.targetDepth = configuration.minimumDepth
    }

    /// Frames the buffer aims to hold, from the lateness seen in the window.
    public var targetDepth: Int { statistics.targetDepth }
    /// Frames buffered now.
    public var depth: Int { packets.count }

    /// Adds a packet that arrived at `arrival` (any monotonic clock) with the sender's 16-bit
    /// sequence number (one per 20 ms frame, wrapping).
    public mutating func insert(sequence wire: UInt16, payload: Payload, arrival: Duration) {
        let sequence = unwrap(wire)
        statistics.received += 1
        let transit = Self.microseconds(arrival) - Int64(sequence) * 20_000
        let restartDistance = 50 * UInt64(configuration.maximumDepth)
        if next != nil || floor > 0, sequence > max(floor, next ?? 0) + restartDistance || sequence + restartDistance < floor {
            // Nowhere near what plays now: the sender started over. Refill from this packet.
            reset(keepingStatistics: true)
            highest = sequence
        }
        transits.append(transit)
        if transits.count > configuration.window { transits.removeFirst(transits.count - configuration.window) }
        updateTarget()
        if sequence < floor {
            statistics.late += 1
            return
        }
        guard packets[sequence] == nil else {
            statistics.duplicates += 1
            return
        }
        packets[sequence] = payload
        if packets.count > configuration.maximumDepth, let oldest = packets.keys.min() {
            packets[oldest] = nil
            statistics.skipped += 1
            if let next, oldest >= next { self.next = oldest + 1 }
            floor = max(floor, oldest + 1)
        }
        statistics.depth = packets.count
    }

    /// What to play for the next 20 ms, decided at `now` when the caller has a clock (the
    /// one of the arrival times).
    ///
    /// With the time the buffer keeps its delay in time rather than in frames: it starts, and
    /// later shrinks to, the moment a packet as slow as the slowest in the window would be in.
    /// Counted in whole frames, the delay is rounded up to a frame more than the jitter needs,
    /// and that frame is heard for the whole stream.
    public mutating func pop(at now: Duration? = nil) -> Playout {
        defer { statistics.depth = packets.count }
        let slack = now.flatMap { now in transits.max().map { Self.microseconds(now) - $0 } }
        guard var sequence = next else {
            // Filling: start at the oldest packet once the target depth is buffered, once its
            // slowest likely arrival has passed, or (without a clock) once the first packet has
            // waited as long as the target (a short stream must play too).
            guard let oldest = packets.keys.min() else { return .silence }
            waited += 1
            let safe = slack.map { $0 >= Int64(oldest) * 20_000 } ?? (waited > targetDepth)
            guard packets.count >= targetDepth || safe else { return .silence }
            waited = 0
            next = oldest
            return pop(at: now)
        }
        // Later than needed for a while: skip one frame (the oldest) to bring delay down. With
        // a clock, "later than needed" is a whole frame behind the slowest arrival seen; without
        // one, a queue deeper than the target.
        let behind = slack.map { $0 - Int64(sequence) * 20_000 >= 20_000 && packets[sequence + 1] != nil }
        if behind ?? (packets.count > targetDepth + 1) {
            deepPops += 1
            if deepPops >= configuration.shrinkAfter, packets[sequence] != nil {
                packets[sequence] = nil
                statistics.skipped += 1
                sequence += 1
                deepPops = 0
            }
        } else {
            deepPops = 0
        }
        next = sequence + 1
        floor = sequence + 1
        if let payload = packets.removeValue(forKey: sequence) {
            concealedInARow = 0
            statistics.played += 1
            return .packet(payload, sequence: sequence)
        }
        if packets.isEmpty, concealedInARow >= configuration.concealLimit {
            // Ran dry: stop concealing and wait to refill; this slot was not used, so its
            // packet may still come and play.
            statistics.underruns += 1
            concealedInARow = 0
            next = nil
            floor = sequence
            return .silence
        }
        concealedInARow += 1
        if packets.count + 1 < targetDepth {
            // Stretch: the late packet keeps its turn, one frame more is buffered from now on.
            next = sequence
            floor = sequence
        } else if let following = packets[sequence + 1] {
            statistics.recovered += 1
            return .recover(next: following, sequence: sequence)
        }
        statistics.concealed += 1
        return .conceal(sequence: sequence)
    }

    /// Forgets every packet and starts filling again (a new sender, a new call).
    public mutating func reset(keepingStatistics: Bool = false) {
        packets = [:]
        next = nil
        floor = 0
        highest = nil
        transits = []
        concealedInARow = 0
        deepPops = 0
        waited = 0
        if !keepingStatistics { statistics = Statistics() }
        updateTarget()
    }

    private static func microseconds(_ time: Duration) -> Int64 {
        time.components.seconds * 1_000_000 + time.components.attoseconds / 1_000_000_000_000
    }

    private mutating func unwrap(_ wire: UInt16) -> UInt64 {
        guard let highest else {
            // Far enough from zero that a few packets from before the first one cannot underflow.
            let first = UInt64(1 << 16) + UInt64(wire)
            self.highest = first
            return first
        }
        let delta = Int64(Int16(bitPattern: wire &- UInt16(truncatingIfNeeded: highest)))
        let sequence = UInt64(max(0, Int64(highest) + delta))
        self.highest = max(highest, sequence)
        return sequence
    }

    private mutating func updateTarget() {
        guard let earliest = transits.min(), let latest = transits.max() else {
            statistics.targetDepth = configuration.minimumDepth
            return
        }
        // Frames of lateness to cover, plus the frame being played.
        let lateness = Int((latest - earliest + 19_999) / 20_000)
        statistics.targetDepth = min(configuration.maximumDepth, max(configuration.minimumDepth, lateness + 1))
    }
}
