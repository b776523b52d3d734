import Foundation
import SightlineAudio
import SightlineControlClient
import SightlineCore
@testable import SightlineDiscovery
import SightlineTesting
import Testing

/// Hotplug with real uevents: systemd-udevd runs in the guest, vivid is loaded with two
/// instances and snd-aloop as the sound card.
extension DeviceLab {
    @Suite("Hotplug in the kernel lab")
    struct HotplugLabTests {
        static let unbind = "/sys/bus/platform/drivers/vivid/unbind"
        static let bind = "/sys/bus/platform/drivers/vivid/bind"

        func devices(_ client: ControlClient) async throws -> [DeviceStatus] {
            try await client.get(ControlAPI.devicesPath, as: [DeviceStatus].self)
        }

        func camera(_ client: ControlClient) async throws -> (service: ServiceStatus?, camera: CameraStatus?) {
            let status = try await client.get(ControlAPI.statusPath, as: DaemonStatus.self)
            return (status.services.first { $0.name == "camera" }, status.camera)
        }

        func inUse(_ client: ControlClient) async throws -> DeviceStatus? {
            try await devices(client).first { $0.state == .inUse }
        }

        static let first = "path:platform-vivid.0#vivid-000-vid-cap"
        static let second = "path:platform-vivid.0#vivid-001-vid-cap"

        @Test("discovery tells both vivid cameras and the loopback card apart; the preferred camera is used, lost and resumed")
        func preferenceUnplugAndResume() async throws {
            let daemon = try DaemonProcess(configuration: """
                camera:
                  device: auto
                  preference: ["\(Self.second)"]
                  switch_delay_ms: 300
                  width: 640
                  height: 480
                  fps: 25

                """)
            try daemon.start()
            try await daemon.waitUntilServing()
            let client = ControlClient(socketPath: daemon.socketPath)
            try await eventually { try await inUse(client)?.device.identity == Self.second }
            let listed = try await devices(client)
            #expect(Set(listed.filter { $0.device.role == .camera }.map(\.device.identity)) == [Self.first, Self.second])
            #expect(listed.first { $0.device.identity == Self.first }?.state == .standby)
            #expect(listed.contains { $0.device.role == .microphone && $0.device.devnode.hasPrefix("/dev/snd/pcmC") })
            #expect(listed.contains { $0.device.role == .speaker })
            let text = try CommandLineTool.run("sightctl", ["devices", "--socket", daemon.socketPath])
            #expect(text.stdout.contains("camera     in-use "), "\(text.stdout)")

            // Both vivid cameras hang off one platform device: unbinding it removes both.
            try KernelLab.writeSysfs(Self.unbind, "vivid.0")
            // The capture's own error may say first that the camera failed; the remove event's
            // placeholder follows.
            try await eventually {
                let service = try await camera(client).service
                return service?.state == .degraded && service?.detail.contains("disconnected") == true
            }
            #expect(try await inUse(client) == nil)
            #expect(daemon.process.isRunning)

            var samples: [Double] = []
            for cycle in 0..<Self.replugCycles {
                if cycle > 0 {
                    try KernelLab.writeSysfs(Self.unbind, "vivid.0")
                    try await eventually { try await inUse(client) == nil }
                }
                // The placeholder's figures replace the camera's at once: the previous cycle's
                // time to first frame cannot be read again.
                try await eventually { try await camera(client).camera?.source == "test-pattern" }
                let bound = Date().timeIntervalSince1970
                try KernelLab.writeSysfs(Self.bind, "vivid.0")
                try await eventually { try await inUse(client)?.device.identity == Self.second }
                try await eventually {
                    guard let status = try await camera(client).camera else { return false }
                    return status.source != "test-pattern" && status.firstFrameAfterAddMs != nil
                }
                let status = try #require(try await camera(client).camera)
                let firstFrame = try #require(status.firstFrameAfterAddMs)
                let firstFrameAt = try #require(status.firstFrameAfterAddAt)
                #expect(firstFrameAt > bound && firstFrameAt < Date().timeIntervalSince1970,
                        "the first frame's time \(firstFrameAt) is not between the bind (\(bound)) and now")
                let phases = (status.firstFrameAfterAddPhases ?? []).map { "\($0.name) \(String(format: "%.1f", $0.ms))" }
                print("re-add \(cycle + 1) to first frame: \(String(format: "%.1f", firstFrame)) ms (\(phases.joined(separator: ", ")))")
                samples.append(firstFrame)
            }
            #expect(try await camera(client).service?.state == .running)
            // The product's target is 300 ms on hardware. Here, under full emulation on one vCPU
            // with the debug build, the median is 430-515 ms (three runs on a loaded 2-core host;
            // single cycles 257-944 ms), so 300 ms is not asserted: the lab holds the median to
            // the 1 s end-to-end budget, and the hotplug benchmark reports the release build's
            // figures (docs/PERFORMANCE.md, "hotplug", has the breakdown).
            let median = samples.sorted()[samples.count / 2]
            print("re-add to first frame over \(samples.count) cycles: median \(String(format: "%.1f", median)) ms")
            #expect(median < 1_000, "median first frame \(median) ms after the add event: \(samples)")
        }

