import Foundation

/// How much of a recording is one steady tone: a browser's fake microphone plays one, and a test
/// checks that what came out of the device's speaker is still that tone, not merely something loud.
public enum ToneMeter {
    /// One 20 ms window of a recording.
    public struct Window: Sendable {
        /// The window's RMS level, dBFS (full scale 32768).
        public let rmsDBFS: Double
        /// The share of the window's energy at the tone's frequency: 1 for a pure sine there,
        /// near 0 for anything else (Goertzel's single DFT bin; 20 ms holds a whole number of
        /// cycles for every multiple of 50 Hz, so such a tone leaks into no other bin).
        public let toneShare: Double
    }

    /// The windows of `samples` louder than `floorDBFS`, each with its share of `frequency`.
    public static func loudWindows(_ samples: [Int16], frequency: Double, sampleRate: Int, floorDBFS: Double = -50) -> [Window] {
        let length = sampleRate / 50
        guard length > 0, samples.count >= length else { return [] }
        let coefficient = 2 * cos(2 * Double.pi * frequency / Double(sampleRate))
        var windows: [Window] = []
        for start in stride(from: 0, through: samples.count - length, by: length) {
            var (previous, beforePrevious, sumOfSquares) = (0.0, 0.0, 0.0)
            for sample in samples[start..<(start + length)] {
                let value = Double(sample) / 32768
                sumOfSquares += value * value
                (previous, beforePrevious) = (value + coefficient * previous - beforePrevious, previous)
            }
            let meanSquare = sumOfSquares / Double(length)
            let rmsDBFS = 10 * log10(max(meanSquare, 1e-12))
            guard rmsDBFS > floorDBFS else { continue }
            // |X|² of the bin; a sine of amplitude A gives |X| = A·N/2, whose mean square is A²/2.
            let power = previous * previous + beforePrevious * beforePrevious - coefficient * previous * beforePrevious
            let toneMeanSquare = 2 * power / Double(length * length)
            windows.append(Window(rmsDBFS: rmsDBFS, toneShare: min(1, toneMeanSquare / meanSquare)))
        }
        return windows
    }

    /// The median of `values` (nil when empty): one late or concealed frame does not move it.
    public static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        return values.sorted()[values.count / 2]
    }
}
