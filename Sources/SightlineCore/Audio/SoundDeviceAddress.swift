/// Where an ALSA PCM node that discovery found lives: card and device number, from the kernel's
/// name for it (`pcmC<card>D<device>c` for capture, `…p` for playback). Card numbers follow plug
/// order, so the address is read from the node each time it is chosen and never configured.
public struct SoundDeviceAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
    public enum Direction: String, Sendable {
        case capture, playback
    }

    public let card: Int
    public let device: Int
    public let direction: Direction

    public init(card: Int, device: Int, direction: Direction) {
        self.card = card
        self.device = device
        self.direction = direction
    }

    /// Parses a PCM node's kernel name (`pcmC1D0c`); nil for anything else (`controlC1`, `card1`).
    public init?(sysname: some StringProtocol) {
        guard sysname.hasPrefix("pcmC"), let last = sysname.last,
              let split = sysname.firstIndex(of: "D") else { return nil }
        let cardText = sysname[sysname.index(sysname.startIndex, offsetBy: 4)..<split]
        let deviceText = sysname[sysname.index(after: split)..<sysname.index(before: sysname.endIndex)]
        guard let card = Int(cardText), let device = Int(deviceText), card >= 0, device >= 0 else { return nil }
        switch last {
        case "c": direction = .capture
        case "p": direction = .playback
        default: return nil
        }
        self.card = card
        self.device = device
    }

    /// The address of a microphone or speaker discovery reported; nil for other devices.
    public init?(_ discovered: DiscoveredDevice) {
        guard discovered.role == .microphone || discovered.role == .speaker,
              let sysname = discovered.syspath.split(separator: "/").last else { return nil }
        self.init(sysname: sysname)
    }

    /// The node through ALSA's `plug` layer: the daemon asks for 48 kHz mono S16, which few
    /// cards take natively (USB headsets are often stereo, 44.1 kHz or 24-bit), and `plug`
    /// converts rate, channels and format where `hw` would refuse.
    public var alsaPCM: String { "plughw:CARD=\(card),DEV=\(device)" }

    public var description: String { "ALSA card \(card) device \(device) (\(direction.rawValue))" }
}

/// A source or sink as a sound server lists it (libpulse's introspection).
public struct SoundServerDevice: Sendable, Equatable {
    public var name: String
    /// The server's property list (`alsa.card`, `alsa.device`, `device.description`, …).
    public var properties: [String: String]
    /// A sink's monitor source: it records what the sink plays, it is no microphone, and it
    /// carries the sink's `alsa.*` properties, so it must never match a capture node.
    public var isMonitor: Bool

    public init(name: String, properties: [String: String], isMonitor: Bool = false) {
        self.name = name
        self.properties = properties
        self.isMonitor = isMonitor
    }
}

/// Finds the sound server's source or sink for an ALSA node: PulseAudio's ALSA modules
/// (`module-alsa-card`, loaded per card by `module-udev-detect`) write the node's card and device
/// numbers into every source and sink they make as `alsa.card` and `alsa.device`.
public enum SoundServerMatch {
    public struct NoMatch: Error, Sendable, Equatable, CustomStringConvertible {
        public let address: SoundDeviceAddress
        /// What the server listed, for the message.
        public let listed: [String]

        public var description: String {
            let kind = address.direction == .capture ? "source" : "sink"
            let seen = listed.isEmpty ? "it lists no \(kind)s" : "its \(kind)s are \(listed.joined(separator: ", "))"
            return "the sound server has no \(kind) for \(address) (none with alsa.card=\(address.card) alsa.device=\(address.device); "
                + "\(seen)): it may not manage this card; check `pactl list \(kind)s`, let PulseAudio load it "
                + "(module-udev-detect), or set audio.backend: alsa to open the card directly"
        }
    }

    /// The name of the server's device for `address`, or why there is none. `devices` must be
    /// sources for a capture address and sinks for a playback address.
    public static func device(for address: SoundDeviceAddress, among devices: [SoundServerDevice]) -> Result<String, NoMatch> {
        let candidates = devices.filter { !$0.isMonitor || address.direction == .playback }
        if let match = candidates.first(where: {
            $0.properties["alsa.card"] == String(address.card) && $0.properties["alsa.device"] == String(address.device)
        }) {
            return .success(match.name)
        }
        return .failure(NoMatch(address: address, listed: devices.map { $0.isMonitor ? "\($0.name) (a monitor)" : $0.name }))
    }
}
