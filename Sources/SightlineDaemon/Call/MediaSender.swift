import Crypto
import Foundation
import Logging
import NIOCore
import SightlineCamera
import SightlineCore
import SightlineEncoding
import Synchronization
import HummingbirdWSClient

/// Encodes, seals and sends the camera's frames while at least one verified expert listens.
/// It owns the encoder and the SFrame sealer: the only place where a counter is drawn, so
/// frames and stills share one counter sequence per KID.
final class MediaSender: Sendable {
    struct Telemetry: Sendable {
        var framesSent: UInt64 = 0
        var keyframesSent: UInt64 = 0
        var bytesSent: UInt64 = 0
        var lastEncodeMs: Double?
        /// Which encoder runs and why (hardware, or OpenH264 with the reason), for the status.
        var encoder: String?
        var lastSendDelayMs: Double?
        /// Since the ladder last looked.
        var framesThisSecond = 0
        var worstSendDelayThisSecond = Duration.zero
    }

    /// A full-resolution still waiting to go out as a kind-3 message.
    struct Still: Sendable {
        let jpeg: [UInt8]
        let width: Int
        let height: Int
        let capturedAt: Duration
    }

    private let camera: CameraService
    private let codec: VideoCodec
    private let logger: Logger
    private let epoch = Mutex<(kid: UInt64, key: SymmetricKey)?>(nil)
    private let audience = Atomic<Bool>(false)
    private let keyframeWanted = Atomic<Bool>(true)
    private let settings: Mutex<EncoderSettings>
    private let step = Mutex(DegradationLadder.Step.full)
    private let stills = Mutex<[Still]>([])
    let telemetry = Mutex(Telemetry())

    /// The reference of the case the call is filed in, shown in the expert's viewer.
    private let caseReference: Mutex<String?>
    func setCaseReference(_ reference: String?) { caseReference.withLock { $0 = reference } }

    init(camera: CameraService, codec: VideoCodec, settings: EncoderSettings, caseReference: String? = nil, logger: Logger) {
        self.camera = camera
        self.caseReference = Mutex(caseReference)
        self.codec = codec
        self.settings = Mutex(settings)
        self.logger = logger
    }

    func startEpoch(kid: UInt64, key: SymmetricKey) { epoch.withLock { $0 = (kid, key) } }
    /// The epoch's video KID and base key; the voice channel seals under the same epoch.
    var currentEpoch: (kid: UInt64, key: SymmetricKey)? { epoch.withLock { $0 } }
    /// Someone verified is listening; a new audience starts with a keyframe.
    func setAudience(_ present: Bool) {
        let before = audience.exchange(present, ordering: .acquiringAndReleasing)
        if present && !before { requestKeyframe() }
    }
    var hasAudience: Bool { audience.load(ordering: .acquiring) }
    func requestKeyframe() { keyframeWanted.store(true, ordering: .releasing) }
    /// Queues a still; only the newest few wait while audio only holds them back.
    func queueStill(_ still: Still) {
        stills.withLock { queued in
            queued.append(still)
            if queued.count > Self.stillsHeldBack { queued.removeFirst(queued.count - Self.stillsHeldBack) }
        }
    }
    static let stillsHeldBack = 4
    /// Sends started and not yet taken by the socket, by start time: a send stuck on a choked
    /// uplink counts for the ladder while it waits, not only once it completes.
    private let sendsInFlight = Mutex<(next: UInt64, started: [UInt64: ContinuousClock.Instant])>((0, [:]))

    /// Runs one socket write and times it for the ladder; the voice channel's writes go through
    /// here too, since on the lowest rungs they are all that flows.
    func timedSend(_ write: () async throws -> Void) async throws -> Duration {
        let started = ContinuousClock.now
        let id = sendsInFlight.withLock { sends in
            defer { sends.next &+= 1 }
            sends.started[sends.next] = started
            return sends.next
        }
        defer { _ = sendsInFlight.withLock { $0.started.removeValue(forKey: id) } }
        try await write()
        let delay = ContinuousClock.now - started
        telemetry.withLock { $0.worstSendDelayThisSecond = max($0.worstSendDelayThisSecond, delay) }
        return delay
    }
    func setStep(_ new: DegradationLadder.Step) { step.withLock { $0 = new } }
    var currentStep: DegradationLadder.Step { step.withLock { $0 } }

    /// Frames sent and the worst send delay since the last call, for the ladder; a send still
    /// waiting counts with its age so far.
    func takeSecond() -> (frames: Int, worstDelay: Duration) {
        let now = ContinuousClock.now
        let waiting = sendsInFlight.withLock { $0.started.values.map { now - $0 }.max() } ?? .zero
        return telemetry.withLock { telemetry in
            defer { telemetry.framesThisSecond = 0; telemetry.worstSendDelayThisSecond = .zero }
            return (telemetry.framesThisSecond, max(telemetry.worstSendDelayThisSecond, waiting))
        }
    }

