import Foundation

/// The kernel lab: Debian's kernel under QEMU with the real `vivid` camera and `snd-aloop`
/// sound drivers (scripts/kernel-lab). Device tests run inside it; see docs/TESTING.md.
public enum KernelLab {
    /// Set by the host-side runner for the test process it starts inside the guest.
    public static let guestVariable = "SIGHTLINE_KERNEL_LAB"

    /// Whether this process runs inside the lab's guest.
    public static var insideGuest: Bool {
        ProcessInfo.processInfo.environment[guestVariable] == "1"
    }

    /// Why guest-only tests do not run here.
    public static let notInGuest = "runs inside the kernel lab only (scripts/kernel-lab starts it; the host suite's \"kernel lab\" test drives it)"

    /// The project's top-level directory, found from this source file.
    public static var projectRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// Open descriptors and memory mappings of this process, to catch leaks across cycles.
    public static func resourceCounts() -> (descriptors: Int, mappings: Int) {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
        let maps = (try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8)) ?? ""
        return (descriptors, maps.split(separator: "\n").filter { $0.contains("/dev/video") }.count)
    }

    /// Writes a sysfs attribute, e.g. to unbind or bind vivid's platform device.
    public static func writeSysfs(_ path: String, _ value: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.write(contentsOf: Data(value.utf8))
    }
}

/// The modules Debian's lab kernel lacks, built by `scripts/build-lab-modules`: vicodec and the
/// memory-to-memory framework under it, inserted at boot (`scripts/kernel-lab --insmod`), and
/// v4l2loopback, which the passthrough tests insert themselves with the options each needs and
/// remove again, so no other test meets its camera.
public enum LabModules {
    /// Set in the guest when the host inserted the modules, so the M2M tests there run instead
    /// of skipping.
    public static let guestVariable = "SIGHTLINE_LAB_M2M"
    /// Set in the guest to the built v4l2loopback.ko, which the work tree share makes readable there.
    public static let loopbackVariable = "SIGHTLINE_LAB_LOOPBACK"

    /// Whether this guest process should find vicodec loaded.
    public static var insertedInGuest: Bool { ProcessInfo.processInfo.environment[guestVariable] == "1" }

    /// The v4l2loopback module file the host built for this guest, if it did.
    public static var loopbackModule: String? {
        ProcessInfo.processInfo.environment[loopbackVariable].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Why the M2M tests do not run in this guest.
    public static let notInserted = "vicodec was not inserted into this lab: the host builds it with scripts/build-lab-modules "
        + "(needs linux-source-6.1 and the lab kernel's headers: scripts/install-deps lab)"

    /// Why the passthrough tests do not run in this guest.
    public static let noLoopback = "no v4l2loopback module was handed to this lab: the host builds it with scripts/build-lab-modules "
        + "(fetches v4l2loopback-dkms with apt-get download; needs the lab kernel's headers: scripts/install-deps lab)"

    /// What the host passes to `scripts/kernel-lab`: `--insmod` arguments in load order (vicodec
    /// multiplanar, as hardware encoders are) and `NAME=VALUE` settings for the guest's environment.
    public struct Arguments: Sendable {
        public let insmods: [String]
        public let guestEnvironment: [String]
    }

    /// Builds (or finds cached) the modules; or says why they are not there.
    public static func arguments() async throws -> Result<Arguments, LabModulesUnavailable> {
        let result = try await CommandLineTool.runOnOwnThread(KernelLab.projectRoot + "/scripts/build-lab-modules", [])
        guard result.status == 0 else {
            return .failure(LabModulesUnavailable(reason: "scripts/build-lab-modules exited \(result.status): \(result.stderr)"))
        }
        let files = result.stdout.split(separator: "\n").map(String.init)
        let loopback = files.filter { $0.hasSuffix("/v4l2loopback.ko") }
        let inserted = files.filter { !$0.hasSuffix("/v4l2loopback.ko") }
        return .success(Arguments(
            insmods: inserted.flatMap { file in ["--insmod", file.hasSuffix("/vicodec.ko") ? file + " multiplanar=1" : file] },
            guestEnvironment: ["\(guestVariable)=1"] + loopback.prefix(1).map { "\(loopbackVariable)=\($0)" }))
    }
}

public struct LabModulesUnavailable: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
