import Foundation
import SightlineCore
import Testing

/// Checks the rules docs/VOICE.md gives for the built-in phrases against the model's own
/// pronunciation dictionary.
@Suite("Built-in phrase choice")
struct PhraseChoiceTests {
    static let vowels: Set<String> = ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"]

    func pronunciations(of words: Set<String>) throws -> [String: [String]] {
        let path = DaemonConfiguration.defaults.voice.modelDirectory + "/cmudict-en-us.dict"
        var found: [String: [String]] = [:]
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard let word = fields.first, words.contains(word), found[word] == nil else { continue }
            found[word] = Array(fields.dropFirst())
        }
        return found
    }

    func editDistance(_ a: [String], _ b: [String]) -> Int {
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    @Test("every built-in phrase has three or more syllables and differs from every other by three or more phones")
    func builtInPhrasesAreDistinct() throws {
        let vocabulary = VoiceVocabulary.builtIn
        let dictionary = try pronunciations(of: Set(vocabulary.words))
        let phones = try vocabulary.phrases.map { phrase in
            try phrase.words.flatMap { word in try #require(dictionary[word], "\(word) is not in the dictionary") }
        }
        for (phrase, sounds) in zip(vocabulary.phrases, phones) {
            #expect(sounds.filter { Self.vowels.contains($0) }.count >= 3, "\(phrase.phrase): \(sounds)")
        }
        var closest = Int.max
        for i in phones.indices {
            for j in phones.indices where j > i {
                let distance = editDistance(phones[i], phones[j])
                closest = min(closest, distance)
                #expect(distance >= 3, "\(vocabulary.phrases[i].phrase) / \(vocabulary.phrases[j].phrase)")
            }
        }
        print("closest built-in phrases: \(closest) phones apart")
    }
}
