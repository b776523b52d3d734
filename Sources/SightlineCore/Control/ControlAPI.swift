/// JSON documents of the local control API (`/run/sightline/control.sock`). Field names are the
/// stable contract for scripts using `sightctl --json`; add fields, never rename them.
public enum ControlAPI {
    public static let statusPath = "/v1/status"
    public static let versionPath = "/v1/version"
    public static let identityPath = "/v1/identity"
    public static let healthPath = "/v1/health"
    public static let faultPath = "/v1/debug/fault"
}

public struct VersionInfo: Codable, Sendable, Equatable {
    public var version: String
    /// Versions of the C libraries the binary is linked against, by library name.
    public var libraries: [String: String]

    public init(version: String, libraries: [String: String]) {
        self.version = version
        self.libraries = libraries
    }
}

public struct IdentityInfo: Codable, Sendable, Equatable {
    public var algorithm: String
    /// `SHA256:` + unpadded base64 of the SHA-256 of the raw public key, as organisations register it.
    public var fingerprint: String
    /// Raw 32-byte Ed25519 public key, base64.
    public var publicKey: String
    public var keyPath: String

    public init(algorithm: String, fingerprint: String, publicKey: String, keyPath: String) {
        self.algorithm = algorithm
        self.fingerprint = fingerprint
        self.publicKey = publicKey
        self.keyPath = keyPath
    }
}

/// A service's state as shown by `sightctl status` and the health endpoint.
public enum ServiceState: String, Codable, Sendable, Equatable {
    case starting, running, degraded, stopping, stopped, failed
}

public struct ServiceStatus: Codable, Sendable, Equatable {
    public var name: String
    public var state: ServiceState
    /// One line an operator can act on, e.g. "camera disconnected; waiting for it to return".
    public var detail: String

    public init(name: String, state: ServiceState, detail: String) {
        self.name = name
        self.state = state
        self.detail = detail
    }
}

public struct CameraStatus: Codable, Sendable, Equatable {
    public var source: String
    public var width: Int
    public var height: Int
    public var fps: Int
    public var framesCaptured: UInt64
    public var framesDropped: UInt64
    /// Milliseconds from the udev add event of the camera in use to its first frame.
    public var firstFrameAfterAddMs: Double?
    /// The same interval step by step, in order (udev event → decision → open → … → first
    /// frame); the phases add up to `firstFrameAfterAddMs`.
    public var firstFrameAfterAddPhases: [TimedPhase]?
    /// When that first frame arrived, in Unix time (seconds): whoever re-plugged the camera can
    /// time the whole re-add from its own clock without polling the status fast, which would
    /// take the device's CPU from the very re-add it measures.
    public var firstFrameAfterAddAt: Double?

    public init(source: String, width: Int, height: Int, fps: Int, framesCaptured: UInt64, framesDropped: UInt64,
                firstFrameAfterAddMs: Double? = nil, firstFrameAfterAddPhases: [TimedPhase]? = nil,
                firstFrameAfterAddAt: Double? = nil) {
        self.firstFrameAfterAddMs = firstFrameAfterAddMs
        self.firstFrameAfterAddPhases = firstFrameAfterAddPhases
        self.firstFrameAfterAddAt = firstFrameAfterAddAt
        self.source = source
        self.width = width
        self.height = height
        self.fps = fps
        self.framesCaptured = framesCaptured
        self.framesDropped = framesDropped
    }
}

public struct DaemonStatus: Codable, Sendable, Equatable {
    public var version: String
    public var pid: Int32
    public var uptimeSeconds: Double
    /// Path of the configuration in force, or "embedded defaults".
    public var configuration: String
    public var stateDirectory: String
    public var fingerprint: String
    public var services: [ServiceStatus]
    public var camera: CameraStatus?
    /// Voice commands, actions and their hooks; nil from daemons that predate them.
    public var voice: VoiceStatus?

