import Foundation
import Testing
@testable import SightlineCore

@Suite("Earcons and audio clips")
struct FeedbackSoundTests {
    /// Frequency from zero crossings (positive-going) over `samples`.
    static func frequency(_ samples: ArraySlice<Int16>, rate: Int) -> Double {
        var crossings = 0
        var previous = samples.first ?? 0
        for sample in samples.dropFirst() {
            if previous < 0, sample >= 0 { crossings += 1 }
            previous = sample
        }
        return Double(crossings) * Double(rate) / Double(samples.count)
    }

    /// The first and last `milliseconds` that carry sound (gaps skipped by looking for the edges).
    static func ends(_ samples: [Int16], rate: Int, milliseconds: Int) -> (ArraySlice<Int16>, ArraySlice<Int16>) {
        let window = rate * milliseconds / 1000
        let first = samples.firstIndex { abs(Int($0)) > 200 } ?? 0
        let last = samples.lastIndex { abs(Int($0)) > 200 } ?? samples.count - 1
        return (samples[first..<(first + window)], samples[(last - window)...last])
    }

    @Test("Every earcon is short, clearly audible below full scale, and starts and ends without a click",
          arguments: Earcon.allCases, [16000, 48000])
    func earconShape(earcon: Earcon, rate: Int) {
        let clip = earcon.clip(sampleRate: rate)
        #expect(clip.format == AudioFormat(sampleRate: rate, channels: 1))
        #expect(clip.duration >= .milliseconds(150) && clip.duration <= .milliseconds(400), "\(earcon): \(clip.duration)")
        let level = AudioLevel(samples: clip.samples)
        #expect(level.peakDBFS > -12 && level.peakDBFS < -6, "\(earcon): peak \(level.peakDBFS)")
        #expect(level.rmsDBFS > -20, "\(earcon): rms \(level.rmsDBFS)")
        // The raised-cosine edges: the first and last samples are next to silence.
        #expect(abs(Int(clip.samples[0])) < 100 && abs(Int(clip.samples[clip.samples.count - 1])) < 100)
        // No jump between neighbours larger than a 1.5 kHz sine at this level can make.
        let largestStep = zip(clip.samples, clip.samples.dropFirst()).map { abs(Int($1) - Int($0)) }.max() ?? 0
        let limit = 2 * Double.pi * 1500 / Double(rate) * Earcon.amplitude * 32767
        #expect(Double(largestStep) <= limit, "\(earcon): step \(largestStep)")
    }

    @Test("Accepted and recording-started rise in pitch; rejected and recording-stopped fall; pending and cancelled hold theirs")
    func earconDirection() {
        for earcon in Earcon.allCases {
            let clip = earcon.clip(sampleRate: 48000)
            let (head, tail) = Self.ends(clip.samples, rate: 48000, milliseconds: 30)
            let start = Self.frequency(head, rate: 48000), end = Self.frequency(tail, rate: 48000)
            switch earcon {
            case .accepted, .recordingStarted: #expect(end > start * 1.3, "\(earcon): \(start) → \(end) Hz")
            case .rejected, .recordingStopped: #expect(end < start / 1.3, "\(earcon): \(start) → \(end) Hz")
            case .pending, .cancelled: #expect(abs(end - start) < start * 0.15, "\(earcon) keeps its pitch: \(start) → \(end) Hz")
            }
        }
        let clips = Earcon.allCases.map { $0.clip().samples }
        #expect(Set(clips).count == clips.count, "earcons must differ")
    }

    @Test("A 22050 Hz clip converted to 48 kHz keeps its length, pitch and level; stereo gets the same samples on both channels")
    func clipConversion() throws {
        let rate = 22050
        let tone = (0..<rate).map { Int16((sin(2 * Double.pi * 440 * Double($0) / Double(rate)) * 10000).rounded()) }
        let clip = AudioClip(format: AudioFormat(sampleRate: rate, channels: 1), samples: tone)
        let mono = try clip.converted(to: .stream)
        #expect(mono.format == .stream)
        #expect(abs(mono.samples.count - 48000) <= 2, "\(mono.samples.count) samples")
        let steady = mono.samples[4800..<43200]
        #expect(abs(Self.frequency(steady, rate: 48000) - 440) < 2)
        let levelChange = AudioLevel(samples: steady).rmsDBFS - AudioLevel(samples: tone[2205..<19845]).rmsDBFS
        #expect(abs(levelChange) < 0.2, "level changed by \(levelChange) dB")

        let stereo = try clip.converted(to: AudioFormat(sampleRate: 48000, channels: 2))
        #expect(stereo.samples.count == mono.samples.count * 2)
        #expect(stride(from: 0, to: stereo.samples.count, by: 2).allSatisfy { stereo.samples[$0] == stereo.samples[$0 + 1] })
        #expect(stride(from: 0, to: stereo.samples.count, by: 2).map { stereo.samples[$0] } == mono.samples)
        #expect(try clip.converted(to: clip.format) == clip)
    }

    @Test("A clip cut into 20 ms frames: every sample in order, then silence to the tail")
    func clipFrames() {
        let samples = (0..<2500).map { Int16($0 % 3000 + 1) }
        let clip = AudioClip(format: .stream, samples: samples)
        let frames = clip.frames(tail: .milliseconds(100), startingAt: .seconds(5))
        // 2500 samples + 4800 of tail = 7300 → 8 frames of 960.
        #expect(frames.count == 8)
        #expect(frames.allSatisfy { $0.samples.count == 960 && $0.format == .stream })
        let flat = frames.flatMap(\.samples)
        #expect(Array(flat.prefix(2500)) == samples)
        #expect(flat.dropFirst(2500).allSatisfy { $0 == 0 })
        #expect(frames.map(\.sequence) == Array(0..<8))
        #expect(frames.map(\.timestamp) == (0..<8).map { .seconds(5) + .milliseconds(20 * $0) })
        #expect(AudioClip(format: .stream, samples: []).frames(tail: .zero).isEmpty)
    }
}

@Suite("Level meter")
struct LevelMeterTests {
    @Test("The meter fills to the RMS level and marks the peak; silence and clipping stay in bounds")
    func meter() {
        #expect(AudioLevel(rmsDBFS: -30, peakDBFS: -12).meter(width: 20, range: -60...0) == "##########.....|....")
        #expect(AudioLevel(rmsDBFS: AudioLevel.floor, peakDBFS: AudioLevel.floor).meter(width: 10) == "..........")
        #expect(AudioLevel(rmsDBFS: 3, peakDBFS: 6).meter(width: 10) == "##########")
        #expect(AudioLevel(rmsDBFS: -30, peakDBFS: -30).meter(width: 20) == "##########..........")
        #expect(AudioLevel(rmsDBFS: -30, peakDBFS: -12).meter(width: 0).isEmpty)
    }
}
