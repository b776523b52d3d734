#ifndef CAUDIOSHIM_H
#define CAUDIOSHIM_H

#include <alsa/asoundlib.h>
#include <opus/opus.h>

/// ALSA reports errors through a variadic handler, which Swift cannot implement: this shim
/// formats the message and passes it on to a plain callback (NULL restores ALSA's default).
typedef void (*caudio_alsa_error_callback)(const char *file, int line, const char *function, int err, const char *message);
void caudio_alsa_set_error_callback(caudio_alsa_error_callback callback);

/// opus_encoder_ctl and opus_decoder_ctl are variadic; one non-variadic function per request used.
int caudio_opus_set_bitrate(OpusEncoder *encoder, opus_int32 bitrate);
int caudio_opus_set_inband_fec(OpusEncoder *encoder, int enabled);
int caudio_opus_set_packet_loss_perc(OpusEncoder *encoder, int percent);
int caudio_opus_set_dtx(OpusEncoder *encoder, int enabled);
int caudio_opus_set_signal_voice(OpusEncoder *encoder);
int caudio_opus_set_complexity(OpusEncoder *encoder, int complexity);
int caudio_opus_get_in_dtx(OpusEncoder *encoder, int *in_dtx);
int caudio_opus_get_lookahead(OpusEncoder *encoder, opus_int32 *samples);

#endif
