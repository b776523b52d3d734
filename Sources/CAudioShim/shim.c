#include "CAudioShim.h"
#include <stdarg.h>
#include <stdio.h>

static caudio_alsa_error_callback alsa_callback;

static void alsa_error_trampoline(const char *file, int line, const char *function, int err, const char *fmt, ...) {
    caudio_alsa_error_callback callback = __atomic_load_n(&alsa_callback, __ATOMIC_ACQUIRE);
    if (callback == NULL) return;
    char message[512];
    va_list arguments;
    va_start(arguments, fmt);
    vsnprintf(message, sizeof message, fmt, arguments);
    va_end(arguments);
    callback(file, line, function, err, message);
}

void caudio_alsa_set_error_callback(caudio_alsa_error_callback callback) {
    __atomic_store_n(&alsa_callback, callback, __ATOMIC_RELEASE);
    snd_lib_error_set_handler(callback == NULL ? NULL : alsa_error_trampoline);
}

int caudio_opus_set_bitrate(OpusEncoder *encoder, opus_int32 bitrate) { return opus_encoder_ctl(encoder, OPUS_SET_BITRATE(bitrate)); }
int caudio_opus_set_inband_fec(OpusEncoder *encoder, int enabled) { return opus_encoder_ctl(encoder, OPUS_SET_INBAND_FEC(enabled)); }
int caudio_opus_set_packet_loss_perc(OpusEncoder *encoder, int percent) { return opus_encoder_ctl(encoder, OPUS_SET_PACKET_LOSS_PERC(percent)); }
int caudio_opus_set_dtx(OpusEncoder *encoder, int enabled) { return opus_encoder_ctl(encoder, OPUS_SET_DTX(enabled)); }
int caudio_opus_set_signal_voice(OpusEncoder *encoder) { return opus_encoder_ctl(encoder, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE)); }
int caudio_opus_set_complexity(OpusEncoder *encoder, int complexity) { return opus_encoder_ctl(encoder, OPUS_SET_COMPLEXITY(complexity)); }
int caudio_opus_get_in_dtx(OpusEncoder *encoder, int *in_dtx) { return opus_encoder_ctl(encoder, OPUS_GET_IN_DTX(in_dtx)); }
int caudio_opus_get_lookahead(OpusEncoder *encoder, opus_int32 *samples) { return opus_encoder_ctl(encoder, OPUS_GET_LOOKAHEAD(samples)); }
