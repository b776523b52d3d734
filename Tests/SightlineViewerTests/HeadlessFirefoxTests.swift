import Foundation
import SightlineTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension ViewerBrowserTests {
    /// The Marionette harness: the same guarantees as the Chromium one, in Firefox.
    @Suite("headless Firefox harness",
           .enabled(if: HeadlessFirefox.unavailableReason == nil, "\(HeadlessFirefox.unavailableReason ?? ""); scripts/install-deps test installs it"))
    struct HeadlessFirefoxTests {
        @Test("quit, and deinit as the safety net, leave no Firefox process and no descriptor behind")
        func teardown() async throws {
            // The harness's own descriptors, looked for by what they point to: this process's
            // other tests open and close descriptors of their own meanwhile.
            var owned: [String] = []
            for _ in 0..<2 {
                let browser = try await HeadlessFirefox.start()
                owned += browser.descriptorTargets
                let group = browser.processID
                #expect(kill(-group, 0) == 0, "Firefox runs in its own process group")
                let answer = try await browser.evaluate("return navigator.userAgent;")
                #expect(answer.string?.contains("Firefox") == true)
                await browser.quit()
                #expect(await BrowserTeardown.groupAlive(group) == false)
            }
            var group: Int32 = 0
            do {
                let browser = try await HeadlessFirefox.start()
                owned += browser.descriptorTargets
                group = browser.processID
                #expect(try await browser.evaluate("return 6 * 7;") == 42)
            }  // no quit(): the last reference goes here
            #expect(await BrowserTeardown.groupAlive(group) == false, "deinit killed the process group")
            #expect(owned.count == 6, "a socket and a profile per browser: \(owned)")
            let left = BrowserTeardown.descriptorTable().filter { entry in owned.contains { entry.contains($0) } }
            #expect(left.isEmpty, "descriptors of quit browsers still open: \(left)")
        }

        @Test("only 127.0.0.1 is opened or reached, scripts' errors come back typed, WebCodecs is there (H.264 decoding, Opus encoding)")
        func loopbackOnlyAndErrors() async throws {
            let page = try await LabServer.start()
            let browser = try await HeadlessFirefox.start()
            do {
                await #expect(throws: BrowserFailure.self) { try await browser.open("http://example.com/") }
                try await browser.open("\(page.baseURL)/pages/harness.html")
                // A page's own request elsewhere goes to the dead proxy port and fails.
                let reached = try await browser.evaluate("""
                    try { await fetch('http://192.0.2.1:8080/', { mode: 'no-cors' }); return true; } catch (e) { return false; }
                    """)
                #expect(reached == false)
                let error = await #expect(throws: BrowserScriptError.self) {
                    _ = try await browser.evaluate("const e = new TypeError('no such thing'); e.code = 'nope'; throw e;")
                }
                #expect(error?.name == "TypeError")
                #expect(error?.code == "nope")
                let echoed = try await browser.evaluate("return arguments;", arguments: [1, "two", [true, nil], ["k": 3.5]])
                #expect(echoed == [1, "two", [true, nil], ["k": 3.5]])
                let h264 = try await browser.evaluate("return (await VideoDecoder.isConfigSupported({ codec: 'avc1.42E01F' })).supported;")
                #expect(h264 == true, "Firefox decodes H.264 through the system's libavcodec")
                // The expert's voice: the viewer's exact encoder configuration (audio.js).
                let opus = try await browser.evaluate("""
                    return (await AudioEncoder.isConfigSupported({ codec: 'opus', sampleRate: 48000, numberOfChannels: 1, bitrate: 24000,
                        opus: { frameDuration: 20000, useinbandfec: true, packetlossperc: 10, complexity: 5 } })).supported;
                    """)
                #expect(opus == true, "Firefox encodes Opus with WebCodecs")
                let png = try await browser.screenshot()
                #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
            } catch {
                await browser.quit()
                await page.stop()
                throw error
            }
            await browser.quit()
            await page.stop()
        }
    }
}
