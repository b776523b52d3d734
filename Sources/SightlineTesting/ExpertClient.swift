import Crypto
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import SightlineCore
import Synchronization

/// A remote expert in Swift, speaking docs/PROTOCOL.md to a real relay: joins from an invite
/// link, runs the key exchange, and opens the device's frames. Tests and benchmarks use it
/// where a browser is not the point.
public enum ExpertClient {
    public struct Invite: Sendable {
        public let relayWebSocketURL: String
        public let session: String
        public let secret: CallSecret

        /// Parses `http(s)://HOST:PORT/v/SESSION#SECRET`.
        public init?(_ link: String) {
            guard let hash = link.firstIndex(of: "#"), let secret = CallSecret(base64URL: link[link.index(after: hash)...]),
                  let url = URLComponents(string: String(link[..<hash])), let host = url.host,
                  url.path.hasPrefix("/v/")
            else { return nil }
            let scheme = url.scheme == "https" ? "wss" : "ws"
            relayWebSocketURL = "\(scheme)://\(host)\(url.port.map { ":\($0)" } ?? "")"
            session = String(url.path.dropFirst(3))
            self.secret = secret
        }
    }

    public struct Report: Sendable {
        public var peer: UInt32?
        public var closeCode: Int?
        public var keyExchangeFailed = false
        public var fingerprint: String?
        public var framesReceived = 0
        public var framesOpened = 0
        public var openFailures = 0
        public var keyframes = 0
        public var firstOpenedWasKeyframe: Bool?
        public var kids: Set<UInt64> = []
        public var headers: [MediaPayloadHeader] = []
        /// Capture → opened here, in milliseconds.
        public var latenciesMs: [Double] = []
        /// Control messages of types the client does not act on, by type.
        public var otherMessages: [String] = []
        /// Keyframe payloads (without the 16-byte header), the first few.
        public var keyframePayloads: [[UInt8]] = []
        /// Every video payload opened, in order (the first 300): what a decoder would be given.
        public var videoPayloads: [[UInt8]] = []
        /// The device's audio frames that opened, their headers and Opus packets (the first 1000).
        public var audioFramesOpened = 0
        public var audioHeaders: [AudioPayloadHeader] = []
        public var audioPackets: [[UInt8]] = []
        /// Our own audio frames sent to the device.
        public var audioFramesSent = 0
        /// Every `stream-state` the device sent us.
        public var streamStates: [CallMessage.StreamState] = []
    }

    /// What the expert says: Opus packets (20 ms each) sent sealed under a key of its own once
    /// the device gave it a media key, paced in real time, stamped with the time each is sent.
    public struct Speech: Sendable {
        public var packets: [[UInt8]]
        public var delay: Duration

        public init(packets: [[UInt8]], delay: Duration = .milliseconds(300)) {
            self.packets = packets
            self.delay = delay
        }
    }

