import Foundation

/// RMS and peak of a block of samples in dBFS (0 dBFS = full scale; a full-scale sine has an RMS
/// of -3.01 dBFS). Silence reports `AudioLevel.floor` rather than -infinity so the value stays
/// printable and encodable as JSON.
public struct AudioLevel: Sendable, Equatable, Codable {
    public static let floor = -120.0

    public let rmsDBFS: Double
    public let peakDBFS: Double

    /// Spelt so that snake_case JSON (`rms_dbfs`) round-trips.
    enum CodingKeys: String, CodingKey {
        case rmsDBFS = "rmsDbfs"
        case peakDBFS = "peakDbfs"
    }

    public init(rmsDBFS: Double, peakDBFS: Double) {
        self.rmsDBFS = rmsDBFS
        self.peakDBFS = peakDBFS
    }

    /// Level of 16-bit samples, full scale 32768.
    public init(samples: some Collection<Int16>) {
        var sumOfSquares = 0.0
        var peak = 0
        for sample in samples {
            let value = Double(sample)
            sumOfSquares += value * value
            peak = max(peak, abs(Int(sample)))
        }
        let count = Double(max(1, samples.count))
        self.init(rmsDBFS: Self.decibels((sumOfSquares / count).squareRoot() / 32768),
                  peakDBFS: Self.decibels(Double(peak) / 32768))
    }

    /// Level of float samples, full scale 1.0.
    public init(samples: some Collection<Float>) {
        var sumOfSquares = 0.0
        var peak: Float = 0
        for sample in samples {
            sumOfSquares += Double(sample) * Double(sample)
            peak = max(peak, abs(sample))
        }
        let count = Double(max(1, samples.count))
        self.init(rmsDBFS: Self.decibels((sumOfSquares / count).squareRoot()), peakDBFS: Self.decibels(Double(peak)))
    }

    /// A text meter for a terminal: `width` cells from `range.lowerBound` to 0 dBFS, `#` up to the
    /// RMS level, `|` at the peak, `.` for the rest (e.g. `#####|....` for speech).
    public func meter(width: Int = 40, range: ClosedRange<Double> = -60...0) -> String {
        guard width > 0 else { return "" }
        func cells(_ dbfs: Double) -> Int {
            let fraction = (min(range.upperBound, max(range.lowerBound, dbfs)) - range.lowerBound) / (range.upperBound - range.lowerBound)
            return Int((fraction * Double(width)).rounded())
        }
        let filled = cells(rmsDBFS)
        let peak = cells(peakDBFS)
        return String((0..<width).map { index -> Character in
            if index < filled { return "#" }
            if index == peak - 1, peak > filled { return "|" }
            return "."
        })
    }

    /// 20·log10 of an amplitude ratio, never below `floor`.
    public static func decibels(_ amplitude: Double) -> Double {
        amplitude > 0 ? max(floor, 20 * log10(amplitude)) : floor
    }
}
