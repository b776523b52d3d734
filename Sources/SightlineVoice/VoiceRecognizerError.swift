import Foundation

/// Why the recognizer could not start or stopped; each case says what the operator can do.
public enum VoiceRecognizerError: Error, Equatable, Sendable, CustomStringConvertible {
    case modelMissing(path: String)
    case decoderFailed(role: String, operation: String)
    case wordsNotInDictionary([String], dictionary: String)
    case grammarRejected(String)
    case temporaryFileNotWritten(path: String, errno: Int32)
    /// `source`: the file of `voice.noise_transform`, or nil for the built-in transform.
    case noiseTransformUnusable(source: String?, reason: String)

    public var description: String {
        switch self {
        case .modelMissing(let path):
            "the speech model file \(path) is missing; install Debian's pocketsphinx-en-us or point voice.model_directory at a model"
        case .decoderFailed(let role, let operation):
            "the \(role) decoder failed in \(operation); check the model files (voice.model_directory) and run sightctl voice test on a recording"
        case .wordsNotInDictionary(let words, let dictionary):
            "the words \(words.joined(separator: ", ")) are not in the pronunciation dictionary \(dictionary); choose other words for voice.phrases"
        case .temporaryFileNotWritten(let path, let code):
            "cannot write the decoders' phrase dictionary or noise transform \(path): \(String(cString: strerror(code))); check that the temporary directory (TMPDIR) is writable"
        case .noiseTransformUnusable(let source, let reason):
            if let source {
                "the noise transform \(source) (voice.noise_transform) cannot be used: \(reason); make one for this model with scripts/make-noise-transform (docs/VOICE.md), or set voice.noise_transform = \"\" for the built-in one"
            } else {
                "the built-in noise transform cannot be used: \(reason); point voice.noise_transform at one made for this model with scripts/make-noise-transform (docs/VOICE.md), or set voice.noise_adapted_below_db = 0 to do without the noise-adapted decoders"
            }
        case .grammarRejected(let grammar):
            "PocketSphinx rejected the command grammar built from voice.phrases:\n\(grammar)"
        }
    }
}
