import Foundation
import SightlineAudio
import SightlineCore
import SightlineTesting

/// Speech for the tests: an espeak-ng phrase converted by sox to raw S16LE mono at the rate asked,
/// with silence before and after (a lead-in, so nothing is lost while streams settle).
enum SpeechFixture {
    static let phrase = "Sightline audio check. The pressure valve on pump three is open."

    static var unavailableReason: String? {
        for tool in ["/usr/bin/espeak-ng", "/usr/bin/sox"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing (scripts/install-deps test installs espeak-ng and sox)"
        }
        return nil
    }

    /// Samples of the phrase at `rate`, with `padding` of silence on each side.
    static func samples(rate: Int, padding: Duration = .milliseconds(500), in directory: TemporaryDirectory) throws -> [Int16] {
        let wav = directory.file("phrase.wav"), raw = directory.file("phrase-\(rate).raw")
        let speak = try CommandLineTool.run("/usr/bin/espeak-ng", ["-w", wav, phrase])
        guard speak.status == 0 else { throw TestFailure("espeak-ng failed: \(speak.stderr)") }
        let convert = try CommandLineTool.run("/usr/bin/sox", [wav, "-r", "\(rate)", "-c", "1", "-e", "signed", "-b", "16", "-t", "raw", raw])
        guard convert.status == 0 else { throw TestFailure("sox failed: \(convert.stderr)") }
        let speech = try RawAudio.read(raw)
        let silence = [Int16](repeating: 0, count: Int(padding.components.seconds) * rate + Int(padding.components.attoseconds / 1_000_000_000_000) * rate / 1_000_000)
        return silence + speech + silence
    }
}

enum RawAudio {
    static func read(_ path: String) throws -> [Int16] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { bytes in
            (0..<(data.count / 2)).map { Int16(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
        }
    }

    static func write(_ samples: [Int16], to path: String) throws {
        let data = samples.withUnsafeBufferPointer { Data(buffer: $0) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// 20 ms frames of `samples` (the last partial frame padded with silence).
    static func frames(_ samples: [Int16], format: AudioFormat, start: Duration = .zero) -> [AudioFrame] {
        let size = format.frames(milliseconds: AudioFrame.milliseconds) * format.channels
        return stride(from: 0, to: samples.count, by: size).enumerated().map { index, offset in
            var chunk = Array(samples[offset..<min(samples.count, offset + size)])
            chunk += [Int16](repeating: 0, count: size - chunk.count)
            return AudioFrame(format: format, timestamp: start + .milliseconds(20 * index), sequence: UInt64(index), samples: chunk)
        }
    }
}

/// How closely a recovered signal matches the original after finding the delay between them.
struct SignalMatch: CustomStringConvertible {
    /// `recovered[n + lag] ≈ reference[n]`; negative when the recording began inside the
    /// reference's lead-in.
    let lag: Int
    /// Normalised cross-correlation at `lag`, over the reference's length.
    let correlation: Double
    /// RMS of the recovered stretch minus the reference's, in dB.
    let levelDifferenceDB: Double

    var description: String {
        String(format: "lag %d samples, correlation %.3f, level %+.2f dB", lag, correlation, levelDifferenceDB)
    }

    /// Coarse search on 1 ms energy envelopes, then a sample-exact search around the best block;
    /// lags from -maxLag to maxLag.
    static func find(reference: [Int16], in recovered: [Int16], maxLag: Int) -> SignalMatch {
        let block = 48
        let padding = (maxLag / block + 1) * block
        let padded = [Int16](repeating: 0, count: padding) + recovered
        let referenceEnvelope = envelope(reference, block: block)
        let recoveredEnvelope = envelope(padded, block: block)
        var bestBlock = 0
        var bestScore = -Double.infinity
        for lag in 0...max(0, min(2 * padding / block, recoveredEnvelope.count - 1)) {
            let score = correlation(referenceEnvelope, recoveredEnvelope, lag: lag)
            if score > bestScore { (bestScore, bestBlock) = (score, lag) }
        }
        let reference = reference.map(Double.init)
        let recovered = padded.map(Double.init)
        var best = (lag: 0, score: -Double.infinity)
        for lag in max(0, (bestBlock - 2) * block)...((bestBlock + 2) * block) {
            let score = correlation(reference, recovered, lag: lag)
            if score > best.score { best = (lag, score) }
        }
        let end = min(recovered.count, best.lag + reference.count)
        let stretch = best.lag < end ? Array(recovered[best.lag..<end]) : []
        let level = rms(stretch) / max(1e-9, rms(reference))
        return SignalMatch(lag: best.lag - padding, correlation: best.score, levelDifferenceDB: 20 * log10(max(level, 1e-9)))
    }

    private static func envelope(_ samples: [Int16], block: Int) -> [Double] {
        stride(from: 0, to: samples.count - block + 1, by: block).map { start in
            rms(samples[start..<(start + block)].map(Double.init))
        }
    }

    private static func rms(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : (values.reduce(0) { $0 + $1 * $1 } / Double(values.count)).squareRoot()
    }

    private static func correlation(_ reference: [Double], _ signal: [Double], lag: Int) -> Double {
        var product = 0.0, referenceEnergy = 0.0, signalEnergy = 0.0
        reference.withUnsafeBufferPointer { reference in
            signal.withUnsafeBufferPointer { signal in
                let count = min(reference.count, signal.count - lag)
                guard count > 0 else { return }
                for index in 0..<count {
                    let (a, b) = (reference[index], signal[index + lag])
                    product += a * b
                    referenceEnergy += a * a
                    signalEnergy += b * b
                }
                // Reference samples past the end of the signal count as missed energy.
                for index in count..<reference.count { referenceEnergy += reference[index] * reference[index] }
            }
        }
        guard referenceEnergy > 0, signalEnergy > 0 else { return 0 }
        return product / (referenceEnergy * signalEnergy).squareRoot()
    }
}

/// Encodes frames with Opus and decodes them again, as the stream and the far end would.
func opusRoundTrip(_ frames: [AudioFrame]) throws -> [AudioFrame] {
    guard let format = frames.first?.format else { return [] }
    let encoder = try OpusVoiceEncoder(format: format)
    let decoder = try OpusVoiceDecoder(format: format)
    return try frames.map { try decoder.decode(try encoder.encode($0)) }
}
