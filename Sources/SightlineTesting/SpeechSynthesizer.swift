import Foundation
import SightlineCore

/// Speech for voice-command tests, made at test time by flite (whose voices the PocketSphinx
/// model recognises well, unlike espeak-ng's) and sox: deterministic, so a failure reproduces.
public enum SpeechSynthesizer {
    /// flite's built-in voices; kal16 is the 16 kHz build of kal.
    public static let voices = ["slt", "rms", "awb", "kal16"]

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// `text` spoken by `voice`, `tempo` times as fast (sox `tempo`, pitch kept), as 16 kHz mono.
    public static func speak(_ text: String, voice: String, tempo: Double = 1.0) throws -> [Int16] {
        let directory = try TemporaryDirectory(prefix: "sightline-speech")
        let spoken = directory.file("flite.wav")
        let converted = directory.file("speech.wav")
        try run("/usr/bin/flite", ["-voice", voice, "-t", text, "-o", spoken])
        var effects = ["rate", "16000"]
        if tempo != 1.0 { effects = ["tempo", String(tempo)] + effects }
        // -R: sox dithers with a random seed per run otherwise, and the corpora would differ
        // from run to run in their lowest bits — enough to move a borderline margin.
        try run("/usr/bin/sox", ["-R", spoken, "-c", "1", "-b", "16", converted] + effects)
        return try WAVFile(contentsOf: converted).int16Samples
    }

    /// Writes 16 kHz mono samples as a WAV file at `rate` Hz with `channels` identical channels
    /// (sox converts), for tests of other input formats.
    public static func writeWAV(_ samples: [Int16], to path: String, rate: Int = 16000, channels: Int = 1, bits: Int = 16) throws {
        let source = path + ".16k.wav"
        try WAVFile.encode(samples: samples, sampleRate: 16000, channels: 1).write(to: URL(fileURLWithPath: source))
        defer { try? FileManager.default.removeItem(atPath: source) }
        try run("/usr/bin/sox", ["-R", source, "-r", String(rate), "-c", String(channels), "-b", String(bits), path])
    }

    /// Room tone: quiet deterministic noise (about -66 dBFS) rather than digital zeros, which no
    /// microphone delivers.
    public static func roomTone(seconds: Double, seed: UInt64 = 1) -> [Int16] {
        noise(seconds: seconds, amplitude: 16, seed: seed)
    }

    /// `samples` with room tone laid under them: flite's pauses are digital zeros, which no
    /// microphone delivers and which upset the decoder's noise estimate.
    public static func inRoom(_ samples: [Int16], seed: UInt64 = 7) -> [Int16] {
        let tone = roomTone(seconds: Double(samples.count) / 16000 + 0.001, seed: seed)
        return samples.indices.map { Int16(clamping: Int(samples[$0]) + Int(tone[$0])) }
    }

    /// Uniform white noise of the given peak amplitude.
    public static func noise(seconds: Double, amplitude: Int16, seed: UInt64) -> [Int16] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<Int(seconds * 16000)).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return Int16(Int64(state % UInt64(2 * Int(amplitude) + 1)) - Int64(amplitude))
        }
    }

    /// Mains hum at `frequency` Hz with its third harmonic.
    public static func hum(seconds: Double, frequency: Double = 50, amplitude: Double = 3000) -> [Int16] {
        (0..<Int(seconds * 16000)).map { index in
            let time = Double(index) / 16000
            return Int16(amplitude * (sin(2 * .pi * frequency * time) + 0.3 * sin(2 * .pi * 3 * frequency * time)))
        }
    }

    /// Adds `noise` (repeated as needed) to `speech` so that the speech's power over the noise's
    /// is `snr` dB, measured over the speech's non-silent part.
    public static func mix(_ speech: [Int16], noise: [Int16], snr: Double) -> [Int16] {
        func power(_ samples: some Collection<Int16>) -> Double {
            samples.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(1, samples.count))
        }
        let loud = speech.filter { abs(Int($0)) > 64 }
        let gain = (power(loud) / max(1, power(noise)) / pow(10, snr / 10)).squareRoot()
        return speech.enumerated().map { index, sample in
            let value = Double(sample) + gain * Double(noise[index % noise.count])
            return Int16(max(-32768, min(32767, value.rounded())))
        }
    }

    private static func run(_ tool: String, _ arguments: [String]) throws {
        let result = try CommandLineTool.run(tool, arguments)
        guard result.status == 0 else {
            throw Failure(description: "\(tool) \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.stderr)"
                + " — install it with scripts/install-deps test")
        }
    }
}
