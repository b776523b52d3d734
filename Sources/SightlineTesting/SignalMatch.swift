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

    /// Like `find`, but aligned piece by piece: a real-time path (jitter buffer, sound server)
    /// may insert a few milliseconds of silence or concealment when it runs late, which shifts
    /// everything after it. The reference is cut into `segment`-sample pieces; each is aligned on
    /// its own within `slack` samples after where the previous one ended up. The correlation is
    /// the energy-weighted mean over the pieces that carry sound, the level that of all of them.
    public static func piecewise(reference: [Int16], in recovered: [Int16], maxLag: Int, segment: Int = 4800,
                                 slack: Int = 9600) -> SignalMatch {
        let first = find(reference: reference, in: recovered, maxLag: maxLag)
        let loudest = rms(reference.map(Double.init))
        var lag = first.lag
        var weighted = 0.0, weights = 0.0, referenceEnergy = 0.0, recoveredEnergy = 0.0
        for start in stride(from: 0, to: reference.count - segment / 2, by: segment) {
            let piece = Array(reference[start..<min(reference.count, start + segment)])
            let pieceLevel = rms(piece.map(Double.init))
            // Quiet pieces (pauses) say nothing about alignment.
            guard pieceLevel > loudest / 10 else { continue }
            let low = max(0, start + lag - slack / 4), high = min(recovered.count, start + lag + piece.count + slack)
            guard high - low > piece.count / 2 else { continue }
            let match = find(reference: piece, in: Array(recovered[low..<high]), maxLag: high - low)
            let energy = pieceLevel * pieceLevel * Double(piece.count)
            weighted += max(0, match.correlation) * energy
            weights += energy
            referenceEnergy += energy
            recoveredEnergy += energy * pow(10, match.levelDifferenceDB / 10)
            lag = low + match.lag - start
        }
        guard weights > 0 else { return first }
        return SignalMatch(lag: first.lag, correlation: weighted / weights,
                           levelDifferenceDB: 10 * log10(max(recoveredEnergy, 1e-9) / referenceEnergy))
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