    /// Joins and collects until `frames` frames opened or `timeout` passed.
    /// - Parameter secret: the call secret; pass another to play a party that lacks it (it still
    ///   presents the right join token, like the relay itself could).
    /// - Parameters:
    ///   - audioFrames: also wait for this many of the device's audio frames.
    ///   - speech: what to say to the device; the run also waits until all of it is sent.
    ///   - until: ends the run as soon as the report satisfies it (checked on every message).
    public static func run(_ invite: Invite, secret: CallSecret? = nil, frames: Int, timeout: Duration,
                           requestKeyframe: Bool = true, audioFrames: Int = 0, speech: Speech? = nil,
                           until: (@Sendable (Report) -> Bool)? = nil) async throws -> Report {
        let secret = secret ?? invite.secret
        let report = ReportBox()
        let logger = Logger(label: "expert-client")
        var configuration = WebSocketClientConfiguration()
        configuration.maxFrameSize = 2 << 20
        let deadline = ContinuousClock.now + timeout
        let work = Task {
            try await WebSocketClient.connect(
                url: "\(invite.relayWebSocketURL)/v1/viewer/\(invite.session)", configuration: configuration, logger: logger
            ) { inbound, outbound, _ in
                try await outbound.writeTextMessage(json([
                    "type": "hello", "role": "expert", "joinToken": Base64URL.encode(invite.secret.joinToken),
                ]))
                var exchange: ExpertKeyExchange?
                var pairKey: SymmetricKey?
                var opener = SFrameOpener(maximumFrameSize: 2 << 20)
                var talking: Task<Void, any Error>?
                defer { talking?.cancel() }
                func finished(_ report: Report) -> Bool {
                    if let until, until(report) { return true }
                    return report.framesOpened >= frames && report.audioFramesOpened >= audioFrames
                        && report.audioFramesSent >= (speech?.packets.count ?? 0)
                }
                for try await message in inbound.messages(maxSize: 2 << 20) {
                    switch message {
                    case .text(let text):
                        let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
                        switch object["type"] as? String {
                        case "joined":
                            let peer = UInt32(object["peer"] as? Int ?? 0)
                            report.update { $0.peer = peer }
                            let side = ExpertKeyExchange(expertPeer: peer, session: invite.session, secret: secret)
                            exchange = side
                            try await outbound.writeTextMessage(json(["type": "kx-offer", "to": 0, "pub": Base64URL.encode(side.publicKey)]))
                        case "kx-answer":
                            guard let exchange, case .keyExchangeAnswer(_, let answer) = try CallMessage.decode(Data(text.utf8)) else { break }
                            do {
                                let (confirmation, key, fingerprint) = try exchange.accept(answer)
                                pairKey = key
                                report.update { $0.fingerprint = fingerprint }
                                try await outbound.writeTextMessage(json(["type": "kx-confirm", "to": 0, "mac": Base64URL.encode(confirmation)]))
                            } catch {
                                report.update { $0.keyExchangeFailed = true }
                            }
                        case "media-key":
                            guard let pairKey, case .mediaKey(_, let wrapped) = try CallMessage.decode(Data(text.utf8)) else { break }
                            let baseKey = try MediaKeyWrapping.unwrap(wrapped, pairKey: pairKey)
                            opener.install(kid: wrapped.kid, baseKey: baseKey)
                            opener.install(kid: MediaKeyID(wrapped.kid).deviceAudio.kid, baseKey: baseKey)
                            report.update { $0.kids.insert(wrapped.kid) }
                            if let speech, talking == nil, let peer = report.value.peer {
                                talking = Task { try await Self.talk(speech, peer: peer, pairKey: pairKey, outbound: outbound, report: report) }
                            }
                            if requestKeyframe {
                                try await outbound.writeTextMessage(json(["type": "keyframe-request", "to": 0, "reason": "new-viewer"]))
                            }
                        case "kx-failed":
                            report.update { $0.keyExchangeFailed = true }
                        case "stream-state":
                            if case .streamState(_, let state) = try CallMessage.decode(Data(text.utf8)),
                               report.update({ $0.streamStates.append(state); return finished($0) }) {
                                try await outbound.close(.normalClosure, reason: nil)
                                return
                            }
                        case let other:
                            report.update { $0.otherMessages.append(other ?? "?") }
                        }
                    case .binary(let buffer):
                        let bytes = Array(buffer.readableBytesView)
                        report.update { $0.framesReceived += 1 }
                        guard let envelope = MediaEnvelope(bytes) else { continue }
                        let metadata = Array(bytes.prefix(MediaEnvelope.size))
                        if envelope.kind == .audio {
                            guard let (_, plaintext) = try? opener.open(bytes.dropFirst(MediaEnvelope.size), metadata: metadata),
                                  let header = AudioPayloadHeader(plaintext)
                            else {
                                report.update { $0.openFailures += 1 }
                                continue
                            }
                            let done = report.update { report in
                                report.audioFramesOpened += 1
                                if report.audioHeaders.count < 1000 {
                                    report.audioHeaders.append(header)
                                    report.audioPackets.append(Array(plaintext.dropFirst(AudioPayloadHeader.size)))
                                }
                                return finished(report)
                            }
                            if done {
                                try await outbound.close(.normalClosure, reason: nil)
                                return
                            }
                            continue
                        }
                        guard let (_, plaintext) = try? opener.open(bytes.dropFirst(MediaEnvelope.size), metadata: metadata),
                              let header = MediaPayloadHeader(plaintext)
                        else {
                            report.update { $0.openFailures += 1 }
                            continue
                        }
                        let latency = Double(Self.nowMicroseconds() - Int64(header.captureMicroseconds)) / 1000
                        let done = report.update { report in
                            report.framesOpened += 1
                            if report.firstOpenedWasKeyframe == nil { report.firstOpenedWasKeyframe = envelope.isKeyframe }
                            if envelope.isKeyframe {
                                report.keyframes += 1
                                if report.keyframePayloads.count < 3 { report.keyframePayloads.append(Array(plaintext.dropFirst(MediaPayloadHeader.size))) }
                            }
                            if report.headers.count < 1000 { report.headers.append(header) }
                            if envelope.kind == .video, report.videoPayloads.count < 300 {
                                report.videoPayloads.append(Array(plaintext.dropFirst(MediaPayloadHeader.size)))
                            }
                            report.latenciesMs.append(latency)
                            return finished(report)
                        }
                        if done {
                            try await outbound.close(.normalClosure, reason: nil)
                            return
                        }
                    }
                    if ContinuousClock.now > deadline {
                        try await outbound.close(.normalClosure, reason: nil)
                        return
                    }
                }
            }
        }
        let watchdog = Task {
            try await Task.sleep(until: deadline + .seconds(2))
            work.cancel()
        }
        defer { watchdog.cancel() }
        do {
            // Cancelling the caller ends the run early with what arrived so far.
            let close = try await withTaskCancellationHandler { try await work.value } onCancel: { work.cancel() }
            if let close, case .unknown(let code) = close.closeCode {
                report.update { $0.closeCode = Int(code) }
            }
        } catch is CancellationError {}
        return report.value
    }

