import Foundation

/// Which camera to use, as a state machine fed with discovery events and the time.
///
/// - The configured preferences rank cameras (first match wins); other cameras follow in the
///   order they appeared, unless `fallbackToAny` is off.
/// - A better-ranked camera appearing is used at once (fail-back); the active camera vanishing
///   makes the next one take over, but only after `switchDelay`, so a flapping cable brings
///   back the same camera instead of bouncing between two.
/// - With no camera the decision is a placeholder with the reason.
public struct CameraPolicy: Sendable {
    public enum Decision: Sendable, Equatable {
        case use(DiscoveredDevice)
        case placeholder(String)
    }

    /// One preference: a device identity as `sightctl devices` shows it, a device path or
    /// /dev/v4l link, or `KEY=VALUE` pairs joined by commas that must all match the device's
    /// udev properties.
    public struct Preference: Sendable, Equatable {
        public let text: String

        public init(_ text: String) { self.text = text }

        func matches(_ device: DiscoveredDevice) -> Bool {
            if text.hasPrefix("/dev/") { return device.devnode == text || device.stableLink == text }
            if text == device.identity { return true }
            return text.split(separator: ",").allSatisfy { pair in
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                return parts.count == 2 && device.properties[parts[0]] == parts[1]
            }
        }
    }

    public let preferences: [Preference]
    public let fallbackToAny: Bool
    public let switchDelay: Duration
    private var available: [DiscoveredDevice] = []
    public private(set) var decision: Decision = .placeholder("no camera found")
    private var lostAt: ContinuousClock.Instant?
    /// Identity of the camera used last: it may return during the switch delay.
    private var lastActive: String?
    /// Cameras that failed while present (no remove event): passed over until they are added anew.
    private var failedSyspaths: Set<String> = []

    public init(preferences: [Preference], fallbackToAny: Bool, switchDelay: Duration) {
        self.preferences = preferences
        self.fallbackToAny = fallbackToAny
        self.switchDelay = switchDelay
    }

    public var cameras: [DiscoveredDevice] { available }

    /// A camera appeared (or was found at start). Returns the new decision when it changed.
    public mutating func added(_ device: DiscoveredDevice, at now: ContinuousClock.Instant) -> Decision? {
        guard device.role == .camera else { return nil }
        available.removeAll { $0.syspath == device.syspath }
        available.append(device)
        failedSyspaths.remove(device.syspath)
        return reconsider(at: now)
    }

    /// The camera failed without going away (the driver reports it gone, or it stopped
    /// delivering). With another camera to use, it is passed over (after `switchDelay`) until
    /// it is added anew; alone, it stays chosen and its user keeps retrying it.
    public mutating func failed(syspath: String, at now: ContinuousClock.Instant) -> Decision? {
        guard available.contains(where: { $0.syspath == syspath }), !failedSyspaths.contains(syspath) else { return nil }
        failedSyspaths.insert(syspath)
        guard case .use(let active) = decision, active.syspath == syspath, best != nil else { return nil }
        lostAt = now
        decision = .placeholder("camera \(active.name) failed; switching to another one")
        _ = reconsider(at: now)
        return decision
    }

    public mutating func removed(syspath: String, at now: ContinuousClock.Instant) -> Decision? {
        guard let gone = available.first(where: { $0.syspath == syspath }) else { return nil }
        available.removeAll { $0.syspath == syspath }
        failedSyspaths.remove(syspath)
        let wasActive: Bool
        switch decision {
        case .use(let active): wasActive = active.syspath == syspath
        // It may have failed a moment before its remove event: it is gone, not broken.
        case .placeholder: wasActive = lastActive == gone.identity
        }
        if wasActive {
            let previous = decision
            lostAt = lostAt ?? now
            decision = .placeholder("camera \(gone.name) disconnected; waiting for it to return")
            _ = reconsider(at: now)
            return decision == previous ? nil : decision
        }
        return reconsider(at: now)
    }

    /// Time passed: a pending switch may be due. Returns the new decision when it changed.
    public mutating func tick(at now: ContinuousClock.Instant) -> Decision? {
        reconsider(at: now)
    }

    /// When the caller should tick next, if a switch is pending.
    public var pendingSwitchDeadline: ContinuousClock.Instant? {
        guard let lostAt, case .placeholder = decision, best != nil else { return nil }
        return lostAt + switchDelay
    }

    /// Rank of a device: index of the first matching preference; unmatched devices rank after
    /// all preferences (or not at all without fallback).
    func rank(_ device: DiscoveredDevice) -> Int? {
        if let index = preferences.firstIndex(where: { $0.matches(device) }) { return index }
        return fallbackToAny || preferences.isEmpty ? preferences.count : nil
    }

    private var best: DiscoveredDevice? {
        available.enumerated()
            .filter { !failedSyspaths.contains($0.element.syspath) }
            .compactMap { entry in rank(entry.element).map { (rank: $0, order: entry.offset, device: entry.element) } }
            .min { ($0.rank, $0.order) < ($1.rank, $1.order) }?.device
    }

    private mutating func reconsider(at now: ContinuousClock.Instant) -> Decision? {
        let previous = decision
        guard let candidate = best else {
            if case .use = decision { decision = .placeholder("no camera found") }
            return decision == previous ? nil : decision
        }
        switch decision {
        case .use(let active):
            if let activeRank = rank(active), let candidateRank = rank(candidate), candidateRank < activeRank {
                decision = .use(candidate)
            }
        case .placeholder:
            // Right after the active camera vanished, give it `switchDelay` to come back.
            if let lostAt, now < lostAt + switchDelay, candidate.identity != lastActive {
                break
            }
            decision = .use(candidate)
            lostAt = nil
        }
        if case .use(let device) = decision { lastActive = device.identity }
        return decision == previous ? nil : decision
    }
}
