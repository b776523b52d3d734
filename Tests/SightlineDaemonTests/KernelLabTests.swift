import Foundation
import SightlineTesting
import Testing

/// Boots the kernel lab once and runs every device test inside it (the SightlineLabTests
/// target) against the real vivid and snd-aloop drivers. In CI it always runs; elsewhere it is
/// skipped, with the reason printed, when the lab's packages are missing.
@Suite("Kernel lab")
struct KernelLabTests {
    static let script = KernelLab.projectRoot + "/scripts/kernel-lab"
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"

    /// QEMU and a Debian kernel with its modules are what the lab cannot do without.
    static var labAvailable: Bool {
        let kernels = ((try? FileManager.default.contentsOfDirectory(atPath: "/boot")) ?? []).filter { $0.hasPrefix("vmlinuz-") }
        return FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64") && !kernels.isEmpty
    }

    @Test("device tests pass in the kernel lab (vivid camera, snd-aloop)",
          .enabled(if: inCI || labAvailable, "kernel lab packages missing: run scripts/install-deps lab (CI installs them)"),
          .timeLimit(.minutes(20)))
    func deviceTestsInLab() throws {
        let testBinary = CommandLine.arguments[0]
        let result = try CommandLineTool.run(Self.script, [
            "--timeout", "900", "--module", "vivid n_devs=2", "--module", "snd-aloop", "--",
            "env", "\(KernelLab.guestVariable)=1", testBinary, "--testing-library", "swift-testing",
            "--filter", "SightlineLabTests",
        ])
        print(result.stdout)
        print(result.stderr)
        #expect(result.status == 0, "kernel lab exited \(result.status)")
        let summary = result.stdout.split(separator: "\n").last { $0.contains("Test run with") }.map(String.init) ?? ""
        #expect(summary.contains("passed"), "no passing summary from the lab: \(summary)")
        let count = summary.split(separator: " ").compactMap { Int($0) }.first ?? 0
        #expect(count >= 7, "only \(count) device tests ran in the lab")
    }
}
