/**
 * The call's voice channel in the browser. The device's microphone arrives as Opus frames (48 kHz
 * mono, 20 ms) that WebCodecs' AudioDecoder decodes and Web Audio plays, scheduled back to back
 * with a small lead; the expert's microphone (getUserMedia) is read through an AudioWorklet
 * (capture-worklet.js) or MediaStreamTrackProcessor and encoded by WebCodecs' AudioEncoder into
 * 20 ms Opus frames with in-band FEC, which the session seals and sends to the device.
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

/** One Opus frame, and the chunk the microphone is cut into before encoding. */
const OPUS_FRAME_MS = 20;
/** How long the page waits for the browser's audio engine to run before telling the expert why not. */
const AUDIO_START_TIMEOUT_MS = 5000;
/** The AudioWorklet module that hands the microphone's samples to the page (capture-worklet.js). */
const CAPTURE_WORKLET_URL = new URL('./capture-worklet.js', import.meta.url);

/**
 * Ways to read the microphone's samples, in the order `auto` tries them. Chromium's
 * MediaStreamTrackProcessor hands over each 10 ms buffer as it is captured; the AudioWorklet
 * (Web Audio, also in Firefox, which has no MediaStreamTrackProcessor in the window) waits for
 * the audio engine's render callback, which in headless Chromium came in bursts: mouth-to-ear
 * 132–164 ms against 87 ms (docs/PERFORMANCE.md, "audio").
 */
export const CAPTURE_METHODS = Object.freeze({
    'track-processor': () => typeof MediaStreamTrackProcessor === 'function',
    worklet: () => typeof AudioWorkletNode === 'function' && typeof AudioData === 'function',
});

/**
 * Wall-clock time of the microphone's samples. Browsers stamp captured audio on a media clock
 * of their own (AudioData timestamps, an AudioContext's frame count); the protocol wants the
 * wall-clock time of each frame's first sample. A buffer reaches the page after its last sample
 * was captured, never before, so the smallest `arrival − end of buffer` seen is the closest to
 * the truth: the offset follows that lower envelope, dropping at once and rising by at most
 * 1 ms per second of audio (far more than two clocks drift apart), so a busy page that gets
 * buffers late does not move the stamps. A media clock that starts over starts it over.
 */
export class CaptureClock {
    static RISE_PER_MS = 0.001;
    #offsetMs = null;
    #lastEndMs = null;

    /** A buffer whose media time ends at `endMs` arrived at wall-clock `arrivalMs`; returns the offset. */
    observe(arrivalMs, endMs) {
        const measured = arrivalMs - endMs;
        if (this.#offsetMs === null || endMs < this.#lastEndMs) {
            this.#offsetMs = measured;
        } else {
            this.#offsetMs = Math.min(measured, this.#offsetMs + (endMs - this.#lastEndMs) * CaptureClock.RISE_PER_MS);
        }
        this.#lastEndMs = endMs;
        return this.#offsetMs;
    }

    /** The wall-clock ms of media time `mediaMs`. */
    wallMs(mediaMs) {
        return mediaMs + (this.#offsetMs ?? 0);
    }
}

/**
 * Connects `source` to a new capture worklet node in `context`: `onAudio(audioData)` gets each
 * 20 ms mono chunk as f32-planar `AudioData`, its timestamp the context time of its first
 * sample (µs). Used on a live context for the microphone, and on an offline one by the tests.
 */
export async function connectCaptureWorklet(context, source, onAudio) {
    await context.audioWorklet.addModule(CAPTURE_WORKLET_URL);
    const rate = context.sampleRate;
    const node = new AudioWorkletNode(context, 'sightline-microphone-capture', {
        numberOfInputs: 1,
        numberOfOutputs: 0,
        // A stereo microphone is mixed down to mono by Web Audio itself.
        channelCount: 1,
        channelCountMode: 'explicit',
        channelInterpretation: 'speakers',
        processorOptions: { chunkFrames: Math.round((rate * OPUS_FRAME_MS) / 1000) },
    });
    node.port.onmessage = ({ data: { frame, samples } }) => {
        onAudio(new AudioData({
            format: 'f32-planar', sampleRate: rate, numberOfChannels: 1, numberOfFrames: samples.length,
            timestamp: Math.round((frame * 1e6) / rate), data: samples,
        }));
    };
    source.connect(node);
    return node;
}

/**
 * The microphone through Web Audio: MediaStreamAudioSourceNode → AudioWorkletNode, whose
 * processor posts 20 ms mono Float32 chunks that become `AudioData` stamped with the context's
 * frame count. Works in Chromium and Firefox alike.
 */
class WorkletCapture {
    #context;
    #source = null;
    #node = null;

    /**
     * Created before the page asks for the microphone, while the click that asked is recent:
     * browsers start audio only for a page the expert has used.
     */
    constructor() {
        this.#context = new AudioContext({ sampleRate: OPUS_SAMPLE_RATE, latencyHint: 'interactive' });
    }

