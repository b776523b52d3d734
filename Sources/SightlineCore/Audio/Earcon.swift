import Foundation

/// Short synthesised sounds that tell a technician with busy hands what just happened, without
/// words: a command was accepted or rejected, a risky one waits out its cancel window or was
/// cancelled, recording started or stopped.
///
/// Each is a few tone segments (rising means yes/start, falling means no/stop) with raised-cosine
/// edges so they do not click; generated sample by sample, no files to ship or lose.
public enum Earcon: String, Sendable, CaseIterable, Codable {
    case accepted
    case rejected
    case recordingStarted = "recording-started"
    case recordingStopped = "recording-stopped"
    /// Waiting (a risky action's cancel window): two short beeps at one pitch.
    case pending
    /// Called off: one low beep.
    case cancelled

    /// One tone: a frequency sweep from `from` to `to` Hz, then `gap` of silence.
    struct Segment {
        let from: Double
        let to: Double
        let milliseconds: Int
        var gapMilliseconds = 0
    }

    /// Peak level: loud enough over machine noise, well below full scale (−9 dBFS).
    static let amplitude = 0.355
    /// Fade in and out of every segment.
    static let edgeMilliseconds = 6.0

    var segments: [Segment] {
        switch self {
        case .accepted:
            [Segment(from: 880, to: 880, milliseconds: 70, gapMilliseconds: 30), Segment(from: 1320, to: 1320, milliseconds: 110)]
        case .rejected:
            [Segment(from: 440, to: 440, milliseconds: 120, gapMilliseconds: 40), Segment(from: 311, to: 311, milliseconds: 200)]
        case .recordingStarted:
            [Segment(from: 600, to: 1200, milliseconds: 180)]
        case .recordingStopped:
            [Segment(from: 1200, to: 600, milliseconds: 180)]
        case .pending:
            [Segment(from: 660, to: 660, milliseconds: 60, gapMilliseconds: 80), Segment(from: 660, to: 660, milliseconds: 60)]
        case .cancelled:
            [Segment(from: 330, to: 330, milliseconds: 160)]
        }
    }

    /// The earcon as mono samples at `sampleRate`.
    public func clip(sampleRate: Int = AudioFormat.stream.sampleRate) -> AudioClip {
        let rate = Double(sampleRate)
        var samples: [Int16] = []
        for segment in segments {
            let count = sampleRate * segment.milliseconds / 1000
            let edge = max(1.0, Self.edgeMilliseconds * rate / 1000)
            var phase = 0.0
            for index in 0..<count {
                // Linear sweep; the phase accumulates so the tone stays continuous while it glides.
                let progress = count > 1 ? Double(index) / Double(count - 1) : 0
                let frequency = segment.from + (segment.to - segment.from) * progress
                phase += 2 * Double.pi * frequency / rate
                let fromEdge = Double(min(index, count - 1 - index))
                let envelope = fromEdge < edge ? 0.5 - 0.5 * cos(Double.pi * fromEdge / edge) : 1
                samples.append(Int16((sin(phase) * envelope * Self.amplitude * 32767).rounded()))
            }
            samples += [Int16](repeating: 0, count: sampleRate * segment.gapMilliseconds / 1000)
        }
        return AudioClip(format: AudioFormat(sampleRate: sampleRate, channels: 1), samples: samples)
    }
}
