import Crypto
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import SightlineAudio
import SightlineCore
import Synchronization

/// The call's voice channel on the device: the technician's microphone to the experts, and the
/// experts' microphones to the device's speaker (docs/PROTOCOL.md, "Audio").
///
/// Out: each captured 20 ms frame is Opus-encoded and sealed under the epoch's device-audio KID
/// with a counter of its own; privacy mode stops samples at the source, so nothing goes out.
/// In: each expert seals under a key of its own; frames are opened, put in order by a jitter
/// buffer per expert, decoded (FEC or concealment for holes), mixed and played in real time.
final class CallAudio: Sendable {
    struct Telemetry: Sendable, Equatable {
        var framesSent: UInt64 = 0
        var framesReceived: UInt64 = 0
        var framesPlayed: UInt64 = 0
        var openFailures: UInt64 = 0
        /// Capture to sealed and handed to the socket, per frame, newest last (bounded).
        var captureToSentMs: [Double] = []
        var jitter = AudioJitterBuffer<ExpertPacket>.Statistics()
        /// Where the expert's voice spends its time on the way to the speaker, per frame,
        /// newest last (bounded): the expert's capture to arrival here (wall clocks, so only as
        /// good as their synchronisation), arrival to playout, and the sound system's buffer.
        var expertToDeviceMs: [Double] = []
        var jitterWaitMs: [Double] = []
        var speakerLatencyMs: [Double] = []

        mutating func note(_ value: Double, in series: WritableKeyPath<Telemetry, [Double]>) {
            self[keyPath: series].append(value)
            if self[keyPath: series].count > 3000 { self[keyPath: series].removeFirst(1000) }
        }
    }

    /// An expert's Opus packet as it waits in the jitter buffer.
    struct ExpertPacket: Sendable, Equatable {
        var opus: [UInt8]
        var arrival: Duration
    }

    private let audio: AudioService
    private let media: MediaSender
    private let logger: Logger
    private let opener = Mutex(SFrameOpener())
    /// Installed expert KIDs by expert, newest last.
    private let expertKids = Mutex<[UInt32: [UInt64]]>([:])
    private let buffers = Mutex<[UInt32: AudioJitterBuffer<ExpertPacket>]>([:])
    /// The speaker thread's decoders, and how many frames in a row had nothing to play.
    private let mixing = Mutex<(decoders: [UInt32: OpusVoiceDecoder], idleFrames: Int)>(([:], 0))
    let telemetry = Mutex(Telemetry())

    /// Privacy mode: the microphone is muted at the source.
    var isMuted: Bool { audio.isMuted }
    /// A live, unmuted microphone feeds the call, so "audio only" still helps the expert.
    var carriesAudio: Bool { audio.isCapturing && !audio.isMuted }

    init(audio: AudioService, media: MediaSender, logger: Logger) {
        self.audio = audio
        self.media = media
        self.logger = logger
    }

    var status: CallAudioStatus {
        let telemetry = telemetry.withLock { $0 }
        var status = CallAudioStatus(
            microphoneMuted: isMuted, framesSent: telemetry.framesSent, framesReceived: telemetry.framesReceived,
            framesPlayed: telemetry.framesPlayed, openFailures: telemetry.openFailures, recovered: telemetry.jitter.recovered,
            concealed: telemetry.jitter.concealed, late: telemetry.jitter.late, jitterBufferMs: telemetry.jitter.targetDepth * AudioFrame.milliseconds,
            captureToSentMsP50: Self.percentile(telemetry.captureToSentMs, 0.5), captureToSentMsP99: Self.percentile(telemetry.captureToSentMs, 0.99))
        status.skipped = telemetry.jitter.skipped
        status.expertToDeviceMsP50 = Self.percentile(telemetry.expertToDeviceMs, 0.5)
        status.jitterWaitMsP50 = Self.percentile(telemetry.jitterWaitMs, 0.5)
        status.speakerLatencyMsP50 = Self.percentile(telemetry.speakerLatencyMs, 0.5)
        return status
    }

