import Foundation

/// An MLLR transform of the acoustic model for the noise-adapted decoders, in the text format
/// sphinxtrain's `mllr_solve` writes and PocketSphinx's `-mllr` reads: the number of regression
/// classes, the number of feature streams, then per stream its length, the rotation matrix, the
/// bias and the variance scale. Checked here because PocketSphinx applies a transform without
/// comparing its shape to the model's, reading past its arrays when they differ.
public struct NoiseTransform: Sendable, Equatable {
    public let text: String
    /// Values per feature stream (13, 13, 13 for Debian's en-us model).
    public let streamLengths: [Int]

    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public init(text: String) throws(Invalid) {
        var numbers = text.split(whereSeparator: \.isWhitespace).makeIterator()
        var read = 0
        func next(_ what: String) throws(Invalid) -> Double {
            guard let word = numbers.next() else { throw Invalid(description: "it ends before \(what)") }
            read += 1
            guard let value = Double(word), value.isFinite else {
                throw Invalid(description: "value \(read) (\(what)) is \"\(word.prefix(20))\", not a finite number")
            }
            return value
        }
        func count(_ what: String, in range: ClosedRange<Int>) throws(Invalid) -> Int {
            let value = try next(what)
            guard let whole = Int(exactly: value), range.contains(whole) else {
                let shown = Int(exactly: value).map(String.init) ?? String(value)
                throw Invalid(description: "\(what) is \(shown), expected a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return whole
        }
        // More classes need a map from codebooks to classes, which the recognizer does not load.
        let classes = try count("the number of regression classes", in: 1...1)
        let streams = try count("the number of feature streams", in: 1...8)
        var lengths: [Int] = []
        for stream in 1...streams {
            let length = try count("the length of stream \(stream)", in: 1...256)
            for _ in 0..<classes {
                for _ in 0..<(length * length) { _ = try next("stream \(stream)'s rotation") }
                for _ in 0..<length { _ = try next("stream \(stream)'s bias") }
                for _ in 0..<length { _ = try next("stream \(stream)'s variance scale") }
            }
            lengths.append(length)
        }
        if let extra = numbers.next() {
            throw Invalid(description: "\"\(extra.prefix(20))\" follows the last stream; the file holds more than one transform")
        }
        self.text = text
        streamLengths = lengths
    }

    /// The stream lengths a transform must have for an acoustic model, from the model's
    /// `feat.params`: its subvectors (`-svspec 0-12/13-25/26-38`: 13, 13, 13) or, without them,
    /// the one stream of cepstra with their first and second differences (`-feat 1s_c_d_dd`,
    /// `-ceplen`, 13 by default). Nil for any other feature type.
    public static func streamLengths(featureParameters: String) -> [Int]? {
        var options: [String: String] = [:]
        let words = featureParameters.split(whereSeparator: \.isWhitespace).map(String.init)
        for (index, word) in words.enumerated() where word.hasPrefix("-") && index + 1 < words.count {
            options[word] = words[index + 1]
        }
        if let subvectors = options["-svspec"] {
            var lengths: [Int] = []
            for group in subvectors.split(separator: "/") {
                var length = 0
                for part in group.split(separator: ",") {
                    let bounds = part.split(separator: "-").compactMap { Int($0) }
                    guard (1...2).contains(bounds.count), let first = bounds.first, let last = bounds.last, first <= last else { return nil }
                    length += last - first + 1
                }
                lengths.append(length)
            }
            return lengths.isEmpty ? nil : lengths
        }
        guard options["-feat"] == "1s_c_d_dd" else { return nil }
        return [3 * (options["-ceplen"].flatMap { Int($0) } ?? 13)]
    }
}
