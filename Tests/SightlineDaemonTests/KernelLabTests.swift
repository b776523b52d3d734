import Foundation
import SightlineTesting
import Testing

/// Boots the kernel lab once and runs every device test inside it (the SightlineLabTests
/// target) against the real vivid and snd-aloop drivers. In CI it always runs; elsewhere it is
/// skipped, with the reason printed, when the lab's packages are missing.
@Suite("Kernel lab", .serialized)
struct KernelLabTests {
    static let script = KernelLab.projectRoot + "/scripts/kernel-lab"
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"

    /// QEMU and a Debian kernel with its modules are what the lab cannot do without.
    static var labAvailable: Bool {
        let kernels = ((try? FileManager.default.contentsOfDirectory(atPath: "/boot")) ?? []).filter { $0.hasPrefix("vmlinuz-") }
        return FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64") && !kernels.isEmpty
    }

    @Test("device tests pass in the kernel lab (vivid camera, snd-aloop, vicodec, v4l2loopback)",
          .enabled(if: inCI || labAvailable, "kernel lab packages missing: run scripts/install-deps lab (CI installs them)"),
          .timeLimit(.minutes(25)))
    func deviceTestsInLab() async throws {
        let testBinary = CommandLine.arguments[0]
        // vicodec (the kernel's virtual M2M codec) for the hardware-encoder tests and v4l2loopback
        // for the camera passthrough tests: CI has their build packages, so there a failed build
        // fails; elsewhere those tests skip.
        var insmods: [String] = []
        var guestEnvironment = ["\(KernelLab.guestVariable)=1"]
        switch try await LabModules.arguments() {
        case .success(let arguments):
            insmods = arguments.insmods
            guestEnvironment += arguments.guestEnvironment
        case .failure(let unavailable):
            #expect(!Self.inCI, "\(unavailable)")
            print("kernel lab: M2M encoder and camera passthrough tests will skip: \(unavailable)")
        }
        let result = try await CommandLineTool.runOnOwnThread(Self.script, [
            "--timeout", "1300", "--module", "vivid n_devs=2", "--module", "snd-aloop",
        ] + insmods + ["--", "env"] + guestEnvironment + [
            testBinary, "--testing-library", "swift-testing", "--filter", "SightlineLabTests",
        ])
        print(result.stdout)
        print(result.stderr)
        #expect(result.status == 0, "kernel lab exited \(result.status)")
        let summary = result.stdout.split(separator: "\n").last { $0.contains("Test run with") }.map(String.init) ?? ""
        #expect(summary.contains("passed"), "no passing summary from the lab: \(summary)")
        let count = summary.split(separator: " ").compactMap { Int($0) }.first ?? 0
        #expect(count >= 10, "only \(count) device tests ran in the lab")
    }

    @Test("the expert's browser on the host shows vivid from the guest's daemon, through the guest's relay and a port forward on 127.0.0.1; it stays in its session while the camera is unplugged and re-plugged",
          .enabled(if: inCI || labAvailable, "kernel lab packages missing: run scripts/install-deps lab (CI installs them)"),
          .enabled(if: HeadlessChromium.unavailableReason == nil, "\(HeadlessChromium.unavailableReason ?? ""); scripts/install-deps test installs it"),
          .timeLimit(.minutes(12)))
    func viewerThroughLab() async throws {
        // The exchange directory sits in the work tree, which the guest shares read-write.
        let exchange = KernelLab.projectRoot + "/.build/lab-exchange-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: exchange, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: exchange) }
        let certificate = try TestCertificate(directory: exchange)
        let port = try LoopbackPort.free()
        let output = exchange + "/lab.log"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let lab = Process()
        lab.executableURL = URL(fileURLWithPath: Self.script)
        lab.arguments = [
            "--timeout", "600", "--module", "vivid", "--forward", "\(port):\(port)", "--",
            "env", "\(KernelLab.guestVariable)=1", "SIGHTLINE_LAB_EXCHANGE=\(exchange)", "SIGHTLINE_LAB_PORT=\(port)",
            CommandLine.arguments[0], "--testing-library", "swift-testing", "--filter", "ViewerLabTests",
        ]
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        lab.standardOutput = log
        lab.standardError = log
        try lab.run()
        defer { if lab.isRunning { lab.terminate() } }
        func labLog() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }

        var invite: String?
        let booted = ContinuousClock.now + .seconds(400)
        while invite == nil, lab.isRunning, ContinuousClock.now < booted {
            invite = try? String(contentsOfFile: exchange + "/invite", encoding: .utf8)
            if invite == nil { try await Task.sleep(for: .milliseconds(500)) }
        }
        let link = try #require(invite, "the guest published no invite:\n\(labLog())")
        #expect(link.hasPrefix("https://127.0.0.1:\(port)/v/"))

