import CALSA
import CPulse

/// Versions of the C libraries this binary runs with, for `sightctl version` and bug reports.
public enum LinkedLibraries {
    public static var versions: [String: String] {
        var versions: [String: String] = [:]
        if let alsa = snd_asoundlib_version() { versions["alsa-lib"] = String(cString: alsa) }
        if let pulse = pa_get_library_version() { versions["libpulse"] = String(cString: pulse) }
        return versions
    }
}