    static func percentile(_ values: [Double], _ fraction: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((fraction * Double(sorted.count - 1)).rounded(.up)))]
    }

    // MARK: Device to experts

    /// Sends the microphone while someone verified listens; runs until cancelled or the socket fails.
    func runSender(_ outbound: WebSocketOutboundWriter) async throws {
        let (id, frames) = audio.subscribe()
        defer { audio.unsubscribe(id) }
        let encoder: OpusVoiceEncoder
        do {
            encoder = try OpusVoiceEncoder(format: .stream)
        } catch {
            logger.error("call: no audio for the experts", metadata: ["problem": "\(error)"])
            return
        }
        var sealer: SFrameSealer?
        var sequence: UInt16 = 0
        for await frame in frames {
            try Task.checkCancellation()
            // Belt and braces: muted captures deliver nothing, and nothing goes out if they did.
            guard media.hasAudience, !audio.isMuted, frame.format == .stream, let epoch = media.currentEpoch else { continue }
            let kid = MediaKeyID(epoch.kid).deviceAudio.kid
            if sealer?.kid != kid { sealer = SFrameSealer(kid: kid, baseKey: epoch.key) }
            let packet: OpusPacket
            do {
                packet = try encoder.encode(frame)
            } catch {
                logger.error("call: audio frame not encoded", metadata: ["problem": "\(error)"])
                continue
            }
            let header = AudioPayloadHeader(sequence: sequence, frameSamples: UInt16(frame.frameCount),
                                            captureMicroseconds: CaptureClock.unixMicroseconds(ofMonotonic: frame.timestamp))
            sequence &+= 1
            let envelope = MediaEnvelope(kind: .audio, isKeyframe: false).bytes
            guard let sealed = try sealer?.seal(header.bytes + packet.bytes, metadata: envelope) else { continue }
            var buffer = ByteBuffer()
            buffer.reserveCapacity(envelope.count + sealed.count)
            buffer.writeBytes(envelope)
            buffer.writeBytes(sealed)
            _ = try await media.timedSend { try await outbound.writeBinaryMessage(buffer) }
            let delay = MediaSender.milliseconds(MonotonicTime.now() - frame.timestamp)
            telemetry.withLock { telemetry in
                telemetry.framesSent += 1
                telemetry.note(delay, in: \.captureToSentMs)
            }
        }
    }

    // MARK: Experts to device

    func installExpertKey(expert: UInt32, kid: UInt64, key: SymmetricKey) {
        opener.withLock { $0.install(kid: kid, baseKey: key) }
        // Keep the expert's previous key a little for frames in flight: two per expert at most.
        let retired = expertKids.withLock { kids -> [UInt64] in
            var list = kids[expert, default: []].filter { $0 != kid }
            list.append(kid)
            let retired = Array(list.dropLast(2))
            kids[expert] = Array(list.suffix(2))
            return retired
        }
        opener.withLock { opener in for old in retired { opener.remove(kid: old) } }
    }

    func forgetExpert(_ expert: UInt32) {
        let kids = expertKids.withLock { $0.removeValue(forKey: expert) } ?? []
        opener.withLock { opener in for kid in kids { opener.remove(kid: kid) } }
        buffers.withLock { $0[expert] = nil }
    }

    /// A binary message from an expert: opened, checked and queued for playout. Anything that
    /// does not open (unknown key, forged, replayed) is counted and dropped.
    func receive(_ message: ByteBuffer) {
        let bytes = Array(message.readableBytesView)
        guard let envelope = MediaEnvelope(bytes), envelope.kind == .audio else { return }
        let opened: (header: SFrameHeader, plaintext: Data)
        do {
            opened = try opener.withLock { opener throws(SFrameError) in
                try opener.open(bytes[MediaEnvelope.size...], metadata: bytes[0..<MediaEnvelope.size])
            }
        } catch {
            telemetry.withLock { $0.openFailures += 1 }
            return
        }
        let expert = UInt32(MediaKeyID(opened.header.kid).sender)
        guard let header = AudioPayloadHeader(opened.plaintext), header.frameSamples == 960 else {
            telemetry.withLock { $0.openFailures += 1 }
            return
        }
        let arrival = MonotonicTime.now()
        let packet = ExpertPacket(opus: Array(opened.plaintext.dropFirst(AudioPayloadHeader.size)), arrival: arrival)
        buffers.withLock { buffers in
            buffers[expert, default: AudioJitterBuffer()].insert(sequence: header.sequence, payload: packet, arrival: arrival)
        }
        let transit = Double(Int64(CaptureClock.unixMicroseconds(ofMonotonic: arrival)) - Int64(clamping: header.captureMicroseconds)) / 1000
        telemetry.withLock { telemetry in
            telemetry.framesReceived += 1
            telemetry.note(transit, in: \.expertToDeviceMs)
        }
    }

    /// Frames without an expert's voice (30 s) before the speaker is closed.
    static let idleFramesBeforeClosing = 30_000 / AudioFrame.milliseconds

    /// Plays what the experts say until cancelled. The speaker pulls each 20 ms frame when it
    /// has room for one (`AudioFrameSource`), so playout runs on the sound card's clock and the
    /// only wait is the jitter buffer's: a timer pushing frames instead would queue up ahead of
    /// the speaker whenever the two clocks part (a stall, a slow start) and never catch up. The
    /// speaker is opened as soon as an expert is verified, so it is ready before they first
    /// speak (connecting a stream can take a second on a busy machine, and what arrives
    /// meanwhile would overflow the jitter buffer), and closed after 30 s without their voice
    /// so an idle sound card can sleep; it opens again when they speak.
    func runPlayout() async {
        var playback: (any AudioPlayback)?
        var lastOpenFailure: ContinuousClock.Instant?
        var openFailures = 0
        var openedOnce = false
        var speaker = audio.speakerGeneration
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(AudioFrame.milliseconds * 5))
            let jitter = buffers.withLock { $0.values.first?.statistics }
            if let jitter { telemetry.withLock { $0.jitter = jitter } }
            // Another speaker was chosen (a preferred one plugged in, the one in use gone): the
            // voice moves to it at once, and a back-off from the previous one does not apply.
            let speakerChanged = audio.speakerGeneration != speaker
            if speakerChanged {
                speaker = audio.speakerGeneration
                lastOpenFailure = nil
                openFailures = 0
            }
            if let open = playback {
                if let ahead = open.statistics.latencyMs { telemetry.withLock { $0.note(ahead, in: \.speakerLatencyMs) } }
                if speakerChanged || mixing.withLock({ $0.idleFrames }) >= Self.idleFramesBeforeClosing {
                    playback = nil
                    await open.stop()
                    if speakerChanged { logger.info("call: the speaker changed; the experts' voice moves to it") }
                }
                if !speakerChanged { continue }
            }
            let wanted = (speakerChanged && openedOnce) || (openedOnce ? buffers.withLock({ $0.values.contains { $0.depth > 0 } }) : expertKids.withLock({ !$0.isEmpty }))
            guard wanted else { continue }
            // A speaker that failed to open is tried again after 1 s, 2 s, 4 s … up to 30 s, and
            // the warning is logged once, not on every try (a device without one is normal).
            if let failed = lastOpenFailure, ContinuousClock.now - failed < .seconds(min(30, 1 << min(openFailures - 1, 5))) { continue }
            do {
                mixing.withLock { $0.idleFrames = 0 }
                let opened = ContinuousClock.now
                let started = Atomic<Bool>(false)
                let logger = logger
                playback = try audio.openPlayback(source: { [weak self] in
                    if !started.exchange(true, ordering: .relaxed) {
                        logger.info("call: the speaker is ready for the experts' voice", metadata: ["after_ms": "\(MediaSender.milliseconds(ContinuousClock.now - opened))"])
                    }
                    return self?.nextMixedFrame()
                })
                lastOpenFailure = nil
                openFailures = 0
                openedOnce = true
            } catch {
                lastOpenFailure = .now
                openFailures += 1
                logger.log(level: openFailures == 1 ? .warning : .debug, "call: the expert's voice cannot be played",
                           metadata: ["problem": "\(error)", "attempts": "\(openFailures)"])
            }
        }
        if let open = playback { await open.stop() }
    }

    /// The experts' next 20 ms, mixed, nil for silence: called on the speaker's thread each
    /// time it has room for a frame.
    private func nextMixedFrame() -> [Int16]? {
        let now = MonotonicTime.now()
        let playouts = buffers.withLock { buffers in
            buffers.keys.sorted().map { expert in (expert, buffers[expert]?.pop(at: now) ?? .silence) }
        }
        let mix: [Int16]? = mixing.withLock { state in
            var sum: [Int32]?
            for (expert, playout) in playouts {
                guard let samples = decode(playout, expert: expert, decoders: &state.decoders) else { continue }
                if sum == nil { sum = [Int32](repeating: 0, count: samples.count) }
                for index in 0..<min(samples.count, sum?.count ?? 0) { sum?[index] += Int32(samples[index]) }
            }
            state.idleFrames = sum == nil ? state.idleFrames + 1 : 0
            return sum?.map { Int16(clamping: $0) }
        }
        if mix != nil { telemetry.withLock { $0.framesPlayed += 1 } }
        return mix
    }

    /// 20 ms of samples for one expert's playout decision, or nil for silence.
    private func decode(_ playout: AudioJitterBuffer<ExpertPacket>.Playout, expert: UInt32,
                        decoders: inout [UInt32: OpusVoiceDecoder]) -> [Int16]? {
        do {
            let decoder: OpusVoiceDecoder
            if let existing = decoders[expert] {
                decoder = existing
            } else {
                decoder = try OpusVoiceDecoder(format: .stream)
                decoders[expert] = decoder
            }
            switch playout {
            case .silence:
                return nil
            case .packet(let packet, let sequence):
                let wait = MediaSender.milliseconds(MonotonicTime.now() - packet.arrival)
                telemetry.withLock { $0.note(wait, in: \.jitterWaitMs) }
                return try decoder.decode(OpusPacket(bytes: packet.opus, timestamp: .zero, sequence: sequence)).samples
            case .recover(let next, let sequence):
                let following = OpusPacket(bytes: next.opus, timestamp: .zero, sequence: sequence + 1)
                return try decoder.decodeMissing(before: following, timestamp: .zero, sequence: sequence).samples
            case .conceal(let sequence):
                return try decoder.decodeMissing(before: nil, timestamp: .zero, sequence: sequence).samples
            }
        } catch {
            logger.debug("call: expert audio frame not decoded", metadata: ["expert": "\(expert)", "problem": "\(error)"])
            return nil
        }
    }
}
