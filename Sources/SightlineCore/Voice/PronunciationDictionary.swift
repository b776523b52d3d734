import Foundation

/// Picks the entries of a CMU-format pronunciation dictionary (`word PH ON ES`, alternates as
/// `word(2) …`) that a vocabulary needs. The decoders then load a few lines instead of the
/// model's 134,000-word dictionary, which saves tens of megabytes of memory in each of them.
public enum PronunciationDictionary {
    public struct Subset: Sendable, Equatable {
        /// The dictionary lines for the words, in file order, each ending in a newline.
        public var text: String
        /// Words without an entry, sorted.
        public var missing: [String]
    }

    public static func subset(of dictionary: Data, for words: Set<String>) -> Subset {
        var lines: [String] = []
        var found: Set<String> = []
        dictionary.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
                // The headword runs to the first space; an alternate's "(n)" is not part of it.
                var wordEnd = start
                while wordEnd < end, bytes[wordEnd] != UInt8(ascii: " "), bytes[wordEnd] != UInt8(ascii: "\t"),
                      bytes[wordEnd] != UInt8(ascii: "(") { wordEnd += 1 }
                if wordEnd > start {
                    let word = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<wordEnd]), as: UTF8.self)
                    if words.contains(word) {
                        found.insert(word)
                        lines.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self))
                    }
                }
                start = end + 1
            }
        }
        return Subset(text: lines.map { $0 + "\n" }.joined(), missing: words.subtracting(found).sorted())
    }
}
