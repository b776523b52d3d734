import Foundation
import SightlineControlClient
import SightlineCore
import SightlineTesting
import Testing

@Suite("Control API", .serialized)
struct ControlAPITests {
    @Test("sightctl status, identity and version answer in text and JSON")
    func sightctlCommands() async throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        try await daemon.waitUntilServing()
        let socket = ["--socket", daemon.socketPath]

        let identity = try CommandLineTool.run("sightctl", ["identity", "--json"] + socket)
        #expect(identity.status == 0, "\(identity.stderr)")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let info = try decoder.decode(IdentityInfo.self, from: Data(identity.stdout.utf8))
        #expect(info.fingerprint.hasPrefix("SHA256:"))
        #expect(info.keyPath.hasPrefix(daemon.stateDirectory))
        let human = try CommandLineTool.run("sightctl", ["identity"] + socket)
        #expect(human.stdout.hasPrefix(info.fingerprint + "\n"))

        let status = try CommandLineTool.run("sightctl", ["status", "--json"] + socket)
        let decoded = try decoder.decode(DaemonStatus.self, from: Data(status.stdout.utf8))
        #expect(decoded.pid == daemon.pid)
        #expect(decoded.fingerprint == info.fingerprint)
        #expect(decoded.services.contains { $0.name == "control" && $0.state == .running })
        let text = try CommandLineTool.run("sightctl", ["status"] + socket)
        #expect(text.stdout.contains("identity:      \(info.fingerprint)"))
        #expect(text.stdout.contains("control"))

        let version = try CommandLineTool.run("sightctl", ["version", "--json"] + socket)
        #expect(version.stdout.contains("\"version\" : \"\(SightlineVersion.current)\""))
        #expect(version.stdout.contains("alsa-lib"))
    }

    @Test("the identity survives a restart; a world-readable key stops the daemon with advice")
    func identityAcrossRestarts() async throws {
        let directory = try TemporaryDirectory(prefix: "sightlined")
        let first = try DaemonProcess(directory: directory)
        try first.start()
        try await first.waitUntilServing()
        let before = try await ControlClient(socketPath: first.socketPath).get(ControlAPI.identityPath, as: IdentityInfo.self)
        first.signal(SIGTERM)
        #expect(await first.waitForExit(timeout: .seconds(15)) == 0)

        let second = try DaemonProcess(directory: directory)
        try second.start()
        try await second.waitUntilServing()
        let after = try await ControlClient(socketPath: second.socketPath).get(ControlAPI.identityPath, as: IdentityInfo.self)
        #expect(before.fingerprint == after.fingerprint)
        second.signal(SIGTERM)
        #expect(await second.waitForExit(timeout: .seconds(15)) == 0)

        chmod(before.keyPath, 0o644)
        let third = try DaemonProcess(directory: directory)
        try third.start()
        #expect(await third.waitForExit(timeout: .seconds(20)) == 73)
        #expect(third.log.contains("readable by others"))
        #expect(third.log.contains("chmod 600"))
    }

    @Test("a peer that is neither root nor in the group is refused even if the socket mode lets it connect")
    func unprivilegedPeerRefused() async throws {
        let directory = try TemporaryDirectory(prefix: "sightlined")
        chmod(directory.path, 0o755)
        let daemon = try DaemonProcess(controlGroup: "sightline-test-nonexistent", directory: directory)
        try daemon.start()
        try await daemon.waitUntilServing()
        // The socket accepts a moment before the daemon sets its mode to 0660 ("control API
        // ready"); loosening it before that would be undone.
        try await waitUntil(timeout: .seconds(30)) { daemon.log.contains("control API ready") }
        // Loosen the file mode on purpose: SO_PEERCRED must still refuse.
        chmod(daemon.socketPath, 0o666)
        let sightctl = directory.file("sightctl")
        try FileManager.default.copyItem(atPath: BuiltProducts.path(of: "sightctl"), toPath: sightctl)
        chmod(sightctl, 0o755)
        let asNobody = try CommandLineTool.run(
            sightctl, ["status", "--socket", daemon.socketPath],
            prefix: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        #expect(asNobody.status == 77, "\(asNobody.stdout)\(asNobody.stderr)")
        #expect(asNobody.stderr.contains("permission denied"))
        try await waitUntil { daemon.log.contains("refused peer") }
        #expect(daemon.log.contains("uid=65534"))

        let asRoot = try CommandLineTool.run(sightctl, ["status", "--socket", daemon.socketPath])
        #expect(asRoot.status == 0)
    }

    @Test("sightctl says how to start the daemon when it is not running")
    func daemonNotRunning() throws {
        let result = try CommandLineTool.run("sightctl", ["status", "--socket", "/tmp/no-such-sightline/control.sock"])
        #expect(result.status == 69)
        #expect(result.stderr.contains("daemon not running"))
        #expect(result.stderr.contains("systemctl start sightlined"))
    }

    @Test("1,000 control requests leave the daemon's and the client's descriptor counts unchanged")
    func noDescriptorLeak() async throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        try await daemon.waitUntilServing()
        let client = ControlClient(socketPath: daemon.socketPath)
        for _ in 0..<20 { _ = try await client.get(ControlAPI.statusPath, as: DaemonStatus.self) }
        try await Task.sleep(for: .milliseconds(200))
        let daemonBefore = daemon.openDescriptorCount()
        let selfBefore = openDescriptorCountOfThisProcess()
        for index in 0..<1_000 {
            let path = index % 2 == 0 ? ControlAPI.statusPath : ControlAPI.healthPath
            if index % 2 == 0 {
                _ = try await client.get(path, as: DaemonStatus.self)
            } else {
                _ = try await client.get(path, as: HealthReport.self)
            }
        }
        // Closed connections are reaped by the event loop shortly after the last answer.
        var daemonAfter = daemon.openDescriptorCount()
        for _ in 0..<50 where daemonAfter != daemonBefore {
            try await Task.sleep(for: .milliseconds(100))
            daemonAfter = daemon.openDescriptorCount()
        }
        #expect(daemonAfter == daemonBefore, "daemon descriptors \(daemonBefore) → \(daemonAfter)")
        // Other suites run in this process at the same time (relays, browsers, daemons), so the
        // client's own count moves by their descriptors too; a leak per request would add ~1,000.
        var selfAfter = openDescriptorCountOfThisProcess()
        for _ in 0..<50 where selfAfter > selfBefore {
            try await Task.sleep(for: .milliseconds(100))
            selfAfter = openDescriptorCountOfThisProcess()
        }
        #expect(selfAfter < selfBefore + 100, "client descriptors \(selfBefore) → \(selfAfter)")
    }
}
