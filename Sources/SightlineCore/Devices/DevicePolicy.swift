import Foundation

/// Which device of one role (camera, microphone, speaker) to use, as a state machine fed with
/// discovery events and the time. The camera and the audio devices share it, so hotplug
/// behaves the same for both.
///
/// - The configured preferences rank devices (first match wins); other devices of the role
///   follow in the order they appeared, unless `fallbackToAny` is off.
/// - A better-ranked device appearing is used at once (fail-back); the active device vanishing
///   makes the next one take over, but only after `switchDelay`, so a flapping cable brings
///   back the same device instead of bouncing between two.
/// - With no device the decision is a placeholder with the reason.
public struct DevicePolicy: Sendable {
    public enum Decision: Sendable, Equatable {
        case use(DiscoveredDevice)
        case placeholder(String)
    }

    public typealias Preference = DevicePreference

    public let role: DeviceRole
    public let preferences: [Preference]
    public let fallbackToAny: Bool
    public let switchDelay: Duration
    private var available: [DiscoveredDevice] = []
    public private(set) var decision: Decision
    private var lostAt: ContinuousClock.Instant?
    /// Identity of the device used last: it may return during the switch delay.
    private var lastActive: String?
    /// Devices that failed while present (no remove event): passed over until they are added anew.
    private var failedSyspaths: Set<String> = []

    public init(role: DeviceRole, preferences: [Preference], fallbackToAny: Bool, switchDelay: Duration) {
        self.role = role
        decision = .placeholder(Self.nothingFound(role))
        self.preferences = preferences
        self.fallbackToAny = fallbackToAny
        self.switchDelay = switchDelay
    }

    /// The placeholder's reason while no device of the role is present ("no camera found").
    public static func nothingFound(_ role: DeviceRole) -> String { "no \(role.rawValue) found" }

    /// The devices of the role that are present, in the order they appeared.
    public var devices: [DiscoveredDevice] { available }

    /// A device appeared (or was found at start). Returns the new decision when it changed.
    public mutating func added(_ device: DiscoveredDevice, at now: ContinuousClock.Instant) -> Decision? {
        guard device.role == role else { return nil }
        available.removeAll { $0.syspath == device.syspath }
        available.append(device)
        failedSyspaths.remove(device.syspath)
        return reconsider(at: now)
    }

    /// The device failed without going away (the driver reports it gone, or it stopped
    /// delivering). With another device to use, it is passed over (after `switchDelay`) until
    /// it is added anew; alone, it stays chosen and its user keeps retrying it.
    public mutating func failed(syspath: String, at now: ContinuousClock.Instant) -> Decision? {
        guard available.contains(where: { $0.syspath == syspath }), !failedSyspaths.contains(syspath) else { return nil }
        failedSyspaths.insert(syspath)
        guard case .use(let active) = decision, active.syspath == syspath, best != nil else { return nil }
        lostAt = now
        decision = .placeholder("\(role.rawValue) \(active.name) failed; switching to another one")
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
            decision = .placeholder("\(role.rawValue) \(gone.name) disconnected; waiting for it to return")
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

    /// Why the policy would use `device`, for `sightctl audio` and `sightctl devices`.
    public func reason(for device: DiscoveredDevice) -> String {
        if let index = preferences.firstIndex(where: { $0.matches(device) }) {
            return "matches preference \(index + 1) of \(preferences.count) (\(preferences[index]))"
        }
        return preferences.isEmpty ? "the first \(role.rawValue) found (no preference configured)" : "no preferred \(role.rawValue) present; any other allowed"
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
            if case .use = decision { decision = .placeholder(Self.nothingFound(role)) }
            return decision == previous ? nil : decision
        }
        switch decision {
        case .use(let active):
            if let activeRank = rank(active), let candidateRank = rank(candidate), candidateRank < activeRank {
                decision = .use(candidate)
            }
        case .placeholder:
            // Right after the active device vanished, give it `switchDelay` to come back.
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

/// The camera's policy: `DevicePolicy` with role `.camera`.
public typealias CameraPolicy = DevicePolicy
