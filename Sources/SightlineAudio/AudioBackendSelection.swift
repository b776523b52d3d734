import SightlineCore

/// Turns `audio.backend` into a backend: `pulse` and `alsa` as asked, `auto` PulseAudio when a
/// server answers within a second and ALSA otherwise (a headless device without a sound server).
public enum AudioBackendSelection {
    public struct Choice: Sendable {
        public let backend: any AudioBackend
        /// Why this backend, for the log and `sightctl audio`.
        public let reason: String
    }

    public static func choose(_ kind: AudioBackendKind, pulseServer: String? = nil, alsaConfiguration: String? = nil) -> Choice {
        switch kind {
        case .pulse:
            return Choice(backend: PulseBackend(server: pulseServer), reason: "audio.backend is pulse")
        case .alsa:
            return Choice(backend: ALSABackend(configuration: alsaConfiguration), reason: "audio.backend is alsa")
        case .auto:
            if let problem = PulseBackend.probe(server: pulseServer) {
                return Choice(backend: ALSABackend(configuration: alsaConfiguration), reason: "auto: \(problem.description); using ALSA")
            }
            return Choice(backend: PulseBackend(server: pulseServer), reason: "auto: a PulseAudio server answered")
        }
    }
}
