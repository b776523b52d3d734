import Foundation
import Testing
@testable import SightlineCore

@Suite("Configuration")
struct ConfigurationTests {
    func rejected(_ yaml: String) -> [ConfigurationDiagnostic] {
        do {
            _ = try DaemonConfiguration.parse(yaml, file: "test.yaml")
            return []
        } catch {
            return error.diagnostics
        }
    }

    @Test("an empty file means the embedded defaults")
    func emptyFileIsDefaults() throws {
        #expect(try DaemonConfiguration.parse("", file: "test.yaml") == DaemonConfiguration.defaults)
        #expect(try DaemonConfiguration.parse("# only a comment\n", file: "test.yaml") == DaemonConfiguration.defaults)
    }

    @Test("every schema default validates, and the defaults match the documented ones")
    func defaultsValidate() throws {
        for key in DaemonConfigSchema.keys {
            if case .failure(let failure) = ConfigurationParser.defaultValue(of: key) {
                Issue.record("default of \(key.path) does not validate: \(failure)")
            }
        }
        let defaults = DaemonConfiguration.defaults
        #expect(defaults.controlSocket == "/run/sightline/control.sock")
        #expect(defaults.stateDirectory == "/var/lib/sightline")
        #expect(defaults.metricsListen == ListenAddress("127.0.0.1:9464"))
        #expect(defaults.camera.formatPreference == ["h264", "mjpeg", "yuyv", "nv12"])
    }

    @Test("a complete good file sets every value")
    func goodFile() throws {
        let yaml = """
            state_directory: /srv/sightline
            log_level: debug
            control:
              socket: /run/sl/control.sock
              group: field-ops
            metrics:
              enabled: false
              listen: "[::1]:9500"
            shutdown:
              budget_seconds: 5
            watchdog:
              stall_seconds: 20
            camera:
              device: /dev/v4l/by-id/usb-Acme_Glasses_123-video-index0
              width: 640
              height: 480
              fps: 25
              format_preference: [mjpeg, yuyv]
              buffers: 6
            debug:
              fault_injection: true
            """
        let configuration = try DaemonConfiguration.parse(yaml, file: "good.yaml")
        #expect(configuration.stateDirectory == "/srv/sightline")
        #expect(configuration.logLevel == "debug")
        #expect(configuration.controlSocket == "/run/sl/control.sock")
        #expect(configuration.controlGroup == "field-ops")
        #expect(configuration.metricsEnabled == false)
        #expect(configuration.metricsListen.host == "::1")
        #expect(configuration.metricsListen.port == 9500)
        #expect(configuration.shutdownBudgetSeconds == 5)
        #expect(configuration.watchdogStallSeconds == 20)
        #expect(configuration.camera.device == "/dev/v4l/by-id/usb-Acme_Glasses_123-video-index0")
        #expect(configuration.camera.width == 640)
        #expect(configuration.camera.fps == 25)
        #expect(configuration.camera.formatPreference == ["mjpeg", "yuyv"])
        #expect(configuration.camera.buffers == 6)
        #expect(configuration.faultInjection)
    }

    @Test("audio devices chosen by udev properties: preference lists, fallback and switch delay are read; defaults keep the names alone")
    func audioPreferences() throws {
        let configuration = try DaemonConfiguration.parse("""
            audio:
              capture_preference: ["ID_VENDOR_ID=047f,ID_MODEL_ID=c056", "path:platform-snd_aloop.0#D1c"]
              playback_preference: [/dev/snd/pcmC0D0p]
              fallback: false
              switch_delay_ms: 200
            """, file: "audio.yaml")
        #expect(configuration.audio.capturePreference == ["ID_VENDOR_ID=047f,ID_MODEL_ID=c056", "path:platform-snd_aloop.0#D1c"])
        #expect(configuration.audio.playbackPreference == ["/dev/snd/pcmC0D0p"])
        #expect(configuration.audio.fallback == false)
        #expect(configuration.audio.switchDelayMilliseconds == 200)
        #expect(configuration.audio.captureDevice == nil)
        let defaults = DaemonConfiguration.defaults.audio
        #expect(defaults.capturePreference.isEmpty && defaults.playbackPreference.isEmpty)
        #expect(defaults.fallback && defaults.switchDelayMilliseconds == 500)
    }

    @Test("an unknown key is named with its line and a suggestion")
    func unknownKey() {
        let problems = rejected("log_level: info\ncamera:\n  fps: 30\n  widht: 640\n")
        #expect(problems.count == 1)
        #expect(problems.first?.line == 4)
        #expect(problems.first?.key == "camera.widht")
        #expect(problems.first?.description.hasPrefix("test.yaml:4: camera.widht: is not a known key; did you mean camera.width?") == true)
    }

    @Test("an unknown top-level key lists what is allowed")
    func unknownTopLevelKey() {
        let problems = rejected("\n\nstate_dir: /x\n")
        #expect(problems.first?.line == 3)
        #expect(problems.first?.message.contains("did you mean state_directory?") == true)
        #expect(problems.first?.message.contains("control") == true)
    }

