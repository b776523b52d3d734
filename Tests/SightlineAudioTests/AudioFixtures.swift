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

/// Encodes frames with Opus and decodes them again, as the stream and the far end would.
func opusRoundTrip(_ frames: [AudioFrame]) throws -> [AudioFrame] {
    guard let format = frames.first?.format else { return [] }
    let encoder = try OpusVoiceEncoder(format: format)
    let decoder = try OpusVoiceDecoder(format: format)
    return try frames.map { try decoder.decode(try encoder.encode($0)) }
}