    /// What the encoder aims for on each rung: the low rung halves the size, caps the rate at
    /// 15 fps and quarters the bitrate (about 300 kbit/s from the 1.2 Mbit/s default).
    static func settings(for step: DegradationLadder.Step, full: EncoderSettings) -> EncoderSettings {
        guard step == .low else { return full }
        var low = full
        low.width = max(16, full.width / 2) & ~1
        low.height = max(16, full.height / 2) & ~1
        low.fps = min(full.fps, 15)
        low.bitrateKbps = max(100, full.bitrateKbps / 4)
        return low
    }

    /// The `stream-state` experts are told about.
    func streamState(privacy: Bool = false, audioMuted: Bool = false) -> CallMessage.StreamState {
        let step = currentStep
        let wanted = Self.settings(for: step, full: settings.withLock { $0 })
        return CallMessage.StreamState(
            step: step.rawValue, codec: codec == .h264 ? "h264" : "jpeg", width: wanted.width, height: wanted.height,
            fps: Int(wanted.fps), bitrateKbps: wanted.bitrateKbps, privacy: privacy, audioMuted: audioMuted, caseReference: caseReference.withLock { $0 })
    }

    /// Runs until cancelled or the socket fails.
    func run(_ outbound: WebSocketOutboundWriter) async throws {
        let frames = camera.subscribeFrames()
        defer { camera.unsubscribeFrames(frames) }
        var sealer: SFrameSealer?
        let worker = EncodingWorker(codec: codec, parameterSets: { [camera] in camera.h264ParameterSets })
        var lastSent: Duration?
        var lastSequence: UInt32?
        var chainBreaksSeen = 0
        // Why keyframe requests cannot reach a passthrough camera, once per camera.
        var keyframeNote: String?
        for await frame in frames {
            try Task.checkCancellation()
            // A sequence that starts over is a new capture stream: the camera came back, or the
            // placeholder took over. Viewers get a keyframe for the new picture at once.
            if let lastSequence, frame.sequence < lastSequence {
                requestKeyframe()
                keyframeNote = nil
            }
            lastSequence = frame.sequence
            guard audience.load(ordering: .acquiring), let current = epoch.withLock({ $0 }) else { continue }
            if sealer?.kid != current.kid {
                sealer = SFrameSealer(kid: current.kid, baseKey: current.key)
            }
            let step = currentStep
            // Audio only: requested stills wait (filed on the device already) until the link can carry them.
            guard step != .audioOnly else { continue }
            for still in stills.withLock({ queued in defer { queued = [] }; return queued }) {
                try await send(kind: .still, keyframe: true, codec: .jpeg, width: still.width, height: still.height,
                               capturedAt: still.capturedAt, data: still.jpeg, sealer: &sealer, outbound)
            }
            guard step != .stills else { continue }
            var full = settings.withLock { $0 }
            full.width = frame.mode.size.width
            full.height = frame.mode.size.height
            let wanted = Self.settings(for: step, full: full)
            // Pace to the rung's frame rate by capture time, skipping frames in between. Not the
            // camera's own H.264: every P-frame needs the one before it, the camera sets the rate.
            if !worker.passesThrough, let lastSent, frame.timestamp - lastSent < .seconds(0.9 / wanted.fps) { continue }
            lastSent = frame.timestamp
            let force = keyframeWanted.exchange(false, ordering: .acquiringAndReleasing)
            let encoded: EncodedFrame?
            do {
                encoded = try await worker.encode(frame, settings: wanted, forceKeyframe: force)
            } catch {
                logger.error("stream: \(error)")
                requestKeyframe()
                continue
            }
            // A passthrough stream that lost an access unit sends nothing until the camera's next
            // keyframe: ask for one now rather than wait out its GOP.
            if worker.chainBreaks != chainBreaksSeen {
                chainBreaksSeen = worker.chainBreaks
                requestKeyframe()
            }
            // Passthrough forwards the camera's own H.264: a keyframe has to come from the camera.
            if force, worker.passesThrough, keyframeNote == nil {
                switch camera.requestCameraKeyframe() {
                case .pressed, .noCamera:
                    break
                case .unsupported(let card):
                    keyframeNote = "\(card) has no FORCE_KEY_FRAME control, so a viewer that joins waits for the camera's next IDR"
                case .failed(let reason):
                    logger.warning("stream: the camera refused a keyframe request", metadata: ["error": "\(reason)"])
                }
            }
            let chosen = worker.explanation.map { explanation in
                worker.passesThrough ? keyframeNote.map { "\(explanation); \($0)" } ?? explanation : explanation
            }
            let changed = telemetry.withLock { telemetry in
                telemetry.lastEncodeMs = worker.lastEncodeDuration.map(Self.milliseconds)
                defer { telemetry.encoder = chosen }
                return telemetry.encoder != chosen
            }
            if changed, let chosen { logger.info("stream: encoder chosen", metadata: ["encoder": "\(chosen)"]) }
            guard let encoded else { continue }
            try await send(kind: .video, keyframe: encoded.isKeyframe, codec: encoded.codec, width: encoded.width,
                           height: encoded.height, capturedAt: encoded.captureTimestamp, data: encoded.data, sealer: &sealer, outbound)
        }
    }