    async start(stream, onAudio) {
        try {
            this.#source = this.#context.createMediaStreamSource(stream);
        } catch (error) {
            // Older Firefox releases connected a microphone only to a context at their audio
            // graph's own rate (153 ESR resamples); the Opus encoder takes 44.1 kHz too.
            if (error?.name !== 'NotSupportedError') throw error;
            this.#context.close().catch(() => {});
            this.#context = new AudioContext({ latencyHint: 'interactive' });
            this.#source = this.#context.createMediaStreamSource(stream);
        }
        const context = this.#context;
        this.#node = await connectCaptureWorklet(context, this.#source, (audio) => {
            if (context === this.#context) onAudio(audio);
            else audio.close();
        });
        if (context !== this.#context) throw new Error('the microphone was switched off while it started');
        if (context.state !== 'running') {
            let timer;
            const timeout = new Promise((resolve) => { timer = setTimeout(resolve, AUDIO_START_TIMEOUT_MS); });
            await Promise.race([context.resume(), timeout]);
            clearTimeout(timer);
        }
        if (context.state !== 'running') {
            throw new Error('the browser did not start its audio engine (no sound device, or sound blocked for this page; click Talk again): the technician cannot hear you');
        }
    }

    stop() {
        this.#node?.port.postMessage('stop');
        this.#source?.disconnect();
        this.#context?.close().catch(() => {});
        this.#context = null;
        this.#node = null;
        this.#source = null;
    }
}

/** The microphone's track read as `AudioData` by MediaStreamTrackProcessor (Chromium). */
class TrackProcessorCapture {
    #reader = null;
    #running = false;
    #onError;

    constructor({ onError }) {
        this.#onError = onError;
    }

    async start(stream, onAudio) {
        const [track] = stream.getAudioTracks();
        this.#reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
        this.#running = true;
        this.#pump(this.#reader, onAudio).catch((error) => this.#onError(error));
    }

    async #pump(reader, onAudio) {
        while (this.#running) {
            const { value: audio, done } = await reader.read();
            if (done) break;
            onAudio(audio);
        }
    }

    stop() {
        this.#running = false;
        this.#reader?.cancel().catch(() => {});
        this.#reader = null;
    }
}

/**
 * The expert's microphone as 20 ms Opus frames: `onFrame({data, captureTimeUs})` gets each
 * with the wall-clock time its first sample was captured (µs since the Unix epoch). The samples
 * come from an AudioWorklet or MediaStreamTrackProcessor (`CAPTURE_METHODS`); either way they
 * reach WebCodecs' AudioEncoder as `AudioData`.
 */
export class MicrophoneSender {
    #onFrame;
    #onError;
    #now;
    #stream = null;
    #capture = null;
    #encoder = null;
    #running = false;
    #clock = new CaptureClock();
    #lastLoudAt = -Infinity;

    /**
     * `onsets` counts starts of speech (or of any sound) after quiet; `lastOnsetAt` is the
     * wall-clock ms of the latest one's first loud sample. The page shows the expert that the
     * microphone hears them, and the audio benchmark matches onsets with the device's speaker.
     * `capture` names the method in use.
     */
    stats = { captured: 0, encoded: 0, errors: 0, onsets: 0, lastOnsetAt: null, peakDbfs: null, capture: null };

    constructor({ onFrame, onError = () => {}, now }) {
        this.#onFrame = onFrame;
        this.#onError = onError;
        this.#now = now;
    }

    get running() {
        return this.#running;
    }

    /**
     * Asks for the microphone and starts encoding; throws what the expert should read.
     * `capture`: `auto` (the first of `CAPTURE_METHODS` this browser has) or one of them.
     */
    async start({ capture = 'auto' } = {}) {
        if (this.#running) return;
        if (typeof AudioEncoder !== 'function') {
            throw new Error('this browser has no WebCodecs AudioEncoder: the technician cannot hear you');
        }
        const method = capture === 'auto' ? Object.keys(CAPTURE_METHODS).find((name) => CAPTURE_METHODS[name]()) : capture;
        if (!method || !CAPTURE_METHODS[method]?.()) {
            throw new Error(`this browser cannot read the microphone (${capture === 'auto' ? 'no AudioWorklet, no MediaStreamTrackProcessor' : capture}): the technician cannot hear you`);
        }
        const fail = (error) => {
            this.stats.errors += 1;
            this.#onError(error);
            this.stop();
        };
        const source = method === 'worklet' ? new WorkletCapture() : new TrackProcessorCapture({ onError: fail });
        this.#capture = source;
        this.#running = true;
        this.stats.capture = method;
        try {
            const stream = await navigator.mediaDevices.getUserMedia({
                audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
            });
            if (this.#capture !== source) {
                for (const track of stream.getTracks()) track.stop();
                throw new Error('the microphone was switched off while it started');
            }
            this.#stream = stream;
            await source.start(stream, (audio) => this.#captured(audio, source));
        } catch (error) {
            if (this.#capture === source) this.stop();
            throw error;
        }
    }

    #captured(audio, source) {
        try {
            if (source !== this.#capture) return;
            this.stats.captured += 1;
            const startMs = audio.timestamp / 1000;
            this.#clock.observe(this.#now(), startMs + audio.duration / 1000);
            this.#detectOnset(audio, this.#clock.wallMs(startMs));
            this.#encoderFor(audio)?.encode(audio);
        } catch (error) {
            this.stats.errors += 1;
            this.#onError(error);
        } finally {
            audio.close();
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
                const captureTimeUs = Math.round(this.#clock.wallMs(chunk.timestamp / 1000) * 1000);
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
            opus: { frameDuration: OPUS_FRAME_MS * 1000, useinbandfec: true, packetlossperc: 10, complexity: 5 },
        });
        return this.#encoder;
    }

    stop() {
        this.#running = false;
        this.#capture?.stop();
        this.#capture = null;
        for (const track of this.#stream?.getTracks() ?? []) track.stop();
        this.#stream = null;
        if (this.#encoder && this.#encoder.state !== 'closed') this.#encoder.close();
        this.#encoder = null;
        this.#clock = new CaptureClock();
    }
}
