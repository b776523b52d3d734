import Testing
@testable import SightlineCore

@Suite("Device classification")
struct DeviceClassifierTests {
    /// Recorded with `udevadm info` from a Logitech C920 and vivid in the kernel lab.
    static let c920Capture: [String: String] = [
        "ID_V4L_CAPABILITIES": ":capture:", "ID_V4L_PRODUCT": "HD Pro Webcam C920", "ID_BUS": "usb",
        "ID_SERIAL": "046d_HD_Pro_Webcam_C920_8A5B3C1F", "ID_SERIAL_SHORT": "8A5B3C1F", "ID_VENDOR_ID": "046d",
        "ID_MODEL_ID": "082d", "ID_PATH": "pci-0000:00:14.0-usb-0:2:1.0", "DEVNAME": "/dev/video0",
    ]
    static let c920Metadata: [String: String] = [
        "ID_V4L_CAPABILITIES": ":", "ID_V4L_PRODUCT": "HD Pro Webcam C920", "ID_BUS": "usb",
        "ID_SERIAL": "046d_HD_Pro_Webcam_C920_8A5B3C1F", "ID_PATH": "pci-0000:00:14.0-usb-0:2:1.0",
    ]
    static let vividCapture: [String: String] = [
        "ID_V4L_CAPABILITIES": ":capture:video_output:vbi_capture:vbi_output:", "ID_V4L_PRODUCT": "vivid",
        "ID_PATH": "platform-vivid.0", "ID_PATH_TAG": "platform-vivid_0",
    ]

