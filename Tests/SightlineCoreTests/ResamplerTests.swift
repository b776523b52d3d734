import Foundation
import Testing
@testable import SightlineCore

@Suite("Resampler, channel mix and levels")
struct ResamplerTests {

    @Test("A tone keeps its frequency and level", arguments: [(48000, 16000), (44100, 16000), (22050, 16000), (16000, 48000), (44100, 48000)])
    func toneKeepsFrequencyAndLevel(rates: (Int, Int)) throws {
        for frequency in [440.0, 1000.0, 3400.0, 6000.0] {
            var resampler = try Resampler(inputRate: rates.0, outputRate: rates.1)
            let input = Self.sine(frequency: frequency, rate: rates.0, seconds: 0.5, amplitude: 0.5)
            let output = resampler.process(input) + resampler.flush()
            #expect(output.count == resampler.outputFrames(forInputFrames: input.count))
            // Away from the stream's edges, where the filter sees silence on one side.
            let steady = Array(output[(rates.1 / 20)..<(output.count - rates.1 / 20)])
            let fit = Self.fitTone(steady, frequency: frequency, rate: rates.1)
            #expect(abs(20 * log10(fit.amplitude / 0.5)) < 0.05, "\(rates) \(frequency) Hz: amplitude \(fit.amplitude)")
            #expect(fit.residualDB < -60, "\(rates) \(frequency) Hz: residual \(fit.residualDB) dB")
        }
    }

    @Test("Content above the new Nyquist frequency is attenuated, not aliased")
    func antiAliasing() throws {
        for (rates, frequencies) in [((48000, 16000), [8500.0, 9000.0, 12000.0, 15000.0, 20000.0]),
                                     ((44100, 16000), [8500.0, 10000.0, 16000.0, 21000.0]),
                                     ((22050, 16000), [8500.0, 9500.0, 10500.0])] {
            for frequency in frequencies {
                var resampler = try Resampler(inputRate: rates.0, outputRate: rates.1)
                let input = Self.sine(frequency: frequency, rate: rates.0, seconds: 0.5, amplitude: 0.5)
                let output = resampler.process(input) + resampler.flush()
                let steady = output[(rates.1 / 20)..<(output.count - rates.1 / 20)]
                let attenuation = AudioLevel(samples: steady).rmsDBFS - AudioLevel(samples: input).rmsDBFS
                #expect(attenuation < -70, "\(rates) \(frequency) Hz only \(attenuation) dB down")
            }
        }
    }

    @Test("Chunked processing equals one call, in Float and Int16", arguments: [(48000, 16000), (44100, 16000), (22050, 16000), (16000, 48000), (44100, 48000)])
    func chunkedEqualsOneShot(rates: (Int, Int)) throws {
        var generator = SplitMix(seed: 7)
        let input = (0..<9000).map { _ in Float(generator.unit() * 1.6 - 0.8) }
        var whole = try Resampler(inputRate: rates.0, outputRate: rates.1)
        let expected = whole.process(input) + whole.flush()

        var chunked = try Resampler(inputRate: rates.0, outputRate: rates.1)
        var output: [Float] = []
        var offset = 0
        for size in [0, 1, 2, 959, 1, 320, 3, 1000, 0, 441] + Array(repeating: 480, count: 20) where offset < input.count {
            let end = min(input.count, offset + size)
            output += chunked.process(Array(input[offset..<end]))
            offset = end
        }
        output += chunked.process(Array(input[offset...]))
        output += chunked.flush()
        #expect(output == expected)

        let samples16 = input.map { Int16($0 * 32000) }
        var whole16 = try Resampler(inputRate: rates.0, outputRate: rates.1)
        let expected16 = whole16.process(samples16) + whole16.flushInt16()
        var chunked16 = try Resampler(inputRate: rates.0, outputRate: rates.1)
        var output16: [Int16] = []
        for start in stride(from: 0, to: samples16.count, by: 960) {
            output16 += chunked16.process(Array(samples16[start..<min(samples16.count, start + 960)]))
        }
        output16 += chunked16.flushInt16()
        #expect(output16 == expected16)
        #expect(output16.count == whole16.outputFrames(forInputFrames: samples16.count))
    }

    @Test("Output n stands for input time n·in/out: an impulse lands where its time says")
    func timeAlignment() throws {
        for (rates, inputIndex, outputIndex) in [((48000, 16000), 3000, 1000), ((44100, 16000), 4410, 1600),
                                                 ((22050, 16000), 2205, 1600), ((16000, 48000), 1000, 3000)] {
            var resampler = try Resampler(inputRate: rates.0, outputRate: rates.1)
            var input = [Float](repeating: 0, count: rates.0 / 2)
            input[inputIndex] = 1
            let output = resampler.process(input) + resampler.flush()
            let peak = try #require(output.indices.max { output[$0] < output[$1] })
            #expect(peak == outputIndex, "\(rates)")
        }
    }

    @Test("A constant stays constant; a new stream after flush starts clean")
    func constantAndReset() throws {
        var resampler = try Resampler(inputRate: 44100, outputRate: 16000)
        let first = resampler.process([Float](repeating: 0.25, count: 44100)) + resampler.flush()
        for value in first[200..<(first.count - 200)] { #expect(abs(value - 0.25) < 1e-4) }
        let second = resampler.process([Float](repeating: 0.25, count: 44100)) + resampler.flush()
        #expect(second == first)
    }

    @Test("Unusable rates are refused with advice")
    func refusedRates() {
        #expect(throws: Resampler.Failure.invalidRate(0)) { try Resampler(inputRate: 0, outputRate: 16000) }
        #expect(throws: Resampler.Failure.ratioTooFine(inputRate: 44101, outputRate: 16000)) {
            try Resampler(inputRate: 44101, outputRate: 16000)
        }
        #expect(Resampler.Failure.ratioTooFine(inputRate: 44101, outputRate: 16000).description.contains("common divisor"))
    }

