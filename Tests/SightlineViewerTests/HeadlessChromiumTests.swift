import Foundation
import SightlineTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension ViewerBrowserTests {
    /// The harness itself: a browser that outlives its test would eat the two cores of every
    /// later test, so teardown is checked, not assumed.
    @Suite("headless Chromium harness")
    struct HeadlessChromiumTests {
        @Test("quit, and deinit as the safety net, leave no chromedriver or Chromium process and no descriptor behind")
        func teardown() async throws {
            // One cycle first: Foundation and Dispatch open their process-monitoring and timer
            // descriptors once, lazily, and keep them.
            await (try await HeadlessChromium.start()).quit()
            let descriptorsBefore = BrowserTeardown.openDescriptors()
            let tableBefore = BrowserTeardown.descriptorTable()
            for _ in 0..<3 {
                let browser = try await HeadlessChromium.start()
                let group = browser.driverProcessID
                #expect(kill(-group, 0) == 0, "chromedriver and Chromium run in their own process group")
                let answer = try await browser.evaluate("return navigator.userAgent;")
                #expect(answer.string?.contains("Chrome") == true)
                await browser.quit()
                #expect(await BrowserTeardown.groupAlive(group) == false)
            }
            var group: Int32 = 0
            do {
                let browser = try await HeadlessChromium.start()
                group = browser.driverProcessID
                #expect(try await browser.evaluate("return 6 * 7;") == 42)
            }  // no quit(): the last reference goes here
            #expect(await BrowserTeardown.groupAlive(group) == false, "deinit killed the process group")
            // Three cycles: a descriptor leaked per browser would show as at least three.
            #expect(BrowserTeardown.openDescriptors() - descriptorsBefore < 3, "before:\n\(tableBefore.joined(separator: "\n"))\nafter:\n\(BrowserTeardown.descriptorTable().joined(separator: "\n"))")
        }

        @Test("only 127.0.0.1 is ever opened, and scripts' errors come back typed")
        func loopbackOnlyAndErrors() async throws {
            let browser = try await HeadlessChromium.start()
            do {
                await #expect(throws: HeadlessChromium.Failure.self) { try await browser.open("http://example.com/") }
                await #expect(throws: HeadlessChromium.Failure.self) { try await browser.open("http://localhost:1/") }
                let error = await #expect(throws: HeadlessChromium.ScriptError.self) {
                    _ = try await browser.evaluate("const e = new TypeError('no such thing'); e.code = 'nope'; throw e;")
                }
                #expect(error?.name == "TypeError")
                #expect(error?.code == "nope")
                #expect(error?.message.contains("no such thing") == true)
                let echoed = try await browser.evaluate("return arguments;", arguments: [1, "two", [true, nil], ["k": 3.5]])
                #expect(echoed == [1, "two", [true, nil], ["k": 3.5]])
            } catch {
                await browser.quit()
                throw error
            }
            await browser.quit()
        }
    }
}

/// Browser teardown checks shared by the Chromium and Firefox harness tests.
enum BrowserTeardown {
    /// Whether any process of `group` is still alive; polls a little, as killed processes
    /// are reaped by init, not by us.
    static func groupAlive(_ group: Int32, within timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if kill(-group, 0) == -1, errno == ESRCH { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return true
    }

    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    static func descriptorTable() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.sorted().map { name in "\(name) -> \((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)")) ?? "?")" }
    }
}