    @Test("a UVC capture node is a camera identified by its USB serial, with its by-id link")
    func uvcCamera() throws {
        let device = try #require(DeviceClassifier.classify(
            subsystem: "video4linux", sysname: "video0", syspath: "/sys/devices/pci0000:00/usb1/1-2/video4linux/video0",
            devnode: "/dev/video0", properties: Self.c920Capture,
            links: ["/dev/v4l/by-path/pci-0000:00:14.0-usb-0:2:1.0-video-index0",
                    "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_8A5B3C1F-video-index0"]))
        #expect(device.role == .camera)
        #expect(device.identity == "serial:046d_HD_Pro_Webcam_C920_8A5B3C1F")
        #expect(device.stableLink == "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_8A5B3C1F-video-index0")
        #expect(device.name == "HD Pro Webcam C920")
        #expect(device.properties["DEVNAME"] == nil)
    }

    @Test("metadata and output nodes are not cameras")
    func metadataSkipped() {
        #expect(DeviceClassifier.classify(subsystem: "video4linux", sysname: "video1", syspath: "/sys/x/video1",
                                          devnode: "/dev/video1", properties: Self.c920Metadata, links: []) == nil)
        #expect(DeviceClassifier.classify(subsystem: "video4linux", sysname: "video1", syspath: "/sys/x/video1",
                                          devnode: "/dev/video1", properties: [:], links: [], captureCapable: false) == nil)
    }

    @Test("a platform camera without serial is identified by its udev path")
    func vivid() throws {
        let device = try #require(DeviceClassifier.classify(
            subsystem: "video4linux", sysname: "video0", syspath: "/sys/devices/platform/vivid.0/video4linux/video0",
            devnode: "/dev/video0", properties: Self.vividCapture, links: ["/dev/v4l/by-path/platform-vivid.0-video-index0"]))
        #expect(device.identity == "path:platform-vivid.0")
        var second = Self.vividCapture
        second["NAME"] = "vivid-001-vid-cap"
        let other = DeviceClassifier.classify(subsystem: "video4linux", sysname: "video4", syspath: "/sys/devices/platform/vivid.0/video4linux/video4",
                                              devnode: "/dev/video4", properties: second, links: [])
        #expect(other?.identity == "path:platform-vivid.0#vivid-001-vid-cap")
        #expect(device.stableLink == "/dev/v4l/by-path/platform-vivid.0-video-index0")
    }

    @Test("a v4l2loopback node is a camera while it announces capture, identified by its syspath; as a pure output node it is not")
    func loopback() throws {
        // Recorded with `udevadm info` in the kernel lab: a virtual device has no ID_PATH.
        let announcingAll: [String: String] = [
            "ID_V4L_CAPABILITIES": ":capture:video_output:", "ID_V4L_PRODUCT": "sightline-loopback-h264", "ID_V4L_VERSION": "2",
            "NAME": "sightline-loopback-h264", "DEVNAME": "/dev/video4",
        ]
        let syspath = "/sys/devices/virtual/video4linux/video4"
        let device = try #require(DeviceClassifier.classify(subsystem: "video4linux", sysname: "video4", syspath: syspath,
                                                            devnode: "/dev/video4", properties: announcingAll, links: []))
        #expect(device.role == .camera && device.name == "sightline-loopback-h264")
        #expect(device.identity == "syspath:\(syspath)" && device.stableLink == nil)
        // exclusive_caps=1: output only until a producer streams, which is what udev saw at add.
        var outputOnly = announcingAll
        outputOnly["ID_V4L_CAPABILITIES"] = ":video_output:"
        #expect(DeviceClassifier.classify(subsystem: "video4linux", sysname: "video4", syspath: syspath,
                                          devnode: "/dev/video4", properties: outputOnly, links: []) == nil)
    }

    @Test("without udevd the capture check decides")
    func kernelSourceOnly() {
        let device = DeviceClassifier.classify(subsystem: "video4linux", sysname: "video0", syspath: "/sys/devices/platform/vivid.0/video4linux/video0",
                                               devnode: "/dev/video0", properties: [:], links: [], captureCapable: true)
        #expect(device?.role == .camera)
        #expect(device?.identity == "syspath:/sys/devices/platform/vivid.0/video4linux/video0")
    }

    @Test("PCM nodes are microphones or speakers; key input devices are buttons; control nodes nothing")
    func soundAndInput() {
        let loopback = ["ID_PATH": "platform-snd_aloop.0"]
        let mic = DeviceClassifier.classify(subsystem: "sound", sysname: "pcmC0D1c", syspath: "/sys/s/pcmC0D1c",
                                            devnode: "/dev/snd/pcmC0D1c", properties: loopback, links: [])
        let speaker = DeviceClassifier.classify(subsystem: "sound", sysname: "pcmC0D0p", syspath: "/sys/s/pcmC0D0p",
                                                devnode: "/dev/snd/pcmC0D0p", properties: loopback, links: [])
        #expect(mic?.role == .microphone)
        #expect(speaker?.role == .speaker)
        #expect(mic?.identity != speaker?.identity)
        #expect(DeviceClassifier.classify(subsystem: "sound", sysname: "controlC0", syspath: "/sys/s/controlC0",
                                          devnode: "/dev/snd/controlC0", properties: loopback, links: []) == nil)
        #expect(DeviceClassifier.classify(subsystem: "input", sysname: "event3", syspath: "/sys/i/event3",
                                          devnode: "/dev/input/event3", properties: ["ID_INPUT_KEY": "1"], links: [])?.role == .buttons)
        #expect(DeviceClassifier.classify(subsystem: "input", sysname: "event4", syspath: "/sys/i/event4",
                                          devnode: "/dev/input/event4", properties: ["ID_INPUT_MOUSE": "1"], links: []) == nil)
    }
}

@Suite("Camera policy")
struct CameraPolicyTests {
    let start = ContinuousClock.now

    static func camera(_ index: Int) -> DiscoveredDevice {
        DiscoveredDevice(syspath: "/sys/devices/platform/vivid.\(index)/video4linux/video\(index * 4)", devnode: "/dev/video\(index * 4)",
                         role: .camera, identity: "path:platform-vivid.\(index)", name: "vivid \(index)",
                         properties: ["ID_PATH": "platform-vivid.\(index)"], stableLink: nil)
    }

    func policy(_ preferences: [String] = ["ID_PATH=platform-vivid.1"], fallback: Bool = true) -> CameraPolicy {
        CameraPolicy(role: .camera, preferences: preferences.map(CameraPolicy.Preference.init), fallbackToAny: fallback, switchDelay: .milliseconds(500))
    }

