import Foundation
import SightlineControlClient
import SightlineCore
import SightlineTesting
import Testing

/// The guest's half of the host's "viewer through the kernel lab" test: the daemon streams the
/// real vivid camera to a relay, both inside the guest; the relay listens with TLS on the port
/// QEMU forwards from the host's 127.0.0.1. The invite link goes to the host through the shared
/// work tree; the host's Chromium opens it and writes `watching` once frames decode; the guest
/// then unplugs and re-plugs vivid, and the host writes `done` when it has seen enough.
@Suite("Viewer through the kernel lab (guest side)",
       .enabled(if: ViewerLabExchange.current != nil, "runs when the host's kernel-lab viewer test boots the lab with a port forward"))
struct ViewerLabTests {
    @Test("vivid → daemon → relay in the guest; the host's browser gets the invite")
    func serveCallToHost() async throws {
        let exchange = try #require(ViewerLabExchange.current)
        try GuestNetwork.bringUp()
        let relay = try RelayProcess(listenAddress: "0.0.0.0", port: exchange.port,
                                     tls: (exchange.file("relay.crt"), exchange.file("relay.key")))
        try await relay.start(timeout: .seconds(60))
        defer { relay.stop() }
        let daemon = try DaemonProcess(configuration: """
            camera:
              device: /dev/v4l/by-path/platform-vivid.0-video-index0
              width: 640
              height: 480
              fps: 25
            relay:
              url: \(relay.webSocketURL)
              token_file: \(relay.deviceTokenFile)
              ca_file: \(exchange.file("relay.crt"))
            stream:
              codec: h264
              bitrate_kbps: 800

            """)
        try daemon.start()
        defer { daemon.signal(SIGTERM) }
        try await daemon.waitUntilServing(timeout: .seconds(60))
        let client = ControlClient(socketPath: daemon.socketPath)
        let call = try await startCallUntilInvited(client)
        let invite = try #require(call?.invite, "no invite: \(String(describing: call))\n\(daemon.log)\n\(relay.log)")
        #expect(invite.hasPrefix("https://127.0.0.1:\(exchange.port)/v/"))
        try invite.write(toFile: exchange.file("invite"), atomically: true, encoding: .utf8)

        // Once the host's viewer is live, the camera is unplugged and comes back (real remove
        // and add uevents); the viewer must stay in its session, and a keyframe follows the return.
        let watching = ContinuousClock.now + .seconds(300)
        while !FileManager.default.fileExists(atPath: exchange.file("watching")), ContinuousClock.now < watching {
            try await Task.sleep(for: .milliseconds(250))
        }
        let before = try await client.get(ControlAPI.callPath, as: CallStatus.self).keyframesSent
        try KernelLab.writeSysfs("/sys/bus/platform/drivers/vivid/unbind", "vivid.0")
        try await Task.sleep(for: .seconds(3))
        try KernelLab.writeSysfs("/sys/bus/platform/drivers/vivid/bind", "vivid.0")
        try await eventually(timeout: .seconds(60)) {
            let camera = try await client.get(ControlAPI.statusPath, as: DaemonStatus.self).services.first { $0.name == "camera" }
            return camera?.state == .running
        }
        try await Task.sleep(for: .seconds(3))
        let after = try await client.get(ControlAPI.callPath, as: CallStatus.self).keyframesSent
        #expect(after > before, "no keyframe after the camera came back (\(before) → \(after))")
        try "\(before) \(after)\n".write(toFile: exchange.file("replugged"), atomically: true, encoding: .utf8)

        // The host decides when it has seen enough; the guest only keeps streaming until then.
        let deadline = ContinuousClock.now + .seconds(300)
        while !FileManager.default.fileExists(atPath: exchange.file("done")), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(250))
        }
        let status = try await client.get(ControlAPI.callPath, as: CallStatus.self)
        try "\(status.framesSent) frames sent, step \(status.step)\n".write(toFile: exchange.file("guest-status"), atomically: true, encoding: .utf8)
        #expect(FileManager.default.fileExists(atPath: exchange.file("done")), "the host never finished:\n\(daemon.log)\n\(relay.log)")
        #expect(status.framesSent > 0)
        _ = try await client.post(ControlAPI.callEndPath, json: [String: String](), as: CallStatus.self)
    }
}

/// Where host and guest meet: a directory in the shared work tree and the forwarded port.
struct ViewerLabExchange {
    static let directoryVariable = "SIGHTLINE_LAB_EXCHANGE"
    static let portVariable = "SIGHTLINE_LAB_PORT"

    let directory: String
    let port: Int

    static var current: ViewerLabExchange? {
        let environment = ProcessInfo.processInfo.environment
        guard KernelLab.insideGuest, let directory = environment[directoryVariable],
              let port = environment[portVariable].flatMap(Int.init) else { return nil }
        return ViewerLabExchange(directory: directory, port: port)
    }

    func file(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
}

/// The guest's network: loopback, and the virtio NIC at the address QEMU's user network
/// forwards to (10.0.2.15). No DHCP: nothing else is reachable anyway (restrict=on).
enum GuestNetwork {
    static func bringUp() throws {
        _ = try? CommandLineTool.run("/usr/sbin/modprobe", ["virtio_net"])
        try ip(["link", "set", "lo", "up"])
        // udev renames the NIC (eth0 → enp0sN) right after it appears: let it finish, and
        // take the name again if it changed under us anyway.
        let deadline = ContinuousClock.now + .seconds(20)
        var lastError: Error?
        while ContinuousClock.now < deadline {
            _ = try? CommandLineTool.run("/usr/bin/udevadm", ["settle", "--timeout=5"])
            if let nic = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net"))?.sorted().first(where: { $0 != "lo" }) {
                do {
                    try ip(["addr", "replace", "10.0.2.15/24", "dev", nic])
                    try ip(["link", "set", nic, "up"])
                    return
                } catch {
                    lastError = error
                }
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw lastError ?? TestFailure("no network interface appeared in the guest (virtio_net)")
    }

    private static func ip(_ arguments: [String]) throws {
        let result = try CommandLineTool.run("/usr/sbin/ip", arguments)
        guard result.status == 0 else { throw TestFailure("ip \(arguments.joined(separator: " ")): \(result.stderr)") }
    }
}
