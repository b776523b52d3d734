/**
 * Turns opened media payloads into drawable frames with WebCodecs: H.264 through VideoDecoder
 * (Annex B, no description, so SPS/PPS come in-band with every keyframe), JPEG through
 * ImageDecoder (createImageBitmap where ImageDecoder is missing). Video starts only at a
 * keyframe and, after any decode error, waits for the next one and asks the device for it.
 */

import { Codec } from './protocol.js';

/** Constrained baseline, level 3.1: what the device's encoders produce (PROTOCOL.md). */
export const H264_CODEC = 'avc1.42E01F';
/** Frames queued inside the decoder beyond which we skip to a keyframe instead of lagging. */
const MAX_DECODE_QUEUE = 8;

export const h264Config = Object.freeze({ codec: H264_CODEC, optimizeForLatency: true });

/** Width and height of what a decoder produced (VideoFrame or ImageBitmap). */
export function frameSize(frame) {
    return 'displayWidth' in frame ? { width: frame.displayWidth, height: frame.displayHeight } : { width: frame.width, height: frame.height };
}

/**
 * A JPEG as a drawable image: ImageDecoder where available (Chromium; gives a VideoFrame),
 * else createImageBitmap. The caller closes the result.
 */
export async function decodeJpeg(data) {
    if (typeof ImageDecoder === 'function') {
        const decoder = new ImageDecoder({ type: 'image/jpeg', data });
        try {
            const { image } = await decoder.decode();
            return image;
        } finally {
            decoder.close();
        }
    }
    return createImageBitmap(new Blob([data], { type: 'image/jpeg' }));
}

/**
 * One video stream's decoder. `onFrame(frame, {captureTimeUs, codec})` receives each decoded
 * frame and must close it; `onKeyframeNeeded(reason)` is called when decoding can only resume
 * at a keyframe; `onError(error)` reports what the expert should see (e.g. no H.264 support).
 */
export class VideoStreamDecoder {
    #h264 = null;
    #waitingForKeyframe = true;
    #unsupported = false;
    #jpegBusy = false;
    #jpegPending = null;
    #callbacks;

    stats = { decoded: 0, errors: 0, skipped: 0 };

    constructor({ onFrame, onKeyframeNeeded = () => {}, onError = () => {} }) {
        this.#callbacks = { onFrame, onKeyframeNeeded, onError };
    }

    /** True until a keyframe has started (or restarted) the H.264 decoder. */
    get waitingForKeyframe() {
        return this.#waitingForKeyframe;
    }

    /** Feeds one opened payload (`parsePayload` output) with the envelope's keyframe flag. */
    decode(payload, keyframe) {
        if (payload.codec === Codec.jpeg) {
            this.#decodeJpeg(payload);
        } else {
            this.#decodeH264(payload, keyframe);
        }
    }

    /** After a reconnect or a key change: drop decoder state and start again at a keyframe. */
    reset() {
        this.#closeH264();
        this.#waitingForKeyframe = true;
        this.#jpegPending = null;
    }

    close() {
        this.reset();
    }

    #decodeH264(payload, keyframe) {
        if (this.#unsupported) return;
        if (!keyframe && this.#waitingForKeyframe) {
            this.stats.skipped += 1;
            return;
        }
        if (!keyframe && this.#h264 && this.#h264.decodeQueueSize > MAX_DECODE_QUEUE) {
            // Decoding fell behind; showing ever older frames is worse than a short skip.
            this.stats.skipped += 1;
            this.#waitingForKeyframe = true;
            this.#callbacks.onKeyframeNeeded('loss');
            return;
        }
        if (keyframe && !this.#ensureH264()) return;
        try {
            this.#h264.decode(new EncodedVideoChunk({ type: keyframe ? 'key' : 'delta', timestamp: payload.captureTimeUs, data: payload.data }));
            this.#waitingForKeyframe = false;
        } catch (error) {
            this.#decodeFailed(error);
        }
    }

    /** A configured H.264 decoder (a new one after an error closed the last). */
    #ensureH264() {
        if (this.#h264 && this.#h264.state === 'configured') return true;
        if (typeof VideoDecoder !== 'function') {
            this.#markUnsupported(new Error('this browser has no WebCodecs VideoDecoder; H.264 video cannot be shown'));
            return false;
        }
        const decoder = new VideoDecoder({
            output: (frame) => {
                this.stats.decoded += 1;
                this.#callbacks.onFrame(frame, { captureTimeUs: frame.timestamp, codec: Codec.h264 });
            },
            error: (error) => {
                // This decoder is closed now; only the current one may change our state.
                if (this.#h264 === decoder) this.#h264 = null;
                if (error?.name === 'NotSupportedError') this.#markUnsupported(error);
                else this.#decodeFailed(error);
            },
        });
        try {
            decoder.configure(h264Config);
        } catch (error) {
            this.#markUnsupported(error);
            return false;
        }
        this.#h264 = decoder;
        return true;
    }

    #decodeFailed(error) {
        this.stats.errors += 1;
        this.#waitingForKeyframe = true;
        this.#callbacks.onError(error);
        this.#callbacks.onKeyframeNeeded('decode-error');
    }

    #markUnsupported(error) {
        this.#unsupported = true;
        this.#callbacks.onError(new Error(`H.264 (${H264_CODEC}) cannot be decoded here: ${error?.message ?? error}`));
    }

    #closeH264() {
        if (this.#h264 && this.#h264.state !== 'closed') this.#h264.close();
        this.#h264 = null;
    }

    /** Newest JPEG wins: at most one decoding and one waiting, older waiting ones are skipped. */
    #decodeJpeg(payload) {
        if (this.#jpegBusy) {
            if (this.#jpegPending) this.stats.skipped += 1;
            this.#jpegPending = payload;
            return;
        }
        this.#jpegBusy = true;
        decodeJpeg(payload.data)
            .then((image) => {
                this.stats.decoded += 1;
                this.#callbacks.onFrame(image, { captureTimeUs: payload.captureTimeUs, codec: Codec.jpeg });
            })
            .catch((error) => {
                this.stats.errors += 1;
                this.#callbacks.onError(error);
            })
            .finally(() => {
                this.#jpegBusy = false;
                const next = this.#jpegPending;
                this.#jpegPending = null;
                if (next) this.#decodeJpeg(next);
            });
    }
}
