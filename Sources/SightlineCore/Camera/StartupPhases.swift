/// One step of bringing a camera up, with how long it took.
public struct TimedPhase: Codable, Sendable, Equatable {
    public var name: String
    public var ms: Double

    public init(name: String, ms: Double) {
        self.name = name
        self.ms = ms
    }
}

/// Where the time between a camera's add event and its first frame went: the instants at which
/// each step ended, turned into consecutive phases that add up to the whole interval. Operators
/// read it in the status next to `firstFrameAfterAddMs`; the hotplug benchmark reports its medians.
public struct StartupTimeline: Sendable {
    public let start: ContinuousClock.Instant
    public private(set) var marks: [(name: String, at: ContinuousClock.Instant)] = []

    public init(start: ContinuousClock.Instant) {
        self.start = start
    }

    /// The step `name` ended at `instant`; steps are marked in order.
    public mutating func mark(_ name: String, at instant: ContinuousClock.Instant = .now) {
        marks.append((name, instant))
    }

    /// Each step's duration since the end of the one before (the first since `start`).
    public var phases: [TimedPhase] {
        var previous = start
        return marks.map { mark in
            defer { previous = mark.at }
            return TimedPhase(name: mark.name, ms: (mark.at - previous).inMilliseconds)
        }
    }

    /// From `start` to the last mark.
    public var totalMs: Double { ((marks.last?.at ?? start) - start).inMilliseconds }
}

extension Duration {
    /// The duration in (fractional) milliseconds, for status fields and logs.
    public var inMilliseconds: Double {
        Double(components.seconds) * 1_000 + Double(components.attoseconds) / 1e15
    }
}
