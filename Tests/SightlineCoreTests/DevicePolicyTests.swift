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
        CameraPolicy(preferences: preferences.map(CameraPolicy.Preference.init), fallbackToAny: fallback, switchDelay: .milliseconds(500))
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