    private func send(kind: MediaEnvelope.Kind, keyframe: Bool, codec: VideoCodec, width: Int, height: Int,
                      capturedAt: Duration, data: [UInt8], sealer: inout SFrameSealer?, _ outbound: WebSocketOutboundWriter) async throws {
        let header = MediaPayloadHeader(
            codec: codec == .h264 ? .h264 : .jpeg, width: UInt16(clamping: width), height: UInt16(clamping: height),
            captureMicroseconds: CaptureClock.unixMicroseconds(ofMonotonic: capturedAt))
        let envelope = MediaEnvelope(kind: kind, isKeyframe: keyframe).bytes
        guard let sealed = try sealer?.seal(header.bytes + data, metadata: envelope) else { return }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(envelope.count + sealed.count)
        buffer.writeBytes(envelope)
        buffer.writeBytes(sealed)
        let delay = try await timedSend { try await outbound.writeBinaryMessage(buffer) }
        telemetry.withLock { telemetry in
            if kind == .video { telemetry.framesSent += 1; telemetry.framesThisSecond += 1 }
            if kind == .video && keyframe { telemetry.keyframesSent += 1 }
            telemetry.bytesSent += UInt64(buffer.readableBytes)
            telemetry.lastSendDelayMs = Self.milliseconds(delay)
        }
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }
}

/// Owns the encoder and makes every call to it on one serial queue: an encode blocks in C for
/// several milliseconds, which must not hold one of the few cooperative threads the relay
/// link and the control API share. The queue confines the non-Sendable encoder, hence
/// `@unchecked Sendable`: nothing touches `encoder` or `mode` off the queue.
final class EncodingWorker: @unchecked Sendable {
    private let queue = DispatchQueue(label: "sightline.encoder", qos: .userInteractive)
    private let codec: VideoCodec
    private var encoder: (any VideoEncoder)?
    private var mode: CameraMode?
    private let lastDuration = Mutex<Duration?>(nil)
    private let chosen = Mutex<String?>(nil)
    private let passthrough = Atomic<Bool>(false)
    private let breaks = Atomic<Int>(0)

    /// The camera's newest SPS and PPS, for a passthrough encoder that starts after they went by.
    private let parameterSets: @Sendable () -> ParameterSetRepeater

    init(codec: VideoCodec, parameterSets: @escaping @Sendable () -> ParameterSetRepeater = { ParameterSetRepeater() }) {
        self.codec = codec
        self.parameterSets = parameterSets
    }

    var lastEncodeDuration: Duration? { lastDuration.withLock { $0 } }
    /// The current encoder and why it was chosen (`VideoEncoders.Choice.explanation`).
    var explanation: String? { chosen.withLock { $0 } }
    /// The encoder forwards the camera's own H.264 (`PassthroughEncoder`).
    var passesThrough: Bool { passthrough.load(ordering: .acquiring) }
    /// Access units a passthrough encoder lost, over every encoder this worker made
    /// (`PassthroughEncoder.chainBreaks`).
    var chainBreaks: Int { breaks.load(ordering: .acquiring) }

    /// Encodes with `settings`, starting a new encoder (and stream, with a keyframe) when the
    /// camera's mode changed.
    func encode(_ frame: CapturedFrame, settings: EncoderSettings, forceKeyframe: Bool) async throws -> EncodedFrame? {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try self.encodeOnQueue(frame, settings: settings, forceKeyframe: forceKeyframe) })
            }
        }
    }

    private func encodeOnQueue(_ frame: CapturedFrame, settings: EncoderSettings, forceKeyframe: Bool) throws -> EncodedFrame? {
        var force = forceKeyframe
        if encoder == nil || mode != frame.mode {
            guard let format = VideoFormat.allCases.first(where: { $0.fourCCs.contains(frame.mode.fourCC) }) else {
                throw EncoderError.unsupportedInput(frame.mode.fourCC, codec: codec)
            }
            let choice = try VideoEncoders.choose(for: format, preferred: codec, settings: settings)
            encoder = choice.encoder
            (choice.encoder as? PassthroughEncoder)?.prime(with: parameterSets())
            chosen.withLock { $0 = choice.explanation }
            passthrough.store(choice.encoder is PassthroughEncoder, ordering: .releasing)
            mode = frame.mode
            force = true
        }
        guard let encoder else { return nil }
        if encoder.settings != settings {
            encoder.update(settings)
        }
        let passthroughEncoder = encoder as? PassthroughEncoder
        let breaksBefore = passthroughEncoder?.chainBreaks ?? 0
        let encoded = try encoder.encode(frame, forceKeyframe: force)
        lastDuration.withLock { $0 = encoder.lastEncodeDuration }
        if let passthroughEncoder { breaks.add(passthroughEncoder.chainBreaks - breaksBefore, ordering: .releasing) }
        return encoded
    }
}
