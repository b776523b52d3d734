/**
 * The call's voice channel in the browser. The device's microphone arrives as Opus frames (48 kHz
 * mono, 20 ms) that WebCodecs' AudioDecoder decodes and Web Audio plays, scheduled back to back
 * with a small lead; the expert's microphone (getUserMedia) is read with
 * MediaStreamTrackProcessor and encoded by WebCodecs' AudioEncoder into 20 ms Opus frames with
 * in-band FEC, which the session seals and sends to the device.
 */

export const OPUS_SAMPLE_RATE = 48000;
/** Audio scheduled this far ahead of the output clock absorbs network jitter (40 ms). */
const PLAYBACK_LEAD_S = 0.04;
/** More than this queued means we fell behind (a stalled tab): drop and start again. */
const PLAYBACK_MAX_QUEUE_S = 0.25;
/** The expert starts talking (an onset) when a sample passes this after ONSET_QUIET_MS below it. */
const ONSET_LEVEL = 10 ** (-30 / 20);
const ONSET_QUIET_MS = 150;

/** Plays the device's audio. `onError(error)` reports what the expert should see. */
export class DeviceAudioPlayer {
    #decoder = null;
    #context = null;
    #nextTime = 0;
    #unsupported = false;
    #onError;

    stats = { decoded: 0, played: 0, errors: 0, dropped: 0 };

    constructor({ onError = () => {} } = {}) {
        this.#onError = onError;
    }

    /**
     * Creates or resumes the output. Browsers start audio only after a user gesture (a click);
     * until then frames are decoded and counted but not heard.
     */
    async resume() {
        if (typeof AudioContext !== 'function') return;
        this.#context ??= new AudioContext({ sampleRate: OPUS_SAMPLE_RATE, latencyHint: 'interactive' });
        if (this.#context.state === 'suspended') await this.#context.resume().catch(() => {});
    }

    get audible() {
        return this.#context?.state === 'running';
    }

    /** Feeds one opened audio payload (`parseAudioPayload` output). */
    decode({ captureTimeUs, data }) {
        if (this.#unsupported) return;
        if (!this.#decoder) {
            if (typeof AudioDecoder !== 'function') {
                this.#unsupported = true;
                this.#onError(new Error('this browser has no WebCodecs AudioDecoder: the technician cannot be heard'));
                return;
            }
            this.#decoder = new AudioDecoder({
                output: (audio) => this.#play(audio),
                error: (error) => {
                    this.stats.errors += 1;
                    this.#decoder = null; // a closed decoder is replaced on the next frame
                    this.#onError(error);
                },
            });
            this.#decoder.configure({ codec: 'opus', sampleRate: OPUS_SAMPLE_RATE, numberOfChannels: 1 });
            // A context created without a gesture stays suspended but is ready once one comes.
            this.resume();
        }
        try {
            this.#decoder.decode(new EncodedAudioChunk({ type: 'key', timestamp: captureTimeUs, data }));
        } catch (error) {
            this.stats.errors += 1;
            this.#onError(error);
        }
    }

