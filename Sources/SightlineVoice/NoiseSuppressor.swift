import CSpeexDSP

/// speexdsp's preprocessor (`speex_preprocess_run`) in denoise mode, in front of both decoders.
///
/// PocketSphinx's own noise removal (`-remove_noise`) tracks a slowly varying floor per filter
/// band but still leaves broadband noise that the all-phone decoder fits as phones far better than
/// the command grammar can, so noisy commands were rejected by margin (docs/VOICE.md). Speex's
/// spectral suppressor removes most of that floor before either decoder hears it. Automatic gain
/// control stays off: it would lift room tone between phrases to speech level and keep the
/// voice-activity detector open.
///
/// Owns its state and frees it when it ends; not thread-safe (it lives on the recognizer's thread).
struct NoiseSuppressor: ~Copyable {
    /// The preprocessor works on fixed frames: the recognizer's 20 ms pieces at 16 kHz.
    static let frameSamples = 320
    private let state: OpaquePointer

    /// - Parameter suppressionDecibels: the most the suppressor attenuates noise at first (speex's
    ///   default is 15 dB); `setSuppression` changes it as the background's level becomes known.
    init(sampleRate: Int, suppressionDecibels: Int) throws(VoiceRecognizerError) {
        // speex_preprocess_state_init only allocates; it returns nil on allocation failure alone.
        guard let state = speex_preprocess_state_init(Int32(Self.frameSamples), Int32(sampleRate)) else {
            throw .decoderFailed(role: "noise suppressor", operation: "speex_preprocess_state_init")
        }
        self.state = state
        var on: Int32 = 1
        var off: Int32 = 0
        var suppress = Int32(-abs(suppressionDecibels))
        speex_preprocess_ctl(state, SPEEX_PREPROCESS_SET_DENOISE, &on)
        speex_preprocess_ctl(state, SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, &suppress)
        speex_preprocess_ctl(state, SPEEX_PREPROCESS_SET_AGC, &off)
        speex_preprocess_ctl(state, SPEEX_PREPROCESS_SET_DEREVERB, &off)
    }

    deinit {
        speex_preprocess_state_destroy(state)
    }

    /// Changes the most the suppressor attenuates (`SPEEX_PREPROCESS_SET_NOISE_SUPPRESS`); 0 passes
    /// the noise through.
    func setSuppression(decibels: Int) {
        var suppress = Int32(-abs(decibels))
        speex_preprocess_ctl(state, SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, &suppress)
    }

    /// Suppresses noise in one frame in place. A shorter frame (the end of a stream) is padded
    /// with zeros for the library and cut back after.
    func process(_ frame: inout [Int16]) {
        let count = frame.count
        if count < Self.frameSamples { frame += Array(repeating: 0, count: Self.frameSamples - count) }
        frame.withUnsafeMutableBufferPointer { buffer in
            _ = speex_preprocess_run(state, buffer.baseAddress)
        }
        if count < Self.frameSamples { frame.removeLast(Self.frameSamples - count) }
    }
}