        /// Unbind/bind cycles of the preferred camera whose time from add event to first frame is measured.
        static let replugCycles = 11

        @Test("after lost events, reading the devices again reports the cameras that went and came meanwhile")
        func resynchronizeAfterLostEvents() async throws {
            // No monitor runs: every change below happens behind discovery's back, as when the
            // kernel drops events from a full socket buffer.
            let discovery = try UdevDiscovery()
            defer { discovery.stop() }
            let cameras = Set(discovery.enumerate().filter { $0.role == .camera }.map(\.syspath))
            #expect(cameras.count == 2)

            try KernelLab.writeSysfs(Self.unbind, "vivid.0")
            discovery.resynchronize()
            let afterUnplug = try await Self.events(discovery, count: 1 + 6)  // two cameras, four remote-control inputs
            #expect(afterUnplug.first == .resynchronized)
            #expect(Set(afterUnplug.compactMap { event -> String? in
                if case .removed(let syspath, .camera) = event { syspath } else { nil }
            }) == cameras)

            try KernelLab.writeSysfs(Self.bind, "vivid.0")
            #expect(try CommandLineTool.run("/usr/bin/udevadm", ["settle", "--timeout=30"]).status == 0)
            discovery.resynchronize()
            let afterReplug = try await Self.events(discovery, count: 1 + 6)
            #expect(afterReplug.first == .resynchronized)
            #expect(Set(afterReplug.compactMap { event -> String? in
                if case .added(let device, _) = event, device.role == .camera { device.syspath } else { nil }
            }) == cameras)
        }

        @Test("events dropped by a full queue while the daemon is behind are made up once it catches up: its view ends as the devices are")
        func resynchronizeAfterFullQueue() async throws {
            // A queue of two: unbinding reports six removals (two cameras, four remote-control
            // inputs), binding six additions, while nobody reads.
            let discovery = try UdevDiscovery(eventBufferLimit: 2)
            defer { discovery.stop() }
            try discovery.start()
            var view = Dictionary(discovery.enumerate().map { ($0.syspath, $0) }) { first, _ in first }
            #expect(view.values.filter { $0.role == .camera }.count == 2)

            for (file, change) in [(Self.unbind, "unbind"), (Self.bind, "bind")] {
                try KernelLab.writeSysfs(file, "vivid.0")
                #expect(try CommandLineTool.run("/usr/bin/udevadm", ["settle", "--timeout=30"]).status == 0)
                try await Task.sleep(for: .milliseconds(500))  // the monitor thread takes them off the socket
                let present = Set(try UdevDiscovery().enumerate().map(\.syspath))
                let followed = try await Self.follow(discovery, from: view, until: present)
                view = followed.view
                #expect(followed.resynchronizations >= 1, "after \(change): the queue of two never overflowed")
                #expect(view.values.filter { $0.role == .camera }.count == (change == "bind" ? 2 : 0))
            }
        }

        /// Applies `discovery`'s events to `view`, marking each handled, until its devices are
        /// `present`; with how many times discovery read the devices again on the way. Fails
        /// when that has not happened within 10 s.
        static func follow(_ discovery: UdevDiscovery, from view: [String: DiscoveredDevice], until present: Set<String>)
            async throws -> (view: [String: DiscoveredDevice], resynchronizations: Int) {
            let reader = Task { () -> (view: [String: DiscoveredDevice], resynchronizations: Int) in
                var view = view
                var resynchronizations = 0
                var iterator = discovery.events.makeAsyncIterator()
                while Set(view.keys) != present, let event = await iterator.next() {
                    switch event {
                    case .added(let device, _): view[device.syspath] = device
                    case .removed(let syspath, _): view[syspath] = nil
                    case .resynchronized: resynchronizations += 1
                    }
                    discovery.handled()
                }
                return (view, resynchronizations)
            }
            let deadline = Task {
                try await Task.sleep(for: .seconds(10))
                reader.cancel()
            }
            defer { deadline.cancel() }
            let followed = await reader.value
            let seen = Set(followed.view.keys)
            guard seen == present else {
                throw TestFailure("the view never caught up: missing \(present.subtracting(seen).sorted()), extra \(seen.subtracting(present).sorted())")
            }
            return followed
        }

        /// The next `count` events, or a failure after 10 s.
        static func events(_ discovery: UdevDiscovery, count: Int) async throws -> [DeviceEvent] {
            let reader = Task {
                var iterator = discovery.events.makeAsyncIterator()
                var events: [DeviceEvent] = []
                while events.count < count, let event = await iterator.next() { events.append(event) }
                return events
            }
            let deadline = Task {
                try await Task.sleep(for: .seconds(10))
                reader.cancel()
            }
            defer { deadline.cancel() }
            let events = await reader.value
            guard events.count == count else { throw TestFailure("\(events.count) of \(count) events: \(events)") }
            return events
        }

        @Test("the preferred camera fails over to the other when it breaks, and fails back when it returns")
        func failoverAndFailBack() async throws {
            let daemon = try DaemonProcess(configuration: """
                camera:
                  device: auto
                  preference: ["\(Self.second)"]
                  switch_delay_ms: 300
                  width: 640
                  height: 480
                  fps: 25

                """)
            try daemon.start()
            try await daemon.waitUntilServing()
            let client = ControlClient(socketPath: daemon.socketPath)
            try await eventually { try await inUse(client)?.device.identity == Self.second }
            let preferred = try #require(try await inUse(client)?.device.devnode)
            // vivid's Disconnect control breaks the device the way a dying USB camera does,
            // without a remove event: the daemon must notice and use the other camera.
            let broken = try CommandLineTool.run("/usr/bin/v4l2-ctl", ["-d", preferred, "-c", "disconnect=1"])
            #expect(broken.status == 0, "\(broken.stdout)\(broken.stderr)")
            try await eventually { try await inUse(client)?.device.identity == Self.first }
            #expect(try await devices(client).first { $0.device.identity == Self.second }?.state == .failed)
            #expect(try await camera(client).service?.state == .running)

            // Re-plugging brings the preferred camera back, and it is used again.
            try KernelLab.writeSysfs(Self.unbind, "vivid.0")
            try KernelLab.writeSysfs(Self.bind, "vivid.0")
            try await eventually { try await inUse(client)?.device.identity == Self.second }
            #expect(daemon.process.isRunning)
        }

        @Test("sightctl devices --watch prints events as they happen")
        func watch() async throws {
            let daemon = try DaemonProcess(configuration: "camera:\n  device: auto\n  width: 640\n  height: 480\n  fps: 25\n")
            try daemon.start()
            try await daemon.waitUntilServing()
            let watcher = Process()
            watcher.executableURL = URL(fileURLWithPath: BuiltProducts.path(of: "sightctl"))
            watcher.arguments = ["devices", "--watch", "--socket", daemon.socketPath]
            let output = daemon.directory.file("watch.log")
            _ = FileManager.default.createFile(atPath: output, contents: nil)
            watcher.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
            try watcher.run()
            defer { watcher.terminate() }
            // The watcher needs a moment to start under emulation: re-plug until it has seen it.
            // Buttons report too, so wait for camera lines; a re-bound camera may get another node
            // number while the old one is still held open.
            let removed = "removed     camera /dev/video", added = "added       camera /dev/video"
            let deadline = ContinuousClock.now + .seconds(45)
            var text = ""
            while !(text.contains(removed) && text.contains(added)), ContinuousClock.now < deadline {
                try KernelLab.writeSysfs(Self.unbind, "vivid.0")
                try KernelLab.writeSysfs(Self.bind, "vivid.0")
                for _ in 0..<20 {
                    try await Task.sleep(for: .milliseconds(500))
                    text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
                    if text.contains(removed) && text.contains(added) { break }
                }
            }
            #expect(text.contains(removed), "\(text)")
            #expect(text.contains(added), "\(text)")
        }

        func audio(_ client: ControlClient) async throws -> AudioStatus {
            try await client.get(ControlAPI.audioPath, as: AudioStatus.self)
        }

        /// A daemon for the microphone tests: the test pattern as camera (vivid is not theirs to
        /// hold), `audio` the lines of its audio section.
        static func microphoneDaemon(audio: String) throws -> DaemonProcess {
            try DaemonProcess(configuration: """
                camera:
                  device: test-pattern
                  width: 320
                  height: 240
                  fps: 5
                audio:
                \(audio)

                """)
        }

        /// Unbinding a sound card frees it only once every file on it is closed (the kernel's
        /// `snd_card_free` waits), so a daemon that kept its PCM open would hang the unbind:
        /// it runs in a child with a deadline, and a hang fails the test instead of the lab.
        func unbindLoopbackCard() throws {
            let result = try CommandLineTool.run("/usr/bin/timeout", ["20", "sh", "-c", "echo snd_aloop.0 > /sys/bus/platform/drivers/snd_aloop/unbind"])
            #expect(result.status == 0, "unbinding snd_aloop.0 did not finish: the daemon held the PCM open (\(result.status))")
        }

        @Test("the microphone in use: the loopback card unbound mid-capture is reported and let go, and capture resumes after bind; 10 cycles leak nothing")
        func microphoneUnplugWhileCapturing() async throws {
            let daemon = try Self.microphoneDaemon(audio: """
                  backend: alsa
                  capture_device: plughw:Loopback,1,0
                """)
            try daemon.start()
            try await daemon.waitUntilServing()
            let client = ControlClient(socketPath: daemon.socketPath)
            do {
                try await eventually { (try await audio(client).capture?.frames ?? 0) > 50 }
            } catch {
                Issue.record("no capture from the loopback card: \(try await audio(client))\n\(daemon.log)")
                throw error
            }
            // Counted once the control connection above has closed, as at the end.
            try await Task.sleep(for: .milliseconds(500))
            let baseline = daemon.openDescriptorCount()
            for cycle in 0..<10 {
                try unbindLoopbackCard()
                // The capture lets go of the PCM (or the unbind above would not have returned),
                // says why, and keeps trying to reopen it.
                try await eventually { try await audio(client).capture?.connected == false }
                let lost = try #require(try await audio(client).capture)
                #expect(lost.lastError != nil)
                if cycle == 0 { print("microphone lost: \(lost.lastError ?? "")") }
                #expect(daemon.process.isRunning)
                try KernelLab.writeSysfs("/sys/bus/platform/drivers/snd_aloop/bind", "snd_aloop.0")
                try await eventually {
                    let capture = try await audio(client).capture
                    return capture?.connected == true && (capture?.frames ?? 0) > lost.frames + 10
                }
                #expect(try await audio(client).capture?.reconnects == UInt64(cycle + 1))
            }
            #expect(daemon.process.isRunning)
            // The last status request's connection may still be closing (the emulated CPU is
            // slow): a leak stays, a closing connection goes within seconds.
            try? await eventually(timeout: .seconds(5)) { daemon.openDescriptorCount() == baseline }
            #expect(daemon.openDescriptorCount() == baseline, "descriptors \(baseline) → \(daemon.openDescriptorCount())")
        }

        /// The microphone the daemon captures from now, as `sightctl devices` reports it.
        func microphoneInUse(_ client: ControlClient) async throws -> DeviceStatus? {
            try await devices(client).first { $0.device.role == .microphone && $0.state == .inUse }
        }

        /// Plays a 440 Hz tone (-15 dBFS RMS) into the loopback's side opposite `node` until the
        /// daemon's level meter shows it; returns the loudest level it reported. The player is
        /// closed again before returning: an open PCM would block the card's unbind and unload.
        func toneHeard(through node: SoundDeviceAddress, _ client: ControlClient) async throws -> Double {
            let quiet = try #require(try await audio(client).capture?.level?.rmsDBFS)
            #expect(quiet < -60, "the loopback is silent before the tone, the daemon measured \(quiet) dBFS")
            // snd-aloop: what is played into device 0 subdevice N is captured on device 1 subdevice N, and back.
            let player = try AudioLabTests.player.openPlayback(device: "plughw:CARD=\(node.card),DEV=\(1 - node.device),SUBDEV=0", format: .stream)
            let tone = AudioClip(format: .stream, samples: (0..<(48000 * 20)).map { Int16(8000 * sin(2 * Double.pi * 440 * Double($0) / 48000)) })
            let feeding = Task { for frame in tone.frames(tail: .zero) where !(await player.play(frame)) { break } }
            var loudest = AudioLevel.floor
            try? await eventually(timeout: .seconds(15)) {
                loudest = max(loudest, try await audio(client).capture?.level?.rmsDBFS ?? AudioLevel.floor)
                return loudest > -20
            }
            await player.stop()
            await feeding.value
            return loudest
        }

        @Test("the microphone chosen by the loopback card's udev properties hears a tone played into the other side, the speaker follows its own preference; after unbind/bind and unbind/rmmod/modprobe it is chosen and heard again")
        func microphoneChosenByProperties() async throws {
            let daemon = try Self.microphoneDaemon(audio: """
                  backend: alsa
                  capture_preference: ["ID_PATH=platform-snd_aloop.0,NAME=Loopback"]
                  playback_preference: ["path:platform-snd_aloop.0#D1p"]
                  fallback: false
                  switch_delay_ms: 300
                """)
            try daemon.start()
            try await daemon.waitUntilServing()
            let client = ControlClient(socketPath: daemon.socketPath)
            for round in ["at start", "after unbind and bind", "after unbind, rmmod and modprobe"] {
                do {
                    try await eventually(timeout: .seconds(30)) {
                        guard try await microphoneInUse(client) != nil else { return false }
                        return (try await audio(client).capture?.frames ?? 0) > 10
                    }
                } catch {
                    Issue.record("no capture from the loopback chosen by its properties \(round): \(try await audio(client))\n\(daemon.log)")
                    throw error
                }
                let microphone = try #require(try await microphoneInUse(client))
                let node = try #require(SoundDeviceAddress(microphone.device))
                let status = try await audio(client)
                #expect(microphone.device.properties["ID_PATH"] == "platform-snd_aloop.0", "\(microphone.device)")
                #expect(microphone.why?.contains("matches preference 1 of 1") == true, "\(microphone)")
                #expect(status.captureDevice == "plughw:CARD=\(node.card),DEV=\(node.device)", "\(status)")
                #expect(status.captureChoice?.contains(microphone.device.identity) == true, "\(status)")
                // The speaker follows its own preference: the loopback's device 1, by identity.
                try await eventually { try await audio(client).playbackDevice == "plughw:CARD=\(node.card),DEV=1" }
                #expect(try await audio(client).playbackChoice?.contains("[path:platform-snd_aloop.0#D1p]: matches preference 1 of 1") == true)
                #expect(try await devices(client).contains { $0.device.role == .speaker && $0.state == .inUse && $0.device.identity.hasSuffix("#D1p") })
                let loudest = try await toneHeard(through: node, client)
                print("microphone by properties \(round): \(microphone.device.identity) as \(status.captureDevice), tone at \(loudest) dBFS")
                #expect(loudest > -20, "the tone played into the loopback was not heard \(round): \(loudest) dBFS")

                switch round {
                case "at start":
                    let text = try CommandLineTool.run("sightctl", ["audio", "--socket", daemon.socketPath]).stdout
                    #expect(text.contains("chosen:  microphone") && text.contains(microphone.device.identity), "\(text)")
                    let listing = try CommandLineTool.run("sightctl", ["devices", "--socket", daemon.socketPath]).stdout
                    let line = listing.split(separator: "\n").first { $0.contains("[\(microphone.device.identity)]") } ?? ""
                    #expect(line.hasPrefix("microphone in-use ") && line.contains("matches preference 1 of 1 (ID_PATH=platform-snd_aloop.0,NAME=Loopback)"),
                            "\(listing)")
                    try unbindLoopbackCard()
                    try await eventually { try await audio(client).captureChoice?.contains("disconnected") == true }
                    try await eventually { try await audio(client).playbackDevice == "none" }
                    #expect(try await audio(client).playbackChoice?.contains("waiting for a preferred speaker") == true)
                    #expect(try await audio(client).capture?.connected != true, "the microphone is closed while its card is gone")
                    try KernelLab.writeSysfs("/sys/bus/platform/drivers/snd_aloop/bind", "snd_aloop.0")
                case "after unbind and bind":
                    // No module unloads while a PCM of it is open: the card is unbound first,
                    // which the daemon answers by closing the microphone.
                    try unbindLoopbackCard()
                    try await eventually { try await microphoneInUse(client) == nil }
                    try await eventually(timeout: .seconds(10)) { try CommandLineTool.run("/usr/sbin/rmmod", ["snd_aloop"]).status == 0 }
                    #expect(try CommandLineTool.run("/usr/sbin/modprobe", ["snd-aloop"]).status == 0)
                default:
                    break
                }
            }
            #expect(daemon.process.isRunning)
        }

        @Test("100 unplug/unload/load cycles of vivid and of snd-aloop: no crash, no leaked descriptor, streaming resumes")
        func manyCycles() async throws {
            let daemon = try DaemonProcess(configuration: """
                camera:
                  device: auto
                  preference: ["ID_PATH=platform-vivid.0,NAME=vivid-000-vid-cap"]
                  fallback_any: false
                  width: 640
                  height: 480
                  fps: 25
                # The cycles unload snd-aloop, which no module unload allows while a PCM is open:
                # the microphone is left unopened here, discovery still sees the card come and go.
                audio:
                  backend: alsa
                  capture_device: no-such-pcm

                """)
            try daemon.start()
            try await daemon.waitUntilServing()
            let client = ControlClient(socketPath: daemon.socketPath)
            try await eventually { try await inUse(client) != nil }
            try await Task.sleep(for: .milliseconds(500))
            let baseline = daemon.openDescriptorCount()
            for cycle in 0..<100 {
                try KernelLab.writeSysfs(Self.unbind, "vivid.0")
                try await eventually { try await inUse(client) == nil }
                // The daemon has let go of the device, so the module can go.
                try await eventually(timeout: .seconds(10)) { try CommandLineTool.run("/usr/sbin/rmmod", ["vivid"]).status == 0 }
                #expect(try CommandLineTool.run("/usr/sbin/modprobe", ["vivid", "n_devs=2"]).status == 0)
                try await eventually { try await inUse(client)?.device.identity == Self.first }
                if cycle % 10 == 0 { #expect(daemon.process.isRunning) }
            }
            try await Task.sleep(for: .milliseconds(500))
            #expect(daemon.openDescriptorCount() == baseline, "descriptors \(baseline) → \(daemon.openDescriptorCount())")
            #expect(try await camera(client).service?.state == .running)

            for _ in 0..<100 {
                #expect(try CommandLineTool.run("/usr/sbin/rmmod", ["snd_aloop"]).status == 0)
                try await eventually { try await devices(client).allSatisfy { $0.device.role != .microphone } }
                #expect(try CommandLineTool.run("/usr/sbin/modprobe", ["snd-aloop"]).status == 0)
                try await eventually { try await devices(client).contains { $0.device.role == .microphone } }
            }
            #expect(daemon.process.isRunning)
            #expect(daemon.openDescriptorCount() == baseline)
        }
    }
}
