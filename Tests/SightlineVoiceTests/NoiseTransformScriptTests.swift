import Foundation
import SightlineTesting
@testable import SightlineVoice
import Testing

/// The built-in noise adaptation is generated data: this checks that `scripts/make-noise-transform`
/// with its defaults makes it again, so the transform in the source stays explained and
/// reproducible (festival, sphinxtrain and the model, all real; about five minutes).
@Suite("Noise transform script")
struct NoiseTransformScriptTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func numbers(_ text: String) -> [Double] {
        text.split(whereSeparator: \.isWhitespace).compactMap { Double($0) }
    }

    @Test("scripts/make-noise-transform makes the built-in transform")
    func reproducesBuiltIn() async throws {
        let directory = try TemporaryDirectory()
        let output = directory.file("noise.mllr")
        let result = try await CommandLineTool.runOnOwnThread(
            "/bin/bash", [Self.root.appendingPathComponent("scripts/make-noise-transform").path, output],
            environment: ["SIGHTCTL": BuiltProducts.path(of: "sightctl")])
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        let made = Self.numbers(try String(contentsOfFile: output, encoding: .utf8))
        let builtIn = Self.numbers(NoiseAdaptedTransform.text)
        // One class and three streams, each its length (13), a 13×13 matrix, an offset and a variance scale.
        let stream = 1 + 13 * 13 + 13 + 13
        #expect(builtIn.count == 2 + 3 * stream)
        try #require(made.count == builtIn.count, "\(made.count) numbers, the built-in has \(builtIn.count)")
        let largest = zip(made, builtIn).map { abs($0 - $1) }.max() ?? 0
        #expect(largest < 1e-5, "largest difference \(largest)")
    }
}