    #play(audio) {
        this.stats.decoded += 1;
        try {
            const context = this.#context;
            if (!context || context.state !== 'running') return;
            const frames = audio.numberOfFrames;
            const buffer = context.createBuffer(1, frames, audio.sampleRate);
            const samples = new Float32Array(frames);
            audio.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
            buffer.copyToChannel(samples, 0);
            const now = context.currentTime;
            if (this.#nextTime < now + PLAYBACK_LEAD_S / 2 || this.#nextTime > now + PLAYBACK_MAX_QUEUE_S) {
                if (this.#nextTime > now + PLAYBACK_MAX_QUEUE_S) this.stats.dropped += 1;
                this.#nextTime = now + PLAYBACK_LEAD_S;
            }
            const source = context.createBufferSource();
            source.buffer = buffer;
            source.connect(context.destination);
            source.start(this.#nextTime);
            this.#nextTime += buffer.duration;
            this.stats.played += 1;
        } finally {
            audio.close();
        }
    }

    /** After a reconnect or a key change: a fresh decoder for the new stream. */
    reset() {
        if (this.#decoder && this.#decoder.state !== 'closed') this.#decoder.close();
        this.#decoder = null;
    }

    close() {
        this.reset();
        this.#context?.close().catch(() => {});
        this.#context = null;
    }
}

/**
 * The expert's microphone as 20 ms Opus frames: `onFrame({data, captureTimeUs})` gets each
 * with the wall-clock time its first sample was captured (µs since the Unix epoch).
 */
export class MicrophoneSender {
    #onFrame;
    #onError;
    #now;
    #stream = null;
    #encoder = null;
    #reader = null;
    #running = false;
    /** Wall-clock ms minus AudioData timestamp ms, from the latest captured buffer. */
    #clockOffsetMs = null;
    #lastLoudAt = -Infinity;

    /**
     * `onsets` counts starts of speech (or of any sound) after quiet; `lastOnsetAt` is the
     * wall-clock ms of the latest one's first loud sample. The page shows the expert that the
     * microphone hears them, and the audio benchmark matches onsets with the device's speaker.
     */
    stats = { captured: 0, encoded: 0, errors: 0, onsets: 0, lastOnsetAt: null, peakDbfs: null };

    constructor({ onFrame, onError = () => {}, now }) {
        this.#onFrame = onFrame;
        this.#onError = onError;
        this.#now = now;
    }

    get running() {
        return this.#running;
    }

    /** Asks for the microphone and starts encoding; throws what the expert should read. */
    async start() {
        if (this.#running) return;
        if (typeof AudioEncoder !== 'function' || typeof MediaStreamTrackProcessor !== 'function') {
            throw new Error('this browser cannot encode audio (WebCodecs AudioEncoder, MediaStreamTrackProcessor): the technician cannot hear you');
        }
        this.#stream = await navigator.mediaDevices.getUserMedia({
            audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
        });
        const [track] = this.#stream.getAudioTracks();
        this.#reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
        this.#running = true;
        this.#pump().catch((error) => {
            this.stats.errors += 1;
            this.#onError(error);
            this.stop();
        });
    }

    async #pump() {
        while (this.#running) {
            const { value: audio, done } = await this.#reader.read();
            if (done) break;
            try {
                this.stats.captured += 1;
                // The buffer's last sample was captured about now; its first, one buffer earlier.
                this.#clockOffsetMs = this.#now() - audio.duration / 1000 - audio.timestamp / 1000;
                this.#detectOnset(audio, audio.timestamp / 1000 + this.#clockOffsetMs);
                this.#encoderFor(audio)?.encode(audio);
            } finally {
                audio.close();
            }
        }
    }

    #detectOnset(audio, startMs) {
        const samples = new Float32Array(audio.numberOfFrames);
        audio.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
        let peak = 0;
        for (let i = 0; i < samples.length; i += 1) {
            const value = Math.abs(samples[i]);
            if (value > peak) peak = value;
            if (value < ONSET_LEVEL) continue;
            const at = startMs + (i * 1000) / audio.sampleRate;
            if (at - this.#lastLoudAt > ONSET_QUIET_MS) {
                this.stats.onsets += 1;
                this.stats.lastOnsetAt = at;
            }
            this.#lastLoudAt = at;
        }
        this.stats.peakDbfs = peak > 0 ? Math.round(200 * Math.log10(peak)) / 10 : -120;
    }

    /** Configured from the first buffer: the encoder takes the microphone's rate and channels. */
    #encoderFor(audio) {
        if (this.#encoder) return this.#encoder;
        this.#encoder = new AudioEncoder({
            output: (chunk) => {
                const data = new Uint8Array(chunk.byteLength);
                chunk.copyTo(data);
                this.stats.encoded += 1;
                const captureTimeUs = Math.round((chunk.timestamp / 1000 + (this.#clockOffsetMs ?? 0)) * 1000);
                this.#onFrame({ data, captureTimeUs });
            },
            error: (error) => {
                this.stats.errors += 1;
                this.#onError(error);
            },
        });
        this.#encoder.configure({
            codec: 'opus',
            sampleRate: audio.sampleRate,
            numberOfChannels: audio.numberOfChannels,
            bitrate: 24000,
            opus: { frameDuration: 20000, useinbandfec: true, packetlossperc: 10, complexity: 5 },
        });
        return this.#encoder;
    }

    stop() {
        this.#running = false;
        this.#reader?.cancel().catch(() => {});
        this.#reader = null;
        for (const track of this.#stream?.getTracks() ?? []) track.stop();
        this.#stream = null;
        if (this.#encoder && this.#encoder.state !== 'closed') this.#encoder.close();
        this.#encoder = null;
    }
}
