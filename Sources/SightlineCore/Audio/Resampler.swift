import Foundation

/// Converts mono audio from one sample rate to another (48000→16000 for the voice-command tap,
/// 44100 or 22050→16000 for WAV files) with a polyphase windowed-sinc FIR filter.
///
/// The rate ratio is reduced to `up/down` (48000→16000 is 1/3, 44100→16000 is 160/441); the filter
/// has one phase per `up` and low-passes below the lower of the two Nyquist frequencies, so content
/// that the new rate cannot carry is removed instead of folding back as aliases. Output sample `n`
/// stands for input time `n·down/up` exactly (the filter is centred, not causal), so timestamps
/// convert by the rate ratio alone; the price is `latencyFrames` input samples of look-ahead.
///
/// Streaming: `process` may be called with chunks of any size and keeps its history across calls;
/// the result of many chunks equals the result of one call with the concatenation. `flush` ends the
/// stream and returns the samples that waited for look-ahead.
public struct Resampler: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case invalidRate(Int)
        case ratioTooFine(inputRate: Int, outputRate: Int)

        public var description: String {
            switch self {
            case .invalidRate(let rate):
                "sample rate \(rate) Hz is not usable; use a positive rate such as 16000, 44100 or 48000"
            case .ratioTooFine(let input, let output):
                "resampling \(input)→\(output) Hz needs more than \(Resampler.maximumPhases) filter phases; "
                    + "use rates with a larger common divisor (e.g. multiples of 50 Hz)"
            }
        }
    }

    /// Bounds the coefficient table (phases × taps floats) for odd rate pairs.
    public static let maximumPhases = 2048

    public let inputRate: Int
    public let outputRate: Int
    /// Input samples the filter looks ahead before it can produce an output sample.
    public let latencyFrames: Int

    private let up: Int
    private let down: Int
    private let halfTaps: Int
    /// `up` phases of `2·halfTaps` coefficients each, phase-major.
    private let coefficients: [Float]
    /// Input samples from absolute index `historyStart` on; indices below 0 are the stream's
    /// leading silence so the first outputs need no special case.
    private var history: [Float]
    private var historyStart: Int
    private var inputCount = 0
    private var outputCount = 0

    /// - Parameters:
    ///   - passband: fraction of the lower Nyquist frequency where the filter's cutoff is centred;
    ///     the transition band ends close to that Nyquist frequency with the default.
    ///   - zeroCrossings: sinc lobes on each side; more gives a steeper filter and more latency.
    public init(inputRate: Int, outputRate: Int, passband: Double = 0.88, zeroCrossings: Int = 24) throws(Failure) {
        guard inputRate > 0 else { throw .invalidRate(inputRate) }
        guard outputRate > 0 else { throw .invalidRate(outputRate) }
        let divisor = Self.greatestCommonDivisor(inputRate, outputRate)
        let up = outputRate / divisor
        let down = inputRate / divisor
        guard up <= Self.maximumPhases else { throw .ratioTooFine(inputRate: inputRate, outputRate: outputRate) }

        // Cutoff relative to the input's Nyquist frequency; below 1 only when the rate goes down.
        let cutoff = min(1.0, Double(up) / Double(down)) * passband
        let halfTaps = max(2, Int((Double(zeroCrossings) / cutoff).rounded(.up)))
        let kaiserBeta = 9.0  // about 90 dB stop-band attenuation
        let taps = 2 * halfTaps
        var table = [Float](repeating: 0, count: up * taps)
        for phase in 0..<up {
            let fraction = Double(phase) / Double(up)
            var phaseCoefficients = [Double](repeating: 0, count: taps)
            for tap in 0..<taps {
                // Tap `tap` multiplies input sample `i + tap - halfTaps + 1` for output time `i + fraction`.
                let distance = Double(tap - halfTaps + 1) - fraction
                let window = Self.kaiser(distance / Double(halfTaps), beta: kaiserBeta)
                phaseCoefficients[tap] = cutoff * Self.sinc(cutoff * distance) * window
            }
            // Unity gain at DC in every phase, so a constant stays constant whatever the phase.
            let sum = phaseCoefficients.reduce(0, +)
            for tap in 0..<taps { table[phase * taps + tap] = Float(phaseCoefficients[tap] / sum) }
        }

        self.inputRate = inputRate
        self.outputRate = outputRate
        self.up = up
        self.down = down
        self.halfTaps = halfTaps
        self.coefficients = table
        self.latencyFrames = halfTaps
        self.history = [Float](repeating: 0, count: halfTaps - 1)
        self.historyStart = -(halfTaps - 1)
    }

    /// Output samples a stream of `inputFrames` samples yields in all, once flushed.
    public func outputFrames(forInputFrames inputFrames: Int) -> Int {
        (inputFrames * up + down - 1) / down
    }

    /// Resamples the next chunk; samples are nominally in -1...1.
    public mutating func process(_ input: [Float]) -> [Float] {
        history.append(contentsOf: input)
        inputCount += input.count
        return produce(limit: Int.max)
    }

    /// Resamples the next chunk of 16-bit samples; results are rounded and clipped to Int16.
    public mutating func process(_ input: [Int16]) -> [Int16] {
        Self.int16(process(input.map { Float($0) / 32768 }))
    }

    /// Ends the stream: returns the outputs that were waiting for look-ahead, computed against
    /// trailing silence. The resampler then starts a new stream.
    public mutating func flush() -> [Float] {
        let remaining = outputFrames(forInputFrames: inputCount) - outputCount
        history.append(contentsOf: [Float](repeating: 0, count: halfTaps + 1))
        let tail = produce(limit: max(0, remaining))
        reset()
        return tail
    }

    /// `flush` for 16-bit streams.
    public mutating func flushInt16() -> [Int16] {
        Self.int16(flush())
    }

    /// Forgets all history, as if freshly made.
    public mutating func reset() {
        history = [Float](repeating: 0, count: halfTaps - 1)
        historyStart = -(halfTaps - 1)
        inputCount = 0
        outputCount = 0
    }

    private mutating func produce(limit: Int) -> [Float] {
        let taps = 2 * halfTaps
        let available = historyStart + history.count
        var output: [Float] = []
        output.reserveCapacity(max(0, min(limit, (available * up) / down - outputCount + 1)))
        history.withUnsafeBufferPointer { samples in
            coefficients.withUnsafeBufferPointer { table in
                while output.count < limit {
                    let position = outputCount * down
                    let centre = position / up
                    // The newest sample this output needs must have arrived.
                    guard centre + halfTaps < available else { break }
                    let phase = position % up
                    let first = centre - halfTaps + 1 - historyStart
                    let base = phase * taps
                    var accumulator: Float = 0
                    for tap in 0..<taps {
                        accumulator += samples[first + tap] * table[base + tap]
                    }
                    output.append(accumulator)
                    outputCount += 1
                }
            }
        }
        // Keep only what the next output still needs.
        let nextFirst = (outputCount * down) / up - halfTaps + 1
        let drop = min(history.count, max(0, nextFirst - historyStart))
        if drop > 0 {
            history.removeFirst(drop)
            historyStart += drop
        }
        return output
    }

    static func int16(_ samples: [Float]) -> [Int16] {
        samples.map { Int16(max(-32768, min(32767, ($0 * 32768).rounded()))) }
    }

    private static func sinc(_ x: Double) -> Double {
        x == 0 ? 1 : sin(Double.pi * x) / (Double.pi * x)
    }

    /// Kaiser window at `x` in -1...1: I0(β·√(1−x²)) / I0(β).
    private static func kaiser(_ x: Double, beta: Double) -> Double {
        guard abs(x) <= 1 else { return 0 }
        return besselI0(beta * (1 - x * x).squareRoot()) / besselI0(beta)
    }

    /// Modified Bessel function of the first kind, order 0, by its power series.
    private static func besselI0(_ x: Double) -> Double {
        var sum = 1.0
        var term = 1.0
        let quarterSquare = x * x / 4
        var k = 1.0
        while term > sum * 1e-12 {
            term *= quarterSquare / (k * k)
            sum += term
            k += 1
        }
        return sum
    }

    private static func greatestCommonDivisor(_ a: Int, _ b: Int) -> Int {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }
}