    public init(version: String, pid: Int32, uptimeSeconds: Double, configuration: String, stateDirectory: String,
                fingerprint: String, services: [ServiceStatus], camera: CameraStatus?, voice: VoiceStatus? = nil) {
        self.voice = voice
        self.version = version
        self.pid = pid
        self.uptimeSeconds = uptimeSeconds
        self.configuration = configuration
        self.stateDirectory = stateDirectory
        self.fingerprint = fingerprint
        self.services = services
        self.camera = camera
    }
}

public struct HealthReport: Codable, Sendable, Equatable {
    /// `ok` when every service is running, `degraded` otherwise.
    public var status: String
    public var services: [ServiceStatus]

    public init(services: [ServiceStatus]) {
        self.services = services
        self.status = services.allSatisfy { $0.state == .running } ? "ok" : "degraded"
    }
}

/// Faults the daemon can be told to inject when `debug.fault_injection` is on.
public struct FaultRequest: Codable, Sendable, Equatable {
    /// `stall-camera`: the capture loop stops making progress, so the watchdog must stop.
    public var fault: String

    public init(fault: String) {
        self.fault = fault
    }
}

extension ControlAPI {
    public static let snapshotPath = "/v1/camera/snapshot"
    public static let controlsPath = "/v1/camera/controls"
}

/// A full-resolution still filed in the evidence archive.
public struct SnapshotInfo: Codable, Sendable, Equatable {
    /// A plaintext copy under `STATE/evidence/`, written only when the archive could not take
    /// the still (and the disk was not full); nil when the archive has it.
    public var path: String?
    public var width: Int
    public var height: Int
    /// The camera format it was made from (MJPG is passed through, others are compressed).
    public var sourceFormat: String
    public var bytes: Int
    /// The case and item the snapshot was filed as in the evidence archive; nil when the
    /// archive did not acknowledge it (the daemon logs why).
    public var caseId: String?
    public var itemId: String?

    public init(path: String?, width: Int, height: Int, sourceFormat: String, bytes: Int, caseId: String? = nil, itemId: String? = nil) {
        self.path = path
        self.width = width
        self.height = height
        self.sourceFormat = sourceFormat
        self.bytes = bytes
        self.caseId = caseId
        self.itemId = itemId
    }
}

/// Body of `POST /v1/camera/controls`.
public struct ControlChange: Codable, Sendable, Equatable {
    public var key: String
    public var value: Int64

    public init(key: String, value: Int64) {
        self.key = key
        self.value = value
    }
}

extension ControlAPI {
    public static let devicesPath = "/v1/devices"
    public static let deviceEventsPath = "/v1/devices/events"
}

/// A device with what the daemon does with it, for `sightctl devices`.
public struct DeviceStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case inUse = "in-use", standby, failed
    }

    public var device: DiscoveredDevice
    public var state: State
    /// Why it failed, when it did.
    public var reason: String?
    /// Why it is in use, when it is and it was chosen by a preference list.
    public var why: String?

    public init(device: DiscoveredDevice, state: State, reason: String?, why: String? = nil) {
        self.device = device
        self.state = state
        self.reason = reason
        self.why = why
    }
}

/// One line of `GET /v1/devices/events` (newline-delimited JSON).
public struct DeviceEventRecord: Codable, Sendable, Equatable {
    /// `added`, `removed`, `in-use`, `failed` or `placeholder`.
    public var event: String
    public var role: DeviceRole?
    public var identity: String?
    public var devnode: String?
    public var detail: String
    /// Seconds since the Unix epoch.
    public var time: Double

    public init(event: String, role: DeviceRole?, identity: String?, devnode: String?, detail: String, time: Double) {
        self.event = event
        self.role = role
        self.identity = identity
        self.devnode = devnode
        self.detail = detail
        self.time = time
    }
}

// MARK: Calls

extension ControlAPI {
    /// `GET` the call's status, `POST` to start one (or get the running one).
    public static let callPath = "/v1/call"
    /// `POST` to hang up.
    public static let callEndPath = "/v1/call/end"
}

