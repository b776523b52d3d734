import Foundation
import SightlineControlClient
import SightlineCore
@testable import SightlineDaemon
import SightlineTesting
import Testing

/// The expert's real browser: Debian's Chromium and Firefox, headless, open the invite link
/// from a running daemon (test-pattern camera, OpenH264) through the real relay.
@Suite("Viewer in headless Chromium and Firefox", .serialized)
struct LiveViewerTests {
    struct Stats: Decodable {
        var verified: Bool
        var fingerprint: String?
        var framesDecoded: Int
        var decryptFailures: Int
        var decodeErrors: Int
        var latencyMsP50: Double?
        var fps: Double?
    }

    /// The burned-in frame counter, read back from the canvas's pixels.
    func burnedInCounter(_ browser: any HeadlessBrowser) async throws -> Int? {
        let result = try await browser.evaluate("""
            const canvas = document.getElementById('video');
            const width = Math.min(canvas.width, 200), height = Math.min(canvas.height, 40);
            const pixels = canvas.getContext('2d').getImageData(0, 0, width, height).data;
            const luma = [];
            for (let i = 0; i < pixels.length; i += 4) {
                luma.push(Math.round(0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2]));
            }
            return { width, frameHeight: canvas.height, luma };
            """)
        guard let width = result["width"]?.int, let frameHeight = result["frameHeight"]?.int,
              let luma = result["luma"]?.array?.compactMap({ $0.int.map { UInt8(clamping: $0) } })
        else { return nil }
        return DigitFont.read(count: 7, luma: luma, width: width, frameHeight: frameHeight).flatMap { Int($0) }
    }

    func stats(_ browser: any HeadlessBrowser) async throws -> Stats {
        try await browser.evaluate("return window.sightlineViewer ? window.sightlineViewer.stats : null;").decode(Stats.self)
    }

    @Test("in Chromium, the invite link shows the live picture: frames decode, none fail to decrypt, the burned-in counter advances",
          .enabled(if: HeadlessChromium.unavailableReason == nil, "\(HeadlessChromium.unavailableReason ?? ""); scripts/install-deps test installs it"))
    func liveTestPatternInChromium() async throws {
        try await liveTestPattern(in: .chromium)
    }

    @Test("in Firefox, the invite link shows the live picture: frames decode, none fail to decrypt, the burned-in counter advances",
          .enabled(if: HeadlessFirefox.unavailableReason == nil, "\(HeadlessFirefox.unavailableReason ?? ""); scripts/install-deps test installs it"))
    func liveTestPatternInFirefox() async throws {
        try await liveTestPattern(in: .firefox)
    }

    func liveTestPattern(in kind: BrowserKind) async throws {
        let rig = try await LiveCallTests.Rig(width: 1280, height: 720)
        let invite = try #require(try await rig.client.post(ControlAPI.callPath, json: [String: String](), as: CallStatus.self).invite)
        let browser = try await kind.start()
        do {
            try await browser.open(invite)
            var current = Stats(verified: false, framesDecoded: 0, decryptFailures: 0, decodeErrors: 0)
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                if let decoded = try? await stats(browser) { current = decoded }
                if current.framesDecoded >= 60 { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            let log = try await browser.browserLog().joined(separator: "\n")
            #expect(current.framesDecoded >= 60, "viewer stats \(current)\nbrowser log:\n\(log)\ndaemon log:\n\(rig.daemon.log)")
            #expect(current.verified)
            #expect(current.decryptFailures == 0)
            #expect(current.decodeErrors == 0)
            let identity = try await rig.client.get(ControlAPI.identityPath, as: IdentityInfo.self)
            #expect(current.fingerprint == identity.fingerprint)

            let first = try await burnedInCounter(browser)
            try await Task.sleep(for: .seconds(1))
            let second = try await burnedInCounter(browser)
            let (before, after) = (try #require(first, "no counter readable on the canvas"), try #require(second))
            #expect(after > before, "the counter on the canvas did not advance: \(before) → \(after)")

            let png = try await browser.screenshot()
            let artifact = try LiveViewerTests.artifactPath("viewer-live-test-pattern-\(kind).png")
            try png.write(to: URL(fileURLWithPath: artifact))
            #expect(png.count > 10_000)
        } catch {
            await browser.quit()
            throw error
        }
        await browser.quit()
    }

    /// Screenshots go under the package's `.build/test-artifacts/` for a person to look at.
    static func artifactPath(_ name: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = root.appendingPathComponent(".build/test-artifacts")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent(name).path
    }
}
