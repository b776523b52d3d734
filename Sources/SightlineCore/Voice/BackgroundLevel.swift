import Foundation

/// The power of the background between utterances, for the noise-aware margin
/// (`VoiceThresholds.minimumMargin(signalToNoise:)`): how loud the hall is when nobody speaks.
///
/// The voice-activity detector opens up to 200 ms after speech starts and closes 300 ms
/// (`voice.end_silence_ms`) after it ends, so its verdict on the newest piece says little about
/// that piece. Pieces therefore wait `lag` pieces and count as background only when the detector
/// has been closed for at least `quietRun` pieces by then — never the start or end of a word.
public struct BackgroundLevel: Sendable {
    /// 25 pieces of 20 ms: older than any speech the detector has not yet noticed.
    public static let lag = 25
    /// The detector closed at least this many pieces (400 ms) ago: the piece leaving the wait
    /// lies after the end silence of the last utterance.
    public static let quietRun = 20
    /// Weight of each new background piece (a time constant of about 0.4 s in 20 ms pieces):
    /// follows a machine starting up within a second, ignores a single clack.
    static let smoothing = 0.05

    /// Mean power of the background (squared sample units); nil until a piece has counted.
    public private(set) var power: Double?
    private var waiting: [Double] = []
    private var quiet = 0

    public init() {}

    /// Adds the mean power of the next piece and whether the detector is in speech after it.
    public mutating func observe(piecePower: Double, inSpeech: Bool) {
        quiet = inSpeech ? 0 : quiet + 1
        waiting.append(piecePower)
        guard waiting.count > Self.lag else { return }
        let oldest = waiting.removeFirst()
        guard quiet >= Self.quietRun else { return }
        power = power.map { $0 + Self.smoothing * (oldest - $0) } ?? oldest
    }

    /// The background in dB below a full-scale square wave (dBFS); nil while unknown.
    public var decibelsFullScale: Double? {
        power.flatMap { SignalToNoise.decibels(power: $0, over: 32768.0 * 32768.0) }
    }

    /// A microphone's own noise floor, which PocketSphinx's model was trained with: suppression
    /// stops here. Pushing a quiet room further down leaves near-digital silence, on which the
    /// decoders do worse (docs/VOICE.md), so quiet audio passes untouched.
    public static let residualFloor = -70.0

    /// How many dB a suppressor may take off this background without going below
    /// `residualFloor`, at most `maximum`; 0 while the level is unknown.
    public func suppression(maximum: Int) -> Int {
        guard let level = decibelsFullScale else { return 0 }
        return min(maximum, max(0, Int((level - Self.residualFloor).rounded(.down))))
    }

    /// Mean of the squared samples.
    public static func meanPower(_ samples: [Int16]) -> Double {
        guard !samples.isEmpty else { return 0 }
        return samples.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(samples.count)
    }
}

/// The power of 16 kHz audio above 60 Hz, for the SNR estimate and the background's level.
/// Below that lies nothing of speech, only a microphone's DC offset and a hall's rumble; counted
/// as background they made speech look drowned: speech 10 dB above a rumbling noise was
/// estimated at 2.7 dB, because most of that noise's power lay below the 130 Hz where the
/// acoustic model's filters start (docs/VOICE.md, "A transform for the site's noise").
///
/// A second-order Butterworth high-pass (the audio EQ cookbook's biquad), written here because
/// it is a few lines and the libraries at hand offer none on its own.
public struct SubsonicFilter: Sendable {
    private let b0: Double, b1: Double, b2: Double, a1: Double, a2: Double
    private var x1 = 0.0, x2 = 0.0, y1 = 0.0, y2 = 0.0

    public init(cutoffHertz: Double = 60, sampleRate: Double = 16_000) {
        let omega = 2 * Double.pi * cutoffHertz / sampleRate
        let alpha = sin(omega) / 2.squareRoot()  // sin(ω) / (2Q) with Q = 1/√2
        let a0 = 1 + alpha
        b0 = (1 + cos(omega)) / 2 / a0
        b1 = -(1 + cos(omega)) / a0
        b2 = b0
        a1 = -2 * cos(omega) / a0
        a2 = (1 - alpha) / a0
    }

    /// Mean of the squared filtered samples of the next piece; the filter's state carries over.
    public mutating func meanPower(_ samples: [Int16]) -> Double {
        guard !samples.isEmpty else { return 0 }
        var sum = 0.0
        for sample in samples {
            let x = Double(sample)
            let y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
            (x2, x1, y2, y1) = (x1, x, y1, y)
            sum += y * y
        }
        return sum / Double(samples.count)
    }
}
