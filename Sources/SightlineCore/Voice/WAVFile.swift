import Foundation

/// A RIFF/WAVE file's audio: integer PCM of 8, 16, 24 or 32 bits (also inside
/// WAVE_FORMAT_EXTENSIBLE) or 32-bit IEEE float, any number of channels, decoded to floats in
/// -1...1 so that no bits are lost before downmixing and resampling.
public struct WAVFile: Sendable, Equatable {
    public let sampleRate: Int
    public let channels: Int
    /// Bits per sample as stored in the file.
    public let bitsPerSample: Int
    /// Interleaved by channel, nominally in -1...1.
    public let samples: [Float]

    public var frameCount: Int { samples.count / max(1, channels) }
    public var duration: Double { Double(frameCount) / Double(max(1, sampleRate)) }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case notRIFFWave
        case truncated(chunk: String)
        case missingChunk(String)
        case unsupportedFormat(tag: Int, bits: Int)
        case invalidFormat(String)
        case unreadable(path: String, reason: String)

        public var description: String {
            switch self {
            case .notRIFFWave: "not a WAV file (no RIFF/WAVE header); convert it, e.g. sox IN.mp3 OUT.wav"
            case .truncated(let chunk): "the \(chunk) chunk is cut short; the file is damaged or still being written"
            case .missingChunk(let chunk): "the file has no \(chunk) chunk"
            case .unsupportedFormat(let tag, let bits):
                "format tag \(tag) with \(bits)-bit samples is not supported; use PCM (8, 16, 24 or 32 bits) or 32-bit float, e.g. sox IN.wav -b 16 OUT.wav"
            case .invalidFormat(let reason): "the fmt chunk is invalid: \(reason)"
            case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
            }
        }
    }

    public init(sampleRate: Int, channels: Int, bitsPerSample: Int, samples: [Float]) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.bitsPerSample = bitsPerSample
        self.samples = samples
    }

    public init(contentsOf path: String) throws(Failure) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        try self.init(data: data)
    }

    public init(data: Data) throws(Failure) {
        let bytes = [UInt8](data)
        guard bytes.count >= 12, Self.tag(bytes, 0) == "RIFF", Self.tag(bytes, 8) == "WAVE" else { throw .notRIFFWave }
        var offset = 12
        var format: (tag: Int, channels: Int, rate: Int, blockAlign: Int, bits: Int)?
        var body: Range<Int>?
        while offset + 8 <= bytes.count {
            let name = Self.tag(bytes, offset)
            let size = Int(Self.uint32(bytes, offset + 4))
            let start = offset + 8
            // A data chunk whose size overruns the file is what a recorder that was cut off leaves;
            // keep the whole frames that are there. Any other chunk must be complete.
            let end = start + size
            if name == "data" {
                body = start..<min(end, bytes.count)
                if format != nil { break }
            } else if name == "fmt " {
                guard size >= 16, end <= bytes.count else { throw .truncated(chunk: "fmt") }
                var tag = Int(Self.uint16(bytes, start))
                let bits = Int(Self.uint16(bytes, start + 14))
                if tag == 0xFFFE {
                    // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID.
                    guard size >= 40 else { throw .truncated(chunk: "fmt") }
                    tag = Int(Self.uint16(bytes, start + 24))
                }
                format = (tag, Int(Self.uint16(bytes, start + 2)), Int(Self.uint32(bytes, start + 4)),
                          Int(Self.uint16(bytes, start + 12)), bits)
                if body != nil { break }
            }
            guard end <= bytes.count || name == "data" else { throw .truncated(chunk: name.trimmingCharacters(in: .whitespaces)) }
            offset = end + (size & 1)  // chunks are padded to even sizes
        }
        guard let format else { throw .missingChunk("fmt") }
        guard let body else { throw .missingChunk("data") }
        guard format.channels > 0, format.channels <= 64 else { throw .invalidFormat("\(format.channels) channels") }
        guard format.rate >= 1000, format.rate <= 768_000 else { throw .invalidFormat("sample rate \(format.rate) Hz") }
        let width = format.bits / 8
        switch (format.tag, format.bits) {
        case (1, 8), (1, 16), (1, 24), (1, 32), (3, 32): break
        default: throw .unsupportedFormat(tag: format.tag, bits: format.bits)
        }
        guard format.blockAlign == width * format.channels else {
            throw .invalidFormat("block align \(format.blockAlign) does not match \(format.channels) channels of \(format.bits) bits")
        }
        let count = (body.count / format.blockAlign) * format.channels
        var samples = [Float](repeating: 0, count: count)
        bytes.withUnsafeBufferPointer { raw in
            for index in 0..<count {
                let at = body.lowerBound + index * width
                switch (format.tag, width) {
                case (1, 1): samples[index] = (Float(raw[at]) - 128) / 128
                case (1, 2): samples[index] = Float(Int16(bitPattern: UInt16(raw[at]) | UInt16(raw[at + 1]) << 8)) / 32768
                case (1, 3):
                    let value = Int32(bitPattern: UInt32(raw[at]) << 8 | UInt32(raw[at + 1]) << 16 | UInt32(raw[at + 2]) << 24) >> 8
                    samples[index] = Float(value) / 8_388_608
                case (1, 4): samples[index] = Float(Int32(bitPattern: Self.uint32(raw, at))) / 2_147_483_648
                default: samples[index] = Float(bitPattern: Self.uint32(raw, at))
                }
            }
        }
        self.init(sampleRate: format.rate, channels: format.channels, bitsPerSample: format.bits, samples: samples)
    }

    /// The samples as 16-bit integers, rounded and clipped, still interleaved.
    public var int16Samples: [Int16] {
        samples.map { Int16(max(-32768, min(32767, ($0 * 32768).rounded()))) }
    }

    /// Mono 16-bit audio at `rate` Hz (the recognizer's 16 kHz): channels averaged by
    /// `ChannelMix`, the rate converted by `Resampler`.
    public func monoSamples(rate: Int) throws(Resampler.Failure) -> [Int16] {
        let mono = ChannelMix.mono(interleaved: int16Samples, channels: channels)
        guard sampleRate != rate else { return mono }
        var resampler = try Resampler(inputRate: sampleRate, outputRate: rate)
        return resampler.process(mono) + resampler.flushInt16()
    }

    /// 16-bit PCM WAV bytes of interleaved samples: what tests and tools write.
    public static func encode(samples: [Int16], sampleRate: Int, channels: Int) -> Data {
        var data = Data()
        func append(_ value: UInt32, bytes count: Int) {
            for index in 0..<count { data.append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(index)))) }
        }
        let body = samples.count * 2
        data.append(contentsOf: Array("RIFF".utf8)); append(UInt32(36 + body), bytes: 4)
        data.append(contentsOf: Array("WAVEfmt ".utf8)); append(16, bytes: 4)
        append(1, bytes: 2); append(UInt32(channels), bytes: 2); append(UInt32(sampleRate), bytes: 4)
        append(UInt32(sampleRate * channels * 2), bytes: 4); append(UInt32(channels * 2), bytes: 2); append(16, bytes: 2)
        data.append(contentsOf: Array("data".utf8)); append(UInt32(body), bytes: 4)
        for sample in samples { append(UInt32(UInt16(bitPattern: sample)), bytes: 2) }
        return data
    }

    private static func tag(_ bytes: [UInt8], _ at: Int) -> String {
        String(decoding: bytes[at..<at + 4], as: UTF8.self)
    }

    private static func uint16(_ bytes: [UInt8], _ at: Int) -> UInt16 {
        UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
    }

    private static func uint32(_ bytes: some RandomAccessCollection<UInt8>, _ at: Int) -> UInt32 {
        let base = bytes.index(bytes.startIndex, offsetBy: at)
        return (0..<4).reduce(UInt32(0)) { value, index in
            value | UInt32(bytes[bytes.index(base, offsetBy: index)]) << (8 * UInt32(index))
        }
    }
}
