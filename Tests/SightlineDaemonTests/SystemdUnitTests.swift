import Foundation
import SightlineTesting
import Testing

/// The shipped units must pass `systemd-analyze verify` and score an exposure of 2.0 or lower
/// in `systemd-analyze security --offline=true`; the udev rules must never widen access.
@Suite("systemd units and udev rules")
struct SystemdUnitTests {
    @Test("scripts/check-units passes: verify clean, exposure at most 2.0, rules safe")
    func unitsPassChecks() throws {
        let binaries = URL(fileURLWithPath: BuiltProducts.path(of: "sightlined")).deletingLastPathComponent().path
        let result = try CommandLineTool.run(KernelLab.projectRoot + "/scripts/check-units", [],
                                             environment: ["SIGHTLINE_BIN_DIR": binaries])
        print(result.stdout)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        for unit in ["sightlined.service", "sightline-relay.service", "sightline-archive.service"] {
            let line = result.stdout.split(separator: "\n").first { $0.hasPrefix(unit) } ?? ""
            let exposure = line.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .punctuationCharacters)) }.first
            #expect(exposure.map { $0 <= 2.0 } == true, "\(unit): \(line)")
        }
    }
}