/// A call as the control API reports it. `invite` holds the call secret in its fragment:
/// it is shown only on the local control socket, to root and the control group.
public struct CallStatus: Codable, Sendable, Equatable {
    /// `idle`, `connecting`, `live`, `reconnecting` or `failed`.
    public var state: String
    public var session: String?
    public var invite: String?
    public var relay: String
    /// Experts that completed the key exchange.
    public var verifiedExperts: [UInt32]
    public var epoch: UInt32
    /// Degradation step: `full`, `low` or `stills`.
    public var step: String
    public var framesSent: UInt64
    public var keyframesSent: UInt64
    public var bytesSent: UInt64
    public var lastEncodeMs: Double?
    public var lastError: String?
    /// The voice channel; nil while no call runs.
    public var audio: CallAudioStatus?
    /// The video encoder and why it was chosen: "hardware H.264: V4L2 M2M encoder /dev/video11 …",
    /// or "software H.264 (OpenH264): no V4L2 M2M H264 encoder: …"; nil before the first frame.
    public var encoder: String?

    public init(state: String, session: String?, invite: String?, relay: String, verifiedExperts: [UInt32], epoch: UInt32,
                step: String, framesSent: UInt64, keyframesSent: UInt64, bytesSent: UInt64, lastEncodeMs: Double?, lastError: String?,
                audio: CallAudioStatus? = nil, encoder: String? = nil) {
        self.audio = audio
        self.encoder = encoder
        self.state = state
        self.session = session
        self.invite = invite
        self.relay = relay
        self.verifiedExperts = verifiedExperts
        self.epoch = epoch
        self.step = step
        self.framesSent = framesSent
        self.keyframesSent = keyframesSent
        self.bytesSent = bytesSent
        self.lastEncodeMs = lastEncodeMs
        self.lastError = lastError
    }
}

/// The call's voice channel as `sightctl call status` shows it.
public struct CallAudioStatus: Codable, Sendable, Equatable {
    /// Privacy mode: the microphone is muted at the source and nothing is sent.
    public var microphoneMuted: Bool
    /// Opus frames of the device's microphone sent to the experts.
    public var framesSent: UInt64
    /// Frames from experts' microphones that opened.
    public var framesReceived: UInt64
    /// Mixed 20 ms frames handed to the speaker.
    public var framesPlayed: UInt64
    /// Expert frames that failed to open (no key yet, forged, replayed, malformed).
    public var openFailures: UInt64
    public var recovered: UInt64
    public var concealed: UInt64
    public var late: UInt64
    /// Skipped to bring the delay down after a burst (or a stall of this process).
    public var skipped: UInt64 = 0
    /// The jitter buffer's target depth.
    public var jitterBufferMs: Int
    /// Capture of a microphone frame to its sealed Opus packet handed to the socket, over the
    /// last few thousand frames.
    public var captureToSentMsP50: Double?
    public var captureToSentMsP99: Double?
    /// The experts' voice on its way to the speaker, medians over the last few thousand frames:
    /// capture in the browser to arrival here (wall clocks, so only as exact as their
    /// synchronisation), arrival to playout (the jitter buffer and the playout tick), and audio
    /// the sound system held ahead of the speaker.
    public var expertToDeviceMsP50: Double?
    public var jitterWaitMsP50: Double?
    public var speakerLatencyMsP50: Double?

    public init(microphoneMuted: Bool, framesSent: UInt64, framesReceived: UInt64, framesPlayed: UInt64, openFailures: UInt64,
                recovered: UInt64, concealed: UInt64, late: UInt64, jitterBufferMs: Int,
                captureToSentMsP50: Double? = nil, captureToSentMsP99: Double? = nil) {
        self.captureToSentMsP50 = captureToSentMsP50
        self.captureToSentMsP99 = captureToSentMsP99
        self.microphoneMuted = microphoneMuted
        self.framesSent = framesSent
        self.framesReceived = framesReceived
        self.framesPlayed = framesPlayed
        self.openFailures = openFailures
        self.recovered = recovered
        self.concealed = concealed
        self.late = late
        self.jitterBufferMs = jitterBufferMs
    }
}
