import Foundation

/// One entry of a preference list (`camera.preference`, `audio.capture_preference`,
/// `audio.playback_preference`): a device identity as `sightctl devices` shows it, a device
/// path or /dev link, or `KEY=VALUE` pairs joined by commas that must all match the device's
/// udev properties. One syntax for every role, so an operator learns it once.
public struct DevicePreference: Sendable, Equatable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) { self.text = text }

    public var description: String { text }

    public func matches(_ device: DiscoveredDevice) -> Bool {
        if text.hasPrefix("/dev/") { return device.devnode == text || device.stableLink == text }
        if text == device.identity { return true }
        return text.split(separator: ",").allSatisfy { pair in
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.count == 2 && device.properties[parts[0]] == parts[1]
        }
    }
}
