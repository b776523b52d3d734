import Foundation
import SightlineAudio
import SightlineCore
import SightlineTesting
import Testing

@Suite("Opus voice codec (libopus)")
struct OpusCodecTests {
    @Test("Speech survives encode and decode: correlation ≥ 0.8, level within 3 dB, timestamps kept")
    func speechRoundTrip() throws {
        if let reason = SpeechFixture.unavailableReason { print("skipped: \(reason)"); return }
        let directory = try TemporaryDirectory(prefix: "sightline-opus")
        let speech = try SpeechFixture.samples(rate: 48000, in: directory)
        let frames = RawAudio.frames(speech, format: .stream, start: .seconds(100))
        let encoder = try OpusVoiceEncoder()
        let decoder = try OpusVoiceDecoder()
        var decoded: [Int16] = []
        var bytes = 0
        for frame in frames {
            let packet = try encoder.encode(frame)
            #expect(packet.timestamp == frame.timestamp)
            #expect(packet.sequence == frame.sequence)
            bytes += packet.bytes.count
            let output = try decoder.decode(packet)
            #expect(output.timestamp == frame.timestamp)
            #expect(output.samples.count == 960)
            decoded += output.samples
        }
        let match = SignalMatch.find(reference: speech, in: decoded, maxLag: 4800)
        let kbps = Double(bytes * 8) / (Double(frames.count) * 0.02) / 1000
        print("Opus speech round trip: \(match), \(String(format: "%.1f", kbps)) kbit/s, lookahead \(encoder.lookahead) samples")
        #expect(match.correlation >= 0.8, "\(match)")
        #expect(abs(match.levelDifferenceDB) <= 3, "\(match)")
        #expect(abs(match.lag - encoder.lookahead) <= 48, "\(match)")
    }

    @Test("DTX: silence after speech shrinks to packets of at most 2 bytes")
    func discontinuousTransmission() throws {
        let encoder = try OpusVoiceEncoder()
        let tone = (0..<960 * 10).map { Int16(8000 * sin(2 * Double.pi * 440 * Double($0) / 48000)) }
        let frames = RawAudio.frames(tone + [Int16](repeating: 0, count: 960 * 50), format: .stream)
        let packets = try frames.map { try encoder.encode($0) }
        #expect(packets.prefix(10).allSatisfy { !$0.isDiscontinuous })
        let silent = packets.suffix(20)
        #expect(silent.filter(\.isDiscontinuous).count >= 15, "\(silent.map(\.bytes.count))")
    }

    @Test("A lost packet is rebuilt from the next one's FEC data better than concealment guesses it")
    func forwardErrorCorrection() throws {
        if let reason = SpeechFixture.unavailableReason { print("skipped: \(reason)"); return }
        let directory = try TemporaryDirectory(prefix: "sightline-opus")
        let speech = try SpeechFixture.samples(rate: 48000, padding: .milliseconds(100), in: directory)
        let frames = RawAudio.frames(speech, format: .stream)
        let encoder = try OpusVoiceEncoder(expectedLossPercent: 20)
        let packets = try frames.map { try encoder.encode($0) }
        // Lose a loud frame in the middle of the speech.
        let loudest = frames.indices.dropFirst(10).dropLast(10).max {
            AudioLevel(samples: frames[$0].samples).rmsDBFS < AudioLevel(samples: frames[$1].samples).rmsDBFS
        } ?? 20

        func recovered(useFEC: Bool) throws -> [Int16] {
            let decoder = try OpusVoiceDecoder()
            var output: [Int16] = []
            for index in packets.indices {
                if index == loudest {
                    let missing = try decoder.decodeMissing(before: useFEC ? packets[index + 1] : nil,
                                                            timestamp: packets[index].timestamp, sequence: packets[index].sequence)
                    #expect(missing.samples.count == 960)
                    #expect(missing.sequence == packets[index].sequence)
                    output += missing.samples
                } else {
                    output += try decoder.decode(packets[index]).samples
                }
            }
            return output
        }
        let reference = try recovered(useFEC: false)
        let clean = try OpusVoiceDecoder()
        let full = try packets.flatMap { try clean.decode($0).samples }
        func error(_ signal: [Int16]) -> Double {
            let range = (loudest * 960)..<((loudest + 1) * 960)
            return range.reduce(0.0) { $0 + pow(Double(signal[$1]) - Double(full[$1]), 2) }
        }
        let withFEC = try recovered(useFEC: true)
        print("lost frame \(loudest): squared error with FEC \(error(withFEC)), with concealment \(error(reference))")
        #expect(error(withFEC) < error(reference))
    }

    @Test("Frames of the wrong size or format are refused")
    func wrongFrames() throws {
        let encoder = try OpusVoiceEncoder()
        let short = AudioFrame(format: .stream, timestamp: .zero, sequence: 0, samples: [Int16](repeating: 0, count: 480))
        #expect(throws: AudioError.wrongFrameSize(expected: 960, got: 480)) { try encoder.encode(short) }
        #expect(throws: AudioError.self) { try OpusVoiceEncoder(format: AudioFormat(sampleRate: 44100, channels: 1)) }
    }
}
