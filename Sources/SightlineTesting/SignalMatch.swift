import Foundation

/// How closely a recovered signal matches the original after finding the delay between them.
public struct SignalMatch: CustomStringConvertible, Sendable {
    /// `recovered[n + lag] ≈ reference[n]`; negative when the recording began inside the
    /// reference's lead-in.
    public let lag: Int
    /// Normalised cross-correlation at `lag`, over the reference's length.
    public let correlation: Double
    /// RMS of the recovered stretch minus the reference's, in dB.
    public let levelDifferenceDB: Double

    public var description: String {
        String(format: "lag %d samples, correlation %.3f, level %+.2f dB", lag, correlation, levelDifferenceDB)
    }

    /// Coarse search on 1 ms energy envelopes, then a sample-exact search around the best block;
    /// lags from -maxLag to maxLag.
    public static func find(reference: [Int16], in recovered: [Int16], maxLag: Int) -> SignalMatch {
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