    @Test("the preferred camera wins over one that appeared first, and fail-back is immediate")
    func preferenceAndFailBack() {
        var policy = policy()
        #expect(policy.added(Self.camera(0), at: start) == .use(Self.camera(0)))
        #expect(policy.added(Self.camera(1), at: start + .seconds(1)) == .use(Self.camera(1)))
        #expect(policy.removed(syspath: Self.camera(1).syspath, at: start + .seconds(2)) == .placeholder("camera vivid 1 disconnected; waiting for it to return"))
        #expect(policy.pendingSwitchDeadline == start + .seconds(2.5))
        #expect(policy.tick(at: start + .seconds(2.2)) == nil)
        #expect(policy.tick(at: start + .seconds(2.5)) == .use(Self.camera(0)))
        #expect(policy.added(Self.camera(1), at: start + .seconds(3)) == .use(Self.camera(1)))
    }

    @Test("a flapping camera that returns within the switch delay is kept")
    func debounce() {
        var policy = policy()
        _ = policy.added(Self.camera(0), at: start)
        _ = policy.added(Self.camera(1), at: start)
        _ = policy.removed(syspath: Self.camera(1).syspath, at: start + .seconds(1))
        #expect(policy.added(Self.camera(1), at: start + .seconds(1.2)) == .use(Self.camera(1)))
        #expect(policy.tick(at: start + .seconds(2)) == nil)
        #expect(policy.decision == .use(Self.camera(1)))
    }

    @Test("the same camera coming back is used again at once, with no other present")
    func replug() {
        var policy = policy([])
        _ = policy.added(Self.camera(0), at: start)
        #expect(policy.removed(syspath: Self.camera(0).syspath, at: start + .seconds(1)) != nil)
        #expect(policy.pendingSwitchDeadline == nil)
        #expect(policy.added(Self.camera(0), at: start + .seconds(1.1)) == .use(Self.camera(0)))
    }

    @Test("without fallback only matching cameras are used")
    func noFallback() {
        var policy = policy(["ID_PATH=platform-vivid.1"], fallback: false)
        #expect(policy.added(Self.camera(0), at: start) == nil)
        #expect(policy.decision == .placeholder("no camera found"))
        #expect(policy.added(Self.camera(1), at: start) == .use(Self.camera(1)))
    }

    @Test("a preference can name a device path or link, or an identity")
    func pathPreference() {
        var policy = policy(["/dev/video4"])
        _ = policy.added(Self.camera(0), at: start)
        #expect(policy.added(Self.camera(1), at: start) == .use(Self.camera(1)))
        var byIdentity = self.policy(["path:platform-vivid.1"])
        _ = byIdentity.added(Self.camera(0), at: start)
        #expect(byIdentity.added(Self.camera(1), at: start) == .use(Self.camera(1)))
    }

    @Test("a camera that fails without going away is passed over for another, and used again once re-added")
    func failover() {
        var policy = policy()
        _ = policy.added(Self.camera(0), at: start)
        _ = policy.added(Self.camera(1), at: start)
        #expect(policy.failed(syspath: Self.camera(1).syspath, at: start + .seconds(1)) == .placeholder("camera vivid 1 failed; switching to another one"))
        #expect(policy.tick(at: start + .seconds(1.5)) == .use(Self.camera(0)))
        #expect(policy.failed(syspath: Self.camera(1).syspath, at: start + .seconds(2)) == nil)
        #expect(policy.added(Self.camera(1), at: start + .seconds(3)) == .use(Self.camera(1)))
    }

    @Test("a failing camera with no alternative stays chosen")
    func failedAlone() {
        var policy = policy()
        _ = policy.added(Self.camera(0), at: start)
        #expect(policy.failed(syspath: Self.camera(0).syspath, at: start + .seconds(1)) == nil)
        #expect(policy.decision == .use(Self.camera(0)))
    }

    @Test("a camera that failed just before its remove event is reported disconnected")
    func failedThenRemoved() {
        var policy = policy()
        _ = policy.added(Self.camera(0), at: start)
        _ = policy.added(Self.camera(1), at: start)
        _ = policy.failed(syspath: Self.camera(1).syspath, at: start + .seconds(1))
        _ = policy.removed(syspath: Self.camera(1).syspath, at: start + .seconds(1.01))
        #expect(policy.decision == .placeholder("camera vivid 1 disconnected; waiting for it to return"))
        _ = policy.removed(syspath: Self.camera(0).syspath, at: start + .seconds(1.02))
        #expect(policy.tick(at: start + .seconds(5)) == nil)
        #expect(policy.decision == .placeholder("camera vivid 1 disconnected; waiting for it to return"))
    }
}

