import Foundation
import Hummingbird
import Logging
import NIOCore
import SightlineCamera
import SightlineCore
import SightlineSystem

/// Request context of the control API: keeps the connection's channel so the peer's
/// credentials can be asked from the kernel.
struct ControlRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

/// Refuses every request whose peer is neither root nor in the configured group, using the
/// credentials the kernel recorded when the peer connected (SO_PEERCRED), which the peer
/// cannot forge.
struct PeerCredentialMiddleware: RouterMiddleware {
    typealias Context = ControlRequestContext
    let policy: ControlAccessPolicy
    let groupName: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let credentials = try? await PeerCredentials.of(context.channel) else {
            throw HTTPError(.forbidden, message: "control API: cannot determine the caller's credentials")
        }
        let groups = SystemAccounts.groups(ofUser: credentials.uid, primaryGroup: credentials.gid)
        guard policy.permits(uid: credentials.uid, groups: groups) else {
            context.logger.warning("control API: refused peer", metadata: [
                "uid": "\(credentials.uid)", "pid": "\(credentials.pid)",
            ])
            throw HTTPError(.forbidden, message: "permission denied: run as root or as a member of group \(groupName) (usermod -aG \(groupName) USER, then log in again)")
        }
        return try await next(request, context)
    }
}

/// Mirrors the kernel's `struct ucred` (pid_t, uid_t, gid_t), which Glibc's Swift module does
/// not export because it needs `_GNU_SOURCE`.
struct PeerCredentials: Sendable {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32

    /// `getsockopt(SO_PEERCRED)` on the connection, through NIO's socket option provider.
    static func of(_ channel: any Channel) async throws -> PeerCredentials {
        precondition(MemoryLayout<PeerCredentials>.size == 12, "struct ucred is three 32-bit fields")
        guard let provider = channel as? any SocketOptionProvider else {
            throw HTTPError(.forbidden, message: "the control connection is not a socket")
        }
        return try await read(provider)
    }

    // Kept non-inlinable and generic-free at the call site, as NIO advises for this unsafe call.
    private static func read(_ provider: any SocketOptionProvider) async throws -> PeerCredentials {
        try await provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED)).get()
    }
}

/// The local control API: HTTP/JSON on a Unix socket that `sightctl` talks to.
enum ControlServer {
    struct Dependencies: Sendable {
        let state: DaemonState
        let configuration: DaemonConfiguration
        let camera: CameraService
        let calls: CallService
        let cases: CaseService
        let audio: AudioService
        let registry: DeviceRegistry
        let actions: ActionDispatcher
        let notifier: SystemdNotifier
        let logger: Logger
    }