    @Test("each kind of bad value names key, line and what is allowed", arguments: [
        ("camera:\n  fps: fast\n", "camera.fps", 2, "is not a whole number"),
        ("camera:\n  fps: 500\n", "camera.fps", 2, "a whole number from 1 to 120"),
        ("camera:\n  fps: \"30\"\n", "camera.fps", 2, "is not a whole number"),
        ("metrics:\n  enabled: yes\n", "metrics.enabled", 2, "true or false"),
        ("log_level: loud\n", "log_level", 1, "one of trace, debug"),
        ("state_directory: var/lib\n", "state_directory", 1, "absolute path"),
        ("metrics:\n  listen: 0.0.0.0:9464\n", "metrics.listen", 2, "not a loopback address"),
        ("metrics:\n  listen: localhost\n", "metrics.listen", 2, "is not HOST:PORT"),
        ("control:\n  group: Wheel Users\n", "control.group", 2, "not a valid group name"),
        ("camera:\n  device: webcam\n", "camera.device", 2, "auto, test-pattern"),
        ("camera:\n  format_preference: [mjpeg, vp9]\n", "camera.format_preference", 2, "is not allowed in this list"),
        ("camera:\n  format_preference: [mjpeg, mjpeg]\n", "camera.format_preference", 2, "listed twice"),
        ("camera:\n  format_preference: mjpeg\n", "camera.format_preference", 2, "expected a list"),
        ("camera:\n  width:\n    a: 1\n", "camera.width", 3, "expected a single value"),
        ("camera: 5\n", "camera", 1, "is a section"),
        ("hooks:\n  run:\n    - take_photo=/bin/true\n    - snap=/bin/true\n", "hooks.run", 4, "\"snap\" is not an action"),
        ("hooks:\n  run: [\"take_photo=relative/hook\"]\n", "hooks.run", 2, "neither an absolute path"),
        ("hooks:\n  run: [\"take_photo\"]\n", "hooks.run", 2, "is not ACTION=TARGET"),
        ("hooks:\n  user: Hook User\n", "hooks.user", 2, "not a valid user name"),
        ("actions:\n  cancel_window_ms: 20000\n", "actions.cancel_window_ms", 2, "from 0 to 10000"),
        ("audio:\n  capture_preference: ID_PATH=platform-snd_aloop.0\n", "audio.capture_preference", 2, "expected a list"),
        ("audio:\n  switch_delay_ms: -1\n", "audio.switch_delay_ms", 2, "from 0 to 10000"),
    ])
    func badValues(yaml: String, key: String, line: Int, fragment: String) {
        let problems = rejected(yaml)
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.key == key)
        #expect(problems.first?.line == line)
        #expect(problems.first?.description.contains(fragment) == true, "\(problems.first?.description ?? "none")")
    }

    @Test("every problem in a file is reported, not just the first")
    func allProblems() {
        let problems = rejected("log_level: loud\ncamera:\n  fps: 0\n  buffers: 100\nbogus: 1\n")
        #expect(problems.map(\.line) == [1, 3, 4, 5])
    }

    @Test("a key set twice is rejected")
    func duplicateKey() {
        let problems = rejected("log_level: info\nlog_level: debug\n")
        #expect(problems.count == 1)
        #expect(problems.first?.description.contains("log_level") == true)
        #expect(problems.first?.description.contains("twice") == true)
    }

    @Test("broken YAML is reported with its line")
    func brokenYAML() {
        let problems = rejected("camera:\n  fps: 30\n   width: [\n")
        #expect(problems.count == 1)
        #expect(problems.first?.message.hasPrefix("not valid YAML") == true)
        #expect(problems.first?.line != nil)
    }

    @Test("a file that is not a mapping is rejected")
    func notAMapping() {
        #expect(rejected("- a\n- b\n").first?.message.contains("must be a mapping") == true)
    }

    @Test("a missing file says how to run without one")
    func missingFile() {
        do {
            _ = try DaemonConfiguration.load(path: "/nonexistent/sightlined.yaml")
            Issue.record("loading a missing file succeeded")
        } catch {
            #expect(error.description.contains("does not exist"))
        }
    }

    @Test("listen addresses", arguments: [
        ("127.0.0.1:80", true, true), ("[::1]:9464", true, true), ("localhost:1", true, true),
        ("10.0.0.1:80", true, false), ("127.0.0.1:0", false, false), ("127.0.0.1", false, false), ("[::1]9464", false, false),
    ])
    func listenAddresses(text: String, valid: Bool, loopback: Bool) {
        let address = ListenAddress(text)
        #expect((address != nil) == valid)
        if let address { #expect(address.isLoopback == loopback) }
    }
}

@Suite("Configuration reference")
struct ConfigurationReferenceTests {
    /// docs/CONFIGURATION.md must document every key with its real default, and nothing else.
    @Test("docs/CONFIGURATION.md matches the schema")
    func documentationMatchesSchema() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/CONFIGURATION.md"), encoding: .utf8)
        var documented: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2 else { continue }
            documented[cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] =
                cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
        }
        for key in DaemonConfigSchema.keys {
            #expect(documented[key.path] == key.defaultValue, "\(key.path): documented \(documented[key.path] ?? "nothing")")
        }
        #expect(Set(documented.keys) == Set(DaemonConfigSchema.keys.map(\.path)))
    }

    @Test("hooks, actions and voice.enabled are read; an empty hook user means the daemon's own")
    func hooksAndActions() throws {
        let configuration = try DaemonConfiguration.parse("""
            voice:
              enabled: false
            actions:
              cancel_window_ms: 0
            hooks:
              run: ["take_photo=/usr/local/bin/upload", "call_expert=https://tickets.example/api/hook?token=a=b"]
              timeout_ms: 2000
              retries: 1
            """, file: "hooks.yaml")
        #expect(configuration.voice.enabled == false)
        #expect(configuration.actions.cancelWindowMilliseconds == 0)
        #expect(configuration.hooks.hooks == [
            HookSpec(action: .takePhoto, target: .command(path: "/usr/local/bin/upload")),
            HookSpec(action: .callExpert, target: .webhook(url: "https://tickets.example/api/hook?token=a=b")),
        ])
        #expect(configuration.hooks.timeoutMilliseconds == 2000 && configuration.hooks.retries == 1 && configuration.hooks.user == nil)
        #expect(DaemonConfiguration.defaults.voice.enabled && DaemonConfiguration.defaults.hooks.hooks.isEmpty)
    }
}