        // Chromium trusts the relay's key and nothing else; the page is a secure context over TLS.
        let browser = try await HeadlessChromium.start(extraArguments: ["--ignore-certificate-errors-spki-list=\(certificate.spkiSHA256)"])
        do {
            try await browser.open(link)
            var stats = LiveViewerTests.Stats(verified: false, framesDecoded: 0, decryptFailures: 0, decodeErrors: 0)
            let deadline = ContinuousClock.now + .seconds(180)
            while stats.framesDecoded < 30, ContinuousClock.now < deadline {
                if let current = try? await browser.evaluate("return window.sightlineViewer ? window.sightlineViewer.stats : null;")
                    .decode(LiveViewerTests.Stats.self) { stats = current }
                try await Task.sleep(for: .milliseconds(500))
            }
            let browserLog = try await browser.browserLog().joined(separator: "\n")
            #expect(stats.framesDecoded >= 30, "viewer \(stats)\nbrowser:\n\(browserLog)\nlab:\n\(labLog())")
            #expect(stats.verified)
            #expect(stats.decryptFailures == 0)
            #expect(stats.decodeErrors == 0)
            // vivid stamps the time into its picture, so a live stream changes between samples.
            let first = try await canvasDigest(browser)
            try await Task.sleep(for: .seconds(2))
            let second = try await canvasDigest(browser)
            #expect(first != second, "the picture did not change in 2 s")
            let png = try await browser.screenshot()
            try png.write(to: URL(fileURLWithPath: try LiveViewerTests.artifactPath("viewer-lab-vivid.png")))

            // The guest unplugs and re-plugs the camera; the viewer keeps its session throughout
            // and goes on decoding without errors.
            let session = try await viewerSession(browser)
            try Data().write(to: URL(fileURLWithPath: exchange + "/watching"))
            let replugged = ContinuousClock.now + .seconds(180)
            while !FileManager.default.fileExists(atPath: exchange + "/replugged"), lab.isRunning, ContinuousClock.now < replugged {
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(FileManager.default.fileExists(atPath: exchange + "/replugged"), "the guest did not re-plug the camera:\n\(labLog())")
            let resumed = try await browser.evaluate("return window.sightlineViewer.stats;").decode(LiveViewerTests.Stats.self)
            var later = resumed
            let more = ContinuousClock.now + .seconds(120)
            while later.framesDecoded < resumed.framesDecoded + 10, ContinuousClock.now < more {
                try await Task.sleep(for: .milliseconds(500))
                later = try await browser.evaluate("return window.sightlineViewer.stats;").decode(LiveViewerTests.Stats.self)
            }
            #expect(later.framesDecoded >= resumed.framesDecoded + 10, "no frames after the camera came back: \(later)")
            #expect(later.decodeErrors == 0 && later.decryptFailures == 0)
            #expect(try await viewerSession(browser) == session, "the viewer left its session during the re-plug")
        } catch {
            await browser.quit()
            try? Data().write(to: URL(fileURLWithPath: exchange + "/watching"))
            try? Data().write(to: URL(fileURLWithPath: exchange + "/done"))
            throw error
        }
        await browser.quit()
        try Data().write(to: URL(fileURLWithPath: exchange + "/done"))

        let finished = ContinuousClock.now + .seconds(120)
        while lab.isRunning, ContinuousClock.now < finished { try await Task.sleep(for: .milliseconds(500)) }
        #expect(!lab.isRunning && lab.terminationStatus == 0, "kernel lab:\n\(labLog())")
        let summary = labLog().split(separator: "\n").last { $0.contains("Test run with") }.map(String.init) ?? ""
        #expect(summary.contains("1 test") && summary.contains("passed"), "guest summary: \(summary)")
        print("viewer through the kernel lab: \(stats(exchange))")
    }

    private func stats(_ exchange: String) -> String {
        ((try? String(contentsOfFile: exchange + "/guest-status", encoding: .utf8)) ?? "no guest status").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The viewer's session and reconnect count: unchanged means it never lost the call.
    private func viewerSession(_ browser: HeadlessChromium) async throws -> String {
        let stats = try await browser.evaluate("const s = window.sightlineViewer.stats; return `${s.session} ${s.reconnects} ${s.peer}`;")
        return stats.string ?? ""
    }

    /// A digest of the canvas's pixels, to tell whether the picture moved.
    private func canvasDigest(_ browser: HeadlessChromium) async throws -> Int? {
        try await browser.evaluate("""
            const canvas = document.getElementById('video');
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let hash = 0;
            for (let i = 0; i < data.length; i += 7) hash = (hash * 31 + data[i]) | 0;
            return hash;
            """).int
    }
}