@Suite("Audio device selection")
struct AudioDeviceSelectionTests {
    let start = ContinuousClock.now

    /// What discovery reports for snd-aloop's nodes in the kernel lab (card properties copied
    /// onto the PCM node: ID_PATH from the control node, NAME the card's ALSA id).
    static func loopback(_ sysname: String, card: Int = 0) -> DiscoveredDevice {
        let properties = ["ID_PATH": "platform-snd_aloop.0", "NAME": "Loopback", "SOUND_FORM_FACTOR": "internal"]
        return DeviceClassifier.classify(subsystem: "sound", sysname: sysname,
                                         syspath: "/sys/devices/platform/snd_aloop.0/sound/card\(card)/\(sysname)",
                                         devnode: "/dev/snd/\(sysname)", properties: properties, links: [])!
    }

    /// A USB headset's capture node with the card's udev properties (recorded with `udevadm info`).
    static let headset = DeviceClassifier.classify(
        subsystem: "sound", sysname: "pcmC2D0c", syspath: "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/sound/card2/pcmC2D0c",
        devnode: "/dev/snd/pcmC2D0c",
        properties: ["ID_BUS": "usb", "ID_SERIAL": "Plantronics_Blackwire_3220_Series_D1CEC32927974D5F9BD6B2AEBF2EA8E3",
                     "ID_VENDOR_ID": "047f", "ID_MODEL_ID": "c056", "ID_MODEL": "Blackwire_3220_Series",
                     "ID_PATH": "pci-0000:00:14.0-usb-0:3:1.0", "NAME": "Series", "ID_USB_INTERFACES": ":010100:010200:030000:"],
        links: [])!

    static func policy(_ role: DeviceRole, _ preferences: [String]) -> DevicePolicy {
        DevicePolicy(role: role, preferences: preferences.map(DevicePreference.init), fallbackToAny: false, switchDelay: .milliseconds(500))
    }

    @Test("a PCM node's name and identity come from its card; only card-level properties are kept")
    func classification() {
        #expect(Self.headset.role == .microphone)
        #expect(Self.headset.identity == "serial:Plantronics_Blackwire_3220_Series_D1CEC32927974D5F9BD6B2AEBF2EA8E3#D0c")
        #expect(Self.headset.name == "Blackwire_3220_Series pcmC2D0c")
        #expect(Self.headset.properties["ID_USB_INTERFACES"] == nil)
        let capture = Self.loopback("pcmC0D1c")
        #expect(capture.identity == "path:platform-snd_aloop.0#D1c")
        #expect(capture.name == "Loopback pcmC0D1c")
        #expect(capture.properties["SOUND_FORM_FACTOR"] == "internal")
    }

