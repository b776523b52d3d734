#ifndef SIGHTLINE_COPENH264_H
#define SIGHTLINE_COPENH264_H

#include <stdbool.h>
#include <wels/codec_api.h>

// OpenH264's C API is a table of function pointers behind each handle (`(*encoder)->EncodeFrame(
// encoder, ...)`). These one-line wrappers make each entry an ordinary function, so Swift needs
// no optional function pointers and no force unwraps. The handles stay owned by the Swift side.

// MARK: Encoder (ISVCEncoder)

static inline int copenh264_encoder_default_params(ISVCEncoder *encoder, SEncParamExt *parameters) {
    return (*encoder)->GetDefaultParams(encoder, parameters);
}
static inline int copenh264_encoder_initialize(ISVCEncoder *encoder, const SEncParamExt *parameters) {
    return (*encoder)->InitializeExt(encoder, parameters);
}
static inline int copenh264_encoder_uninitialize(ISVCEncoder *encoder) {
    return (*encoder)->Uninitialize(encoder);
}
/// The NAL buffers in `info` are owned by the encoder and valid until its next call.
static inline int copenh264_encoder_encode(ISVCEncoder *encoder, const SSourcePicture *picture, SFrameBSInfo *info) {
    return (*encoder)->EncodeFrame(encoder, picture, info);
}
static inline int copenh264_encoder_force_idr(ISVCEncoder *encoder) {
    return (*encoder)->ForceIntraFrame(encoder, true);
}
static inline int copenh264_encoder_set_option(ISVCEncoder *encoder, ENCODER_OPTION option, void *value) {
    return (*encoder)->SetOption(encoder, option, value);
}
/// `sLayerInfo[index]`: Swift sees the fixed C array as a 128-element tuple.
static inline const SLayerBSInfo *copenh264_frame_layer(const SFrameBSInfo *info, int index) {
    return &info->sLayerInfo[index];
}
static const int COPENH264_MAX_LAYER_NUM_OF_FRAME = MAX_LAYER_NUM_OF_FRAME;
static const int COPENH264_UNSPECIFIED_BIT_RATE = UNSPECIFIED_BIT_RATE;

// MARK: Decoder (ISVCDecoder), used by the tests to prove the bitstream decodes

static inline long copenh264_decoder_initialize(ISVCDecoder *decoder, const SDecodingParam *parameters) {
    return (*decoder)->Initialize(decoder, parameters);
}
static inline long copenh264_decoder_uninitialize(ISVCDecoder *decoder) {
    return (*decoder)->Uninitialize(decoder);
}
/// On success with `info->iBufferStatus == 1`, `planes` point into decoder-owned memory.
static inline DECODING_STATE copenh264_decoder_decode(ISVCDecoder *decoder, const unsigned char *source, int length,
                                                      unsigned char **planes, SBufferInfo *info) {
    return (*decoder)->DecodeFrameNoDelay(decoder, source, length, planes, info);
}

#endif
