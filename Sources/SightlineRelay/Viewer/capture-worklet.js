/**
 * The expert's microphone on the audio rendering thread (an AudioWorklet module, loaded by
 * audio.js from the relay like every other viewer file, so `script-src 'self'` covers it).
 * Browsers without MediaStreamTrackProcessor in the window (Firefox) reach the microphone's
 * samples only here. The processor gathers its mono input into chunks of `chunkFrames`
 * (20 ms: one Opus frame) and posts each, with the context frame of its first sample, as soon
 * as it is full: no buffering beyond the one chunk the encoder needs anyway.
 *
 * Message to the page: `{ frame, samples }` (`samples` a Float32Array whose buffer is
 * transferred). Message from the page: `'stop'` ends processing.
 */
class MicrophoneCaptureProcessor extends AudioWorkletProcessor {
    #chunkFrames;
    #chunk;
    #filled = 0;
    #chunkStart = 0;
    #running = true;

    constructor({ processorOptions }) {
        super();
        this.#chunkFrames = processorOptions.chunkFrames;
        this.#chunk = new Float32Array(this.#chunkFrames);
        this.port.onmessage = ({ data }) => {
            if (data === 'stop') this.#running = false;
        };
    }

    process(inputs) {
        if (!this.#running) return false;
        // An input with no channel (the source not started yet, or gone) is silence: the
        // chunks stay contiguous in time, so their frame numbers stay true.
        const channel = inputs[0]?.[0];
        const length = channel?.length ?? 128;
        let offset = 0;
        while (offset < length) {
            if (this.#filled === 0) this.#chunkStart = currentFrame + offset;
            const count = Math.min(length - offset, this.#chunkFrames - this.#filled);
            if (channel) this.#chunk.set(channel.subarray(offset, offset + count), this.#filled);
            else this.#chunk.fill(0, this.#filled, this.#filled + count);
            this.#filled += count;
            offset += count;
            if (this.#filled === this.#chunkFrames) {
                this.port.postMessage({ frame: this.#chunkStart, samples: this.#chunk }, [this.#chunk.buffer]);
                this.#chunk = new Float32Array(this.#chunkFrames);
                this.#filled = 0;
            }
        }
        return true;
    }
}

registerProcessor('sightline-microphone-capture', MicrophoneCaptureProcessor);
