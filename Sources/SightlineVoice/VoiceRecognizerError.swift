import Foundation

/// Why the recognizer could not start or stopped; each case says what the operator can do.
public enum VoiceRecognizerError: Error, Equatable, Sendable, CustomStringConvertible {
    case modelMissing(path: String)
    case decoderFailed(role: String, operation: String)
    case wordsNotInDictionary([String], dictionary: String)
    case grammarRejected(String)
    case temporaryFileNotWritten(path: String, errno: Int32)

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
        case .grammarRejected(let grammar):
            "PocketSphinx rejected the command grammar built from voice.phrases:\n\(grammar)"
        }
    }
}