    @Test("the camera's preference syntax chooses microphones: udev properties, identity, /dev/snd path")
    func matching() {
        let capture0 = Self.loopback("pcmC0D0c"), capture1 = Self.loopback("pcmC0D1c")
        #expect(DevicePreference("ID_VENDOR_ID=047f,ID_MODEL_ID=c056").matches(Self.headset))
        #expect(!DevicePreference("ID_VENDOR_ID=047f,ID_MODEL_ID=c057").matches(Self.headset))
        #expect(DevicePreference("NAME=Loopback").matches(capture0))
        #expect(DevicePreference("path:platform-snd_aloop.0#D1c").matches(capture1))
        #expect(!DevicePreference("path:platform-snd_aloop.0#D1c").matches(capture0))
        #expect(DevicePreference("/dev/snd/pcmC0D1c").matches(capture1))

        var policy = Self.policy(.microphone, ["ID_VENDOR_ID=047f", "path:platform-snd_aloop.0#D1c"])
        // Speakers and unmatched microphones are not the microphone policy's business.
        #expect(policy.added(Self.loopback("pcmC0D1p"), at: start) == nil)
        #expect(policy.added(capture0, at: start) == nil)
        #expect(policy.added(capture1, at: start) == .use(capture1))
        #expect(policy.reason(for: capture1) == "matches preference 2 of 2 (path:platform-snd_aloop.0#D1c)")
        #expect(policy.added(Self.headset, at: start + .seconds(1)) == .use(Self.headset))
        #expect(policy.removed(syspath: Self.headset.syspath, at: start + .seconds(2))
                == .placeholder("microphone Blackwire_3220_Series pcmC2D0c disconnected; waiting for it to return"))
        #expect(policy.tick(at: start + .seconds(2.5)) == .use(capture1))
        #expect(policy.removed(syspath: capture1.syspath, at: start + .seconds(3)) != nil)
        #expect(policy.pendingSwitchDeadline == nil, "nothing preferred is left: the caller's fallback decides")
    }

    @Test("a PCM node's card and device become plughw:CARD=n,DEV=d; other names are not PCM nodes")
    func alsaResolution() throws {
        let address = try #require(SoundDeviceAddress(Self.loopback("pcmC3D1c", card: 3)))
        #expect(address == SoundDeviceAddress(card: 3, device: 1, direction: .capture))
        #expect(address.alsaPCM == "plughw:CARD=3,DEV=1")
        #expect(SoundDeviceAddress(sysname: "pcmC12D7p") == SoundDeviceAddress(card: 12, device: 7, direction: .playback))
        for name in ["controlC0", "card0", "pcmC0D0", "pcmCxD0c", "pcmC0Dc", "pcmC0D0x", "pcmC-1D0c"] {
            #expect(SoundDeviceAddress(sysname: name) == nil, "\(name)")
        }
        let camera = DiscoveredDevice(syspath: "/sys/devices/platform/vivid.0/video4linux/video0", devnode: "/dev/video0", role: .camera,
                                      identity: "path:platform-vivid.0", name: "vivid", properties: [:], stableLink: nil)
        #expect(SoundDeviceAddress(camera) == nil)
    }

    @Test("a Pulse source is found by alsa.card and alsa.device; monitors never stand in for a microphone")
    func pulseResolution() {
        let sources = [
            SoundServerDevice(name: "alsa_output.usb-Plantronics-00.analog-stereo.monitor",
                              properties: ["alsa.card": "2", "alsa.device": "0", "device.class": "monitor"], isMonitor: true),
            SoundServerDevice(name: "alsa_input.pci-0000_00_1f.3.analog-stereo", properties: ["alsa.card": "0", "alsa.device": "0"]),
            SoundServerDevice(name: "alsa_input.usb-Plantronics-00.mono-fallback", properties: ["alsa.card": "2", "alsa.device": "0"]),
        ]
        let microphone = SoundDeviceAddress(card: 2, device: 0, direction: .capture)
        #expect(SoundServerMatch.device(for: microphone, among: sources) == .success("alsa_input.usb-Plantronics-00.mono-fallback"))
        let onlyMonitor = SoundServerMatch.device(for: microphone, among: [sources[0]])
        guard case .failure(let missing) = onlyMonitor else {
            Issue.record("a monitor was taken for the microphone: \(onlyMonitor)")
            return
        }
        #expect(missing.description.contains("no source for ALSA card 2 device 0 (capture)"), "\(missing)")
        #expect(missing.description.contains("its sources are alsa_output.usb-Plantronics-00.analog-stereo.monitor (a monitor)"), "\(missing)")
        #expect(missing.description.contains("audio.backend: alsa"), "\(missing)")
        let sinks = [SoundServerDevice(name: "alsa_output.usb-Plantronics-00.analog-stereo", properties: ["alsa.card": "2", "alsa.device": "0"])]
        #expect(SoundServerMatch.device(for: SoundDeviceAddress(card: 2, device: 0, direction: .playback), among: sinks)
                == .success("alsa_output.usb-Plantronics-00.analog-stereo"))
        #expect(SoundServerMatch.device(for: SoundDeviceAddress(card: 2, device: 1, direction: .playback), among: sinks)
                == .failure(.init(address: SoundDeviceAddress(card: 2, device: 1, direction: .playback), listed: [sinks[0].name])))
    }
}
