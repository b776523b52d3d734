/// Noise transforms for tests, in the text format `voice.noise_transform` files have.
public enum NoiseTransformText {
    /// One regression class and a stream of each of `lengths`: `scale` on the rotation's
    /// diagonal, `bias` everywhere in the bias, variances unscaled. Scale 1 and bias 0 are the
    /// identity, which leaves the acoustic model as it is.
    public static func uniform(_ lengths: [Int], scale: String = "1", bias: String = "0") -> String {
        var lines = ["1", String(lengths.count)]
        for length in lengths {
            lines.append(String(length))
            for row in 0..<length { lines.append((0..<length).map { $0 == row ? scale : "0" }.joined(separator: " ")) }
            lines.append(Array(repeating: bias, count: length).joined(separator: " "))
            lines.append(Array(repeating: "1", count: length).joined(separator: " "))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