    static func makeApplication(_ dependencies: Dependencies) -> some ApplicationProtocol {
        let configuration = dependencies.configuration
        let state = dependencies.state
        let router = Router(context: ControlRequestContext.self)
        router.add(middleware: PeerCredentialMiddleware(
            policy: ControlAccessPolicy(allowedGroup: SystemAccounts.groupID(named: configuration.controlGroup)),
            groupName: configuration.controlGroup))
        router.get(RouterPath(ControlAPI.statusPath)) { _, _ in
            try jsonResponse(await state.status(pid: getpid()))
        }
        router.get(RouterPath(ControlAPI.versionPath)) { _, _ in
            try jsonResponse(VersionInfo(version: SightlineVersion.current, libraries: LinkedLibraries.versions))
        }
        router.get(RouterPath(ControlAPI.identityPath)) { _, _ in
            try jsonResponse(state.identity)
        }
        router.get(RouterPath(ControlAPI.healthPath)) { _, _ in
            try jsonResponse(await state.health())
        }
        router.post(RouterPath(ControlAPI.faultPath)) { request, context in
            guard configuration.faultInjection else {
                throw HTTPError(.forbidden, message: "fault injection is off (debug.fault_injection: false)")
            }
            let fault = try await request.decode(as: FaultRequest.self, context: context)
            switch fault.fault {
            case "stall-camera":
                dependencies.camera.stall()
                context.logger.warning("fault injected: camera loop stalled")
                return try jsonResponse(fault)
            default:
                throw HTTPError(.badRequest, message: "unknown fault \(fault.fault); known: stall-camera")
            }
        }

        router.get(RouterPath(ControlAPI.callPath)) { _, _ in
            try jsonResponse(dependencies.calls.status())
        }
        router.post(RouterPath(ControlAPI.callPath)) { _, _ in
            try jsonResponse(try await dependencies.calls.startCall())
        }
        router.post(RouterPath(ControlAPI.callEndPath)) { _, _ in
            _ = dependencies.calls.endCall()
            await dependencies.calls.callRecordsFiled()
            return try jsonResponse(dependencies.calls.status())
        }
        addCaseRoutes(router, cases: dependencies.cases)
        router.post(RouterPath(ControlAPI.snapshotPath)) { _, _ in
            try jsonResponse(try await dependencies.camera.snapshot())
        }
        router.get(RouterPath(ControlAPI.controlsPath)) { _, _ in
            try jsonResponse(try cameraRequest { try dependencies.camera.controls() })
        }
        router.post(RouterPath(ControlAPI.controlsPath)) { request, context in
            var change = try await request.decode(as: ControlChange.self, context: context)
            change.value = try cameraRequest { try dependencies.camera.setControl(change.key, to: change.value) }
            context.logger.notice("camera control set", metadata: ["control": "\(change.key)", "value": "\(change.value)"])
            return try jsonResponse(change)
        }

        router.post(RouterPath(ControlAPI.actionPath("{action}"))) { _, context in
            let name = try context.parameters.require("action")
            guard let action = VoiceAction(rawValue: name) else {
                throw HTTPError(.notFound, message: "\(name) is not an action; actions: \(VoiceAction.names)")
            }
            context.logger.notice("action requested", metadata: ["action": "\(name)"])
            return try jsonResponse(await dependencies.actions.dispatch(action, source: .control))
        }
        router.get(RouterPath(ControlAPI.audioPath)) { _, _ in
            try jsonResponse(dependencies.audio.status())
        }
        router.post(RouterPath(ControlAPI.audioMutePath)) { request, context in
            let change = try await request.decode(as: AudioMuteRequest.self, context: context)
            dependencies.audio.setMuted(change.muted)
            context.logger.notice("privacy: microphone \(change.muted ? "muted" : "unmuted")")
            return try jsonResponse(dependencies.audio.status())
        }
        router.get(RouterPath(ControlAPI.devicesPath)) { _, _ in
            try jsonResponse(await dependencies.registry.list())
        }
        router.get(RouterPath(ControlAPI.deviceEventsPath)) { _, _ in
            // Newline-delimited JSON, one event per line, for as long as the client reads.
            let records = await dependencies.registry.eventRecords()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            let lines = records.compactMap { record -> ByteBuffer? in
                guard let data = try? encoder.encode(record) else { return nil }
                return ByteBuffer(bytes: data + [UInt8(ascii: "\n")])
            }
            var headers = HTTPFields()
            headers[.contentType] = "application/x-ndjson"
            return Response(status: .ok, headers: headers, body: ResponseBody(asyncSequence: lines))
        }

        let socketPath = configuration.controlSocket
        let groupName = configuration.controlGroup
        let logger = dependencies.logger
        let notifier = dependencies.notifier
        return Application(
            router: router,
            configuration: .init(address: .unixDomainSocket(path: socketPath), serverName: "sightlined"),
            onServerRunning: { _ in
                ControlSocket.restrictAccess(path: socketPath, group: groupName, logger: logger)
                await state.set("control", .running, "listening on \(socketPath)")
                logger.info("control API ready", metadata: ["socket": "\(socketPath)"])
                notifier.ready(status: "ready; control socket \(socketPath)")
            },
            logger: logger)
    }
}

/// Runs a camera operation, turning a `CameraError` into a 400 that carries its advice.
func cameraRequest<Value>(_ body: () throws -> Value) throws -> Value {
    do {
        return try body()
    } catch let error as CameraError {
        throw HTTPError(.badRequest, message: error.description)
    }
}

/// A JSON answer with the control API's conventions: snake_case keys, sorted for stable output.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}

/// Preparing and tightening the control socket's file.
enum ControlSocket {
    enum Failure: Error, CustomStringConvertible {
        case inUse(String)
        case directory(String, SystemError)

        var description: String {
            switch self {
            case .inUse(let path):
                "another sightlined already serves \(path): stop it first (systemctl stop sightlined), or set control.socket to another path"
            case .directory(let path, let error):
                "cannot prepare the control socket directory \(path): \(error)"
            }
        }
    }

    /// Creates the socket's directory and removes a stale socket left by a killed daemon,
    /// but never one that a running daemon still answers on.
    static func prepare(path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o750])
            } catch {
                throw Failure.directory(directory, SystemError("mkdir", path: directory, errno: errno))
            }
        }
        guard FileManager.default.fileExists(atPath: path) else { return }
        if UnixSocket.accepts(path: path) { throw Failure.inUse(path) }
        unlink(path)
    }

    /// Mode 0660 and the operators' group: the file mode is the first gate, SO_PEERCRED the second.
    static func restrictAccess(path: String, group: String, logger: Logger) {
        if chmod(path, 0o660) != 0 {
            logger.error("cannot chmod the control socket", metadata: ["error": "\(SystemError("chmod", path: path, errno: errno))"])
        }
        guard let gid = SystemAccounts.groupID(named: group) else {
            logger.notice("control group does not exist; only root may use sightctl",
                          metadata: ["group": "\(group)", "fix": "systemd-sysusers (see docs/DEPLOYMENT.md) or groupadd --system \(group)"])
            return
        }
        var info = stat()
        // Under the shipped unit the socket is born in the group (Group=sightline) and chown is
        // filtered out; only hand it over when that is not already so.
        if stat(path, &info) == 0, info.st_gid == gid { return }
        if chown(path, UInt32.max, gid) != 0 {
            logger.error("cannot hand the control socket to its group",
                         metadata: ["group": "\(group)", "error": "\(SystemError("chown", path: path, errno: errno))"])
        }
    }
}