    /// Sends `speech` as the expert `peer`: its own key first (wrapped under the pair key), then
    /// one sealed audio frame every 20 ms.
    private static func talk(_ speech: Speech, peer: UInt32, pairKey: SymmetricKey, outbound: WebSocketOutboundWriter,
                             report: ReportBox) async throws {
        let baseKey = SymmetricKey(size: .bits128)
        let kid = MediaKeyID(epoch: 1, sender: UInt16(truncatingIfNeeded: peer)).kid
        let wrapped = try MediaKeyWrapping.wrap(baseKey, kid: kid, pairKey: pairKey)
        try await outbound.writeTextMessage(String(decoding: CallMessage.expertMediaKey(from: peer, wrapped).encoded, as: UTF8.self))
        try await Task.sleep(for: speech.delay)
        var sealer = SFrameSealer(kid: kid, baseKey: baseKey)
        let envelope = MediaEnvelope(kind: .audio, isKeyframe: false).bytes
        var tick = ContinuousClock.now
        for (index, packet) in speech.packets.enumerated() {
            let header = AudioPayloadHeader(sequence: UInt16(truncatingIfNeeded: index), captureMicroseconds: UInt64(nowMicroseconds()))
            let sealed = try sealer.seal(header.bytes + packet, metadata: envelope)
            var buffer = ByteBuffer()
            buffer.writeBytes(envelope)
            buffer.writeBytes(sealed)
            try await outbound.writeBinaryMessage(buffer)
            report.update { $0.audioFramesSent += 1 }
            tick += .milliseconds(20)
            try await Task.sleep(until: tick)
        }
    }

    static func json(_ object: [String: Any]) -> String {
        (try? JSONSerialization.data(withJSONObject: object)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func nowMicroseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
    }
}

/// The report, shared between the socket handler and the caller.
private final class ReportBox: Sendable {
    private let report = Mutex(ExpertClient.Report())

    @discardableResult
    func update<T>(_ body: (inout ExpertClient.Report) -> T) -> T {
        report.withLock { body(&$0) }
    }

    var value: ExpertClient.Report { update { $0 } }
}