    @Test("Downmix averages each frame's channels")
    func downmix() {
        #expect(ChannelMix.mono(interleaved: [Int16]([100, 300, -32768, -32768, 32767, 32767, 5]), channels: 2) == [200, -32768, 32767])
        #expect(ChannelMix.mono(interleaved: [Int16]([3, 6, 9]), channels: 3) == [6])
        #expect(ChannelMix.mono(interleaved: [Int16]([1, 2]), channels: 1) == [1, 2])
    }

    @Test("Levels in dBFS: full-scale sine, half scale, silence")
    func levels() {
        let fullScale = Self.sine(frequency: 1000, rate: 48000, seconds: 0.1, amplitude: 1).map { Int16(max(-32768, min(32767, $0 * 32768))) }
        let level = AudioLevel(samples: fullScale)
        #expect(abs(level.rmsDBFS - -3.01) < 0.02)
        #expect(abs(level.peakDBFS) < 0.01)
        let half = AudioLevel(samples: Self.sine(frequency: 1000, rate: 48000, seconds: 0.1, amplitude: 0.5))
        #expect(abs(half.rmsDBFS - -9.03) < 0.02)
        #expect(AudioLevel(samples: [Int16](repeating: 0, count: 960)) == AudioLevel(rmsDBFS: AudioLevel.floor, peakDBFS: AudioLevel.floor))
        #expect(AudioLevel(samples: [Int16]()).rmsDBFS == AudioLevel.floor)
    }

    static func sine(frequency: Double, rate: Int, seconds: Double, amplitude: Double) -> [Float] {
        (0..<Int(Double(rate) * seconds)).map { Float(amplitude * sin(2 * Double.pi * frequency * Double($0) / Double(rate))) }
    }

    /// Least-squares fit of a sine at `frequency`: its amplitude and how much energy is left over.
    static func fitTone(_ samples: [Float], frequency: Double, rate: Int) -> (amplitude: Double, residualDB: Double) {
        var sumCos = 0.0, sumSin = 0.0, cc = 0.0, ss = 0.0, cs = 0.0
        for (index, sample) in samples.enumerated() {
            let angle = 2 * Double.pi * frequency * Double(index) / Double(rate)
            let (c, s) = (cos(angle), sin(angle))
            sumCos += Double(sample) * c
            sumSin += Double(sample) * s
            cc += c * c
            ss += s * s
            cs += c * s
        }
        // Solve the 2×2 normal equations.
        let determinant = cc * ss - cs * cs
        let a = (sumCos * ss - sumSin * cs) / determinant
        let b = (sumSin * cc - sumCos * cs) / determinant
        var residual = 0.0, total = 0.0
        for (index, sample) in samples.enumerated() {
            let angle = 2 * Double.pi * frequency * Double(index) / Double(rate)
            let error = Double(sample) - a * cos(angle) - b * sin(angle)
            residual += error * error
            total += Double(sample) * Double(sample)
        }
        return ((a * a + b * b).squareRoot(), 10 * log10(max(residual, 1e-30) / total))
    }
}

/// Deterministic test noise (SplitMix64).
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

@Suite("Capture clock")
struct CaptureClockTests {
    @Test("Jittery measurements give steady timestamps; a real gap is reported once and followed")
    func steadyAndGaps() {
        var clock = CaptureClock(format: .stream)
        var generator = SplitMix(seed: 3)
        var previous: Duration?
        var stamps: [Duration] = []
        for chunk in 0..<500 {
            // True capture time plus up to ±10 ms of measurement noise.
            let truth = Duration.milliseconds(1000 + 20 * chunk)
            let noise = Duration.microseconds(Int64(generator.unit() * 20_000) - 10_000)
            let (stamp, gap) = clock.stamp(frames: 960, measured: truth + noise)
            #expect(!gap)
            if let previous { #expect(stamp > previous) }
            previous = stamp
            stamps.append(stamp)
        }
        let steps = zip(stamps, stamps.dropFirst()).map { $1 - $0 }
        #expect(steps.allSatisfy { abs(($0 - .milliseconds(20)) / .microseconds(1)) < 400 }, "\(steps.prefix(10))")
        #expect(abs((stamps.last! - .milliseconds(1000 + 20 * 499)) / .milliseconds(1)) < 6)

        // 300 ms lost: reported, and the clock jumps with the measurement.
        let (afterGap, gap) = clock.stamp(frames: 960, measured: .milliseconds(1000 + 20 * 500 + 300))
        #expect(gap)
        #expect(afterGap == .milliseconds(1000 + 20 * 500 + 300))
        let (next, nextGap) = clock.stamp(frames: 960, measured: .milliseconds(1000 + 20 * 501 + 300))
        #expect(!nextGap)
        #expect(next == afterGap + .milliseconds(20))
    }
}

extension CaptureClockTests {
    @Test("An unpaced source (a file read at full speed) still gets rising timestamps")
    func unpacedSource() {
        var clock = CaptureClock(format: .stream)
        var previous = Duration.zero
        for chunk in 0..<1000 {
            let (stamp, _) = clock.stamp(frames: 960, measured: .milliseconds(5000) + .microseconds(Int64(chunk * 10)))
            if chunk > 0 { #expect(stamp - previous >= .milliseconds(15)) }
            previous = stamp
        }
    }
}
