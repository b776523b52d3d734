import CAudioShim
import COpus
import SightlineCore

/// One Opus packet for 20 ms of audio, stamped with the capture time of the frame it encodes.
public struct OpusPacket: Sendable, Equatable {
    public let bytes: [UInt8]
    public let timestamp: Duration
    public let sequence: UInt64

    public init(bytes: [UInt8], timestamp: Duration, sequence: UInt64) {
        self.bytes = bytes
        self.timestamp = timestamp
        self.sequence = sequence
    }

    /// With DTX the encoder emits packets of at most 2 bytes during silence; they need not be
    /// sent (the decoder fills the gap with comfort noise).
    public var isDiscontinuous: Bool { bytes.count <= 2 }
}

/// libopus's encoder set up for speech from a headset: `OPUS_APPLICATION_VOIP`, voice signal,
/// in-band FEC (so one lost packet is rebuilt from the next), DTX (near-silent packets during
/// pauses) and 20 ms frames. One owner at a time; not thread-safe.
public final class OpusVoiceEncoder {
    public let format: AudioFormat
    private let encoder: OpaquePointer
    private var output = [UInt8](repeating: 0, count: 1500)

    /// - Parameters:
    ///   - bitrate: bits per second; 24 kbit/s is wideband speech with room for FEC.
    ///   - expectedLossPercent: tells the encoder how much redundancy FEC should carry.
    public init(format: AudioFormat = .stream, bitrate: Int = 24000, expectedLossPercent: Int = 10) throws(AudioError) {
        guard [8000, 12000, 16000, 24000, 48000].contains(format.sampleRate), (1...2).contains(format.channels) else {
            throw .unsupportedFormat(.init(text: format.description))
        }
        var error: Int32 = 0
        guard let encoder = opus_encoder_create(Int32(format.sampleRate), Int32(format.channels), OPUS_APPLICATION_VOIP, &error),
              error == OPUS_OK else {
            throw .opus(operation: "opus_encoder_create", code: error)
        }
        self.encoder = encoder
        self.format = format
        for (name, result) in [("OPUS_SET_BITRATE", caudio_opus_set_bitrate(encoder, Int32(bitrate))),
                               ("OPUS_SET_SIGNAL", caudio_opus_set_signal_voice(encoder)),
                               ("OPUS_SET_INBAND_FEC", caudio_opus_set_inband_fec(encoder, 1)),
                               ("OPUS_SET_PACKET_LOSS_PERC", caudio_opus_set_packet_loss_perc(encoder, Int32(expectedLossPercent))),
                               ("OPUS_SET_DTX", caudio_opus_set_dtx(encoder, 1))] where result != OPUS_OK {
            throw .opus(operation: name, code: result)
        }
    }

    deinit { opus_encoder_destroy(encoder) }

    /// Samples per channel the encoder delays its output by (to trim when comparing signals).
    public var lookahead: Int {
        var samples: Int32 = 0
        return caudio_opus_get_lookahead(encoder, &samples) == OPUS_OK ? Int(samples) : 0
    }

    /// Encodes one 20 ms frame (`opus_encode`); the packet keeps the frame's timestamp and sequence.
    public func encode(_ frame: AudioFrame) throws(AudioError) -> OpusPacket {
        let expected = format.frames(milliseconds: AudioFrame.milliseconds) * format.channels
        guard frame.format == format, frame.samples.count == expected else {
            throw .wrongFrameSize(expected: expected, got: frame.samples.count)
        }
        let frameSize = Int32(expected / format.channels)
        let length: Int32 = frame.samples.withUnsafeBufferPointer { samples in
            output.withUnsafeMutableBufferPointer { output in
                guard let input = samples.baseAddress, let bytes = output.baseAddress else { return OPUS_BAD_ARG }
                return opus_encode(encoder, input, frameSize, bytes, Int32(output.count))
            }
        }
        guard length >= 0 else { throw .opus(operation: "opus_encode", code: length) }
        return OpusPacket(bytes: Array(output[0..<Int(length)]), timestamp: frame.timestamp, sequence: frame.sequence)
    }
}

/// libopus's decoder for 20 ms packets, with loss concealment and FEC recovery. One owner at a
/// time; not thread-safe.
public final class OpusVoiceDecoder {
    public let format: AudioFormat
    private let decoder: OpaquePointer
    private var pcm: [Int16]

    public init(format: AudioFormat = .stream) throws(AudioError) {
        guard [8000, 12000, 16000, 24000, 48000].contains(format.sampleRate), (1...2).contains(format.channels) else {
            throw .unsupportedFormat(.init(text: format.description))
        }
        var error: Int32 = 0
        guard let decoder = opus_decoder_create(Int32(format.sampleRate), Int32(format.channels), &error), error == OPUS_OK else {
            throw .opus(operation: "opus_decoder_create", code: error)
        }
        self.decoder = decoder
        self.format = format
        // Room for the longest packet Opus allows (120 ms).
        pcm = [Int16](repeating: 0, count: format.frames(milliseconds: 120) * format.channels)
    }

    deinit { opus_decoder_destroy(decoder) }

    /// Decodes a packet (`opus_decode`) to a frame with the packet's timestamp and sequence.
    public func decode(_ packet: OpusPacket) throws(AudioError) -> AudioFrame {
        try run(packet.bytes, fec: false, timestamp: packet.timestamp, sequence: packet.sequence)
    }

    /// Stands in for the packet before `next` that never arrived: rebuilt from `next`'s FEC data
    /// when there is some, concealed (PLC) otherwise or when `next` is nil. Decode `next` itself
    /// afterwards as usual.
    public func decodeMissing(before next: OpusPacket?, timestamp: Duration, sequence: UInt64) throws(AudioError) -> AudioFrame {
        try run(next?.bytes, fec: next != nil, timestamp: timestamp, sequence: sequence)
    }

    private func run(_ bytes: [UInt8]?, fec: Bool, timestamp: Duration, sequence: UInt64) throws(AudioError) -> AudioFrame {
        // FEC and concealment must be asked for exactly one frame's duration.
        let frameSize = Int32(format.frames(milliseconds: AudioFrame.milliseconds))
        let maximum = Int32(pcm.count / format.channels)
        let decoded: Int32 = pcm.withUnsafeMutableBufferPointer { pcm in
            guard let pcm = pcm.baseAddress else { return OPUS_BAD_ARG }
            if let bytes {
                return bytes.withUnsafeBufferPointer { data in
                    opus_decode(decoder, data.baseAddress, Int32(data.count), pcm, fec ? frameSize : maximum, fec ? 1 : 0)
                }
            }
            return opus_decode(decoder, nil, 0, pcm, frameSize, 0)
        }
        guard decoded >= 0 else { throw .opus(operation: fec ? "opus_decode (FEC)" : "opus_decode", code: decoded) }
        return AudioFrame(format: format, timestamp: timestamp, sequence: sequence,
                          samples: Array(pcm[0..<(Int(decoded) * format.channels)]))
    }
}
