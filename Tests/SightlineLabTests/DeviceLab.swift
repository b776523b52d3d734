import Foundation
import SightlineControlClient
import SightlineCore
import SightlineTesting
import Testing

/// Every device test shares the guest's drivers (unbinding vivid affects all), so they run one
/// after another, never in parallel.
@Suite("Devices in the kernel lab", .serialized, .enabled(if: KernelLab.insideGuest, Comment(rawValue: KernelLab.notInGuest)))
struct DeviceLab {}

/// The /dev node whose sysfs name (`/sys/class/video4linux/videoN/name`) is `name`: vicodec's and
/// v4l2loopback's nodes are found that way, since their numbers depend on what loaded first.
func videoNode(named name: String) throws -> String {
    let classDirectory = "/sys/class/video4linux"
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: classDirectory)) ?? []
    let match = entries.sorted().first { entry in
        let text = (try? String(contentsOfFile: "\(classDirectory)/\(entry)/name", encoding: .utf8)) ?? ""
        return text.trimmingCharacters(in: .whitespacesAndNewlines) == name
    }
    guard let match else { throw TestFailure("no video4linux node named \(name) among \(entries.sorted()); is its module loaded? (lsmod)") }
    return "/dev/" + match
}

/// Starts a call on the daemon behind `client` and returns its status once it has an invite, or
/// the last status seen. Under emulation the daemon may take longer than the client's 10 s to
/// reach the relay; the call goes on starting, so this asks again until the invite is there.
func startCallUntilInvited(_ client: ControlClient, timeout: Duration = .seconds(120)) async throws -> CallStatus? {
    var call = try? await client.post(ControlAPI.callPath, json: [String: String](), as: CallStatus.self)
    let started = ContinuousClock.now + timeout
    while call?.invite == nil, ContinuousClock.now < started {
        try await Task.sleep(for: .seconds(1))
        call = try? await client.get(ControlAPI.callPath, as: CallStatus.self)
    }
    return call
}
