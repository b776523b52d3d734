import CPocketSphinx
import Foundation
import SightlineCore

/// One PocketSphinx decoder (`ps_decoder_t`), owned by this value and freed with `ps_free` when
/// it ends. Not thread-safe: it lives on the recognizer's thread.
struct SphinxDecoder: ~Copyable {
    private let handle: OpaquePointer
    let role: String

    /// Configures a decoder from command-line style arguments through `cmd_ln_parse_r` (the
    /// variadic `cmd_ln_init` is not callable from Swift) and `ps_init`.
    init(role: String, arguments: [String]) throws(VoiceRecognizerError) {
        Self.silenceLibraryLog
        let copies = arguments.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        var argv = copies
        let config = argv.withUnsafeMutableBufferPointer { buffer in
            cmd_ln_parse_r(nil, ps_args(), Int32(buffer.count), buffer.baseAddress, 0)
        }
        guard let config else { throw .decoderFailed(role: role, operation: "cmd_ln_parse_r") }
        // ps_init takes its own reference; ours goes at once.
        defer { cmd_ln_free_r(config) }
        guard let decoder = ps_init(config) else { throw .decoderFailed(role: role, operation: "ps_init") }
        handle = decoder
        self.role = role
    }

    deinit {
        ps_free(handle)
    }

    /// PocketSphinx logs to stderr by default; the recognizer reports its own errors instead.
    private static let silenceLibraryLog: Void = {
        err_set_logfp(nil)
    }()

    /// Installs a JSGF grammar and makes it the active search (`ps_set_jsgf_string`, `ps_set_search`).
    func useGrammar(_ jsgf: String) throws(VoiceRecognizerError) {
        guard ps_set_jsgf_string(handle, "commands", jsgf) >= 0, ps_set_search(handle, "commands") >= 0 else {
            throw .grammarRejected(jsgf)
        }
    }

    func startUtterance() throws(VoiceRecognizerError) {
        guard ps_start_utt(handle) >= 0 else { throw .decoderFailed(role: role, operation: "ps_start_utt") }
    }

    func endUtterance() throws(VoiceRecognizerError) {
        guard ps_end_utt(handle) >= 0 else { throw .decoderFailed(role: role, operation: "ps_end_utt") }
    }

    /// Feeds 16 kHz mono samples (`ps_process_raw`).
    func process(_ samples: UnsafeBufferPointer<Int16>) throws(VoiceRecognizerError) {
        guard let base = samples.baseAddress, !samples.isEmpty else { return }
        guard ps_process_raw(handle, base, samples.count, 0, 0) >= 0 else {
            throw .decoderFailed(role: role, operation: "ps_process_raw")
        }
    }

    /// Whether the decoder's voice-activity detector is inside speech (`ps_get_in_speech`).
    var inSpeech: Bool { ps_get_in_speech(handle) != 0 }

    /// The best hypothesis of the last utterance and its path score (`ps_get_hyp`; the string is
    /// the decoder's and is copied at once).
    func hypothesis() -> (text: String, score: Int) {
        var score: Int32 = 0
        guard let text = ps_get_hyp(handle, &score) else { return ("", Int(score)) }
        return (String(cString: text), Int(score))
    }

    /// One stretch of the best path: a word (or phone, in all-phone mode), silence or filler.
    struct Segment {
        var word: String
        /// First and last 10 ms frame, counted from the start of the decoder's stream.
        var frames: ClosedRange<Int>
        /// Acoustic score (log units, closer to 0 is better).
        var acousticScore: Int
        var isWord: Bool { SphinxDecoder.isWord(word) }
    }

    /// The best path of the last utterance, segment by segment (`ps_seg_iter`).
    func segments() -> [Segment] {
        var segments: [Segment] = []
        var segment = ps_seg_iter(handle)
        while let current = segment {
            var start: Int32 = 0
            var end: Int32 = 0
            var acoustic: Int32 = 0
            var language: Int32 = 0
            var backoff: Int32 = 0
            ps_seg_frames(current, &start, &end)
            _ = ps_seg_prob(current, &acoustic, &language, &backoff)
            if let word = ps_seg_word(current), end >= start {
                segments.append(Segment(word: String(cString: word), frames: Int(start)...Int(end), acousticScore: Int(acoustic)))
            }
            segment = ps_seg_next(current)  // frees the iterator after the last segment
        }
        return segments
    }

    /// The live cepstral-mean normalizer's state (sphinxbase `cmn_t`): the mean it subtracts and
    /// the sums it updates the mean from at the end of every utterance.
    struct Normalization {
        fileprivate var mean: [mfcc_t]
        fileprivate var sum: [mfcc_t]
        fileprivate var frames: Int32
    }

    /// The normalizer's state now, for `restore`; nil when the decoder has no live normalizer.
    func normalization() -> Normalization? {
        guard let cmn = ps_get_feat(handle)?.pointee.cmn_struct, let mean = cmn.pointee.cmn_mean, let sum = cmn.pointee.sum else {
            return nil
        }
        let count = Int(cmn.pointee.veclen)
        return Normalization(mean: Array(UnsafeBufferPointer(start: mean, count: count)),
                             sum: Array(UnsafeBufferPointer(start: sum, count: count)), frames: cmn.pointee.nframe)
    }

    /// Puts back a state `normalization()` returned, between utterances.
    func restore(_ saved: Normalization) {
        guard let cmn = ps_get_feat(handle)?.pointee.cmn_struct, let mean = cmn.pointee.cmn_mean, let sum = cmn.pointee.sum,
              Int(cmn.pointee.veclen) == saved.mean.count else { return }
        for index in saved.mean.indices {
            mean[index] = saved.mean[index]
            sum[index] = saved.sum[index]
        }
        cmn.pointee.nframe = saved.frames
    }

    /// Silences and noises are written `<sil>`, `[NOISE]`, `++GARBAGE++` or `(NULL)`.
    static func isWord(_ word: String) -> Bool {
        guard let first = word.first else { return false }
        return !"<[+(".contains(first) && word != "SIL"
    }
}
