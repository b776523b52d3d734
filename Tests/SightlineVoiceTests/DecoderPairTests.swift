@testable import SightlineVoice
import Testing

/// The arithmetic of the last-word test, on segments as `ps_seg_iter` reports them.
@Suite("Decoder pair: last-word margin and spans")
struct DecoderPairTests {
    typealias Segment = SphinxDecoder.Segment

    @Test("the phones under a word count in proportion to their overlap, per frame of the word")
    func lastWordMargin() {
        let word = Segment(word: "recording", frames: 10...19, acousticScore: -500)
        let phones = [
            Segment(word: "SIL", frames: 0...4, acousticScore: -900),  // before the word: not counted
            Segment(word: "R", frames: 5...14, acousticScore: -200),   // half inside: −100
            Segment(word: "IH", frames: 15...24, acousticScore: -100), // half inside: −50
            Segment(word: "NG", frames: 25...30, acousticScore: -900), // after the word: not counted
        ]
        #expect(DecoderPair.margin(of: word, against: phones) == (-500.0 + 150) / 10)
        // A phone decoder that fitted the same frames exactly as well gives 0.
        #expect(DecoderPair.margin(of: word, against: [Segment(word: "ER", frames: 10...19, acousticScore: -500)]) == 0)
    }

    @Test("a span runs from the first segment's first frame to the last one's last")
    func span() {
        #expect(DecoderPair.span([]) == nil)
        let words = [Segment(word: "take", frames: 105...122, acousticScore: -714),
                     Segment(word: "picture", frames: 130...184, acousticScore: -2904)]
        #expect(DecoderPair.span(words) == 105...184)
        #expect(SphinxDecoder.isWord("take") && !SphinxDecoder.isWord("<sil>") && !SphinxDecoder.isWord("[NOISE]")
            && !SphinxDecoder.isWord("SIL"))
    }
}
