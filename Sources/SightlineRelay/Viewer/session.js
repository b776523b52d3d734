/**
 * One expert's side of a call, without any DOM: the WebSocket to the relay, the hello, the key
 * exchange with the device, media keys, opening and decoding frames, the reports the device
 * steers its bitrate by, snapshots, and reconnecting by itself. The page (viewer.js) draws
 * what this emits; the tests read `stats`.
 */

import { deriveCallKeys, ExpertKeyExchange, unwrapMediaKey, wrapMediaKey } from './keyexchange.js';
import { SFrameOpener, SFrameSealer } from './sframe.js';
import { VideoStreamDecoder, decodeJpeg } from './decoder.js';
import { DeviceAudioPlayer, MicrophoneSender } from './audio.js';
import { concat } from './bytes.js';
import { RollingWindow, median } from './metrics.js';
import * as protocol from './protocol.js';

/** Receivers keep the previous epoch's key this long for frames still in flight. */
const PREVIOUS_KEY_LIFETIME_MS = 5000;
const REPORT_INTERVAL_MS = 1000;
/** A socket that has not opened by then is given up and retried. */
const CONNECT_TIMEOUT_MS = 10000;
const RECONNECT_BASE_MS = 500;
const RECONNECT_MAX_MS = 10000;
/**
 * A burst of errors needs only one keyframe: while a request is outstanding (no keyframe
 * since), it is repeated at most this often, in case the request or its keyframe got lost.
 */
const KEYFRAME_REPEAT_INTERVAL_MS = 1000;
const SNAPSHOT_TIMEOUT_MS = 20000;
/** Without a decoded frame for this long the stream no longer counts as live. */
const LIVE_TIMEOUT_MS = 2000;

/** Wall-clock milliseconds with sub-millisecond resolution, comparable to capture times. */
const wallClock = () => performance.timeOrigin + performance.now();

export class ViewerSession extends EventTarget {
    #session;
    #secret;
    #url;
    #WebSocket;
    #now;
    #joinToken = null;
    #macKey = null;

    #socket = null;
    #generation = 0;
    #attempt = 0;
    #reconnectTimer = null;
    #connectTimer = null;
    #reportTimer = null;
    #stopped = false;
    #inbox = Promise.resolve();

    #exchange = null;
    #pairKey = null;
    #opener = new SFrameOpener();
    #deviceKids = []; // installed device KIDs, oldest first
    #keyframeRequestedAt = -Infinity;
    #keyframeRequestPending = false;
    #sentNewViewerRequest = false;
    #lastCounterByKid = new Map();
    #lastDecodedAt = -Infinity;
    #snapshotTimer = null;

    #latency = new RollingWindow(1000);
    #decodedWindow = new RollingWindow(1000);
    #bytesWindow = new RollingWindow(1000);
    #decoder;
    #player;
    #microphone;
    #microphoneWanted = false;
    #microphoneSealer = null;
    #microphoneEpoch = 0;
    #microphoneSequence = 0;

    #state = {
        connection: 'idle', // idle, connecting, joining, joined, reconnecting, failed, stopped
        encryption: 'none', // none, exchanging, verified, not-verified
        peer: null,
        deviceOnline: false,
        fingerprint: null,
        keyEpoch: null,
        error: null, // what the expert should read, when something is wrong
        framesReceived: 0,
        framesDecoded: 0,
        framesWithoutKey: 0,
        framesLost: 0,
        audioFrames: 0,
        audioMuted: false, // the technician's microphone is muted (privacy)
        microphoneFramesSent: 0,
        microphoneError: null,
        decryptFailures: 0,
        decryptFailuresByCode: {},
        decodeErrors: 0,
        malformed: 0,
        lastFrameCounter: null,
        lastKid: null,
        reconnects: 0,
        keyframeRequests: 0,
        reportsSent: 0,
        stream: null, // the last stream-state
        snapshot: null, // { id, state, evidence, width, height, reason }
        closeCode: null,
    };

    /**
     * @param session   the relay's session id (from `/v/SESSION`)
     * @param secret    the 32-byte call secret (from the link's fragment)
     * @param url       the relay's `ws(s)://…/v1/viewer/SESSION`
     */
    constructor({ session, secret, url, WebSocketImpl = WebSocket, now = wallClock }) {
        super();
        this.#session = session;
        this.#secret = secret;
        this.#url = url;
        this.#WebSocket = WebSocketImpl;
        this.#now = now;
        this.#decoder = new VideoStreamDecoder({
            onFrame: (frame, info) => this.#frameDecoded(frame, info),
            onKeyframeNeeded: (reason) => this.#requestKeyframe(reason),
            onError: (error) => {
                this.#state.decodeErrors = this.#decoder.stats.errors;
                this.#state.error = `video: ${error?.message ?? error}`;
                this.#changed();
            },
        });
        this.#player = new DeviceAudioPlayer({
            onError: (error) => {
                this.#state.error = `audio: ${error?.message ?? error}`;
                this.#changed();
            },
        });
        this.#microphone = new MicrophoneSender({
            now,
            onFrame: (frame) => this.#sendMicrophoneFrame(frame),
            onError: (error) => {
                this.#state.microphoneError = `${error?.message ?? error}`;
                this.#changed();
            },
        });
    }

    /**
     * Starts talking to the technician: asks for the microphone, then sends it sealed under a
     * key of our own once the call is verified. Call it from a click, which also lets the
     * browser play the technician's audio. `options.capture` picks how the microphone is read
     * (`MicrophoneSender.start`); the default suits every browser.
     */
    async startMicrophone(options = {}) {
        this.#microphoneWanted = true;
        this.#state.microphoneError = null;
        await this.#player.resume();
        try {
            await this.#microphone.start(options);
        } catch (error) {
            this.#microphoneWanted = false;
            this.#state.microphoneError = error.message;
            this.#changed();
            throw error;
        }
        if (!this.#microphoneSealer) await this.#newMicrophoneKey(this.#generation);
        this.#changed();
    }

    stopMicrophone() {
        this.#microphoneWanted = false;
        this.#microphone.stop();
        this.#changed();
    }

    /** Lets the browser play the technician's audio (needs a user gesture in most browsers). */
    async enableSound() {
        await this.#player.resume();
        this.#changed();
    }

    /** Derives the join token and MAC key, then connects (and keeps reconnecting). */
    async start() {
        const keys = await deriveCallKeys(this.#secret);
        this.#joinToken = keys.joinToken;
        this.#macKey = keys.macKey;
        this.#reportTimer = setInterval(() => this.#sendReport(), REPORT_INTERVAL_MS);
        this.#connect();
    }

    /** Closes the socket and stops reconnecting. */
    stop() {
        this.#stopped = true;
        clearInterval(this.#reportTimer);
        clearTimeout(this.#reconnectTimer);
        clearTimeout(this.#connectTimer);
        this.#generation += 1;
        this.#socket?.close(1000, 'viewer closed');
        this.#decoder.close();
        this.#microphone.stop();
        this.#player.close();
        this.#state.connection = 'stopped';
        this.#changed();
    }

    /** Asks the device for a full-resolution still; returns the request id, or null if not possible now. */
    requestSnapshot() {
        if (this.#state.encryption !== 'verified' || !this.#isOpen()) return null;
        const id = crypto.randomUUID();
        clearTimeout(this.#snapshotTimer);
        this.#state.snapshot = { id, state: 'requested' };
        this.#send(protocol.snapshotRequest(id));
        this.#snapshotTimer = setTimeout(() => {
            if (this.#state.snapshot?.id === id && this.#state.snapshot.state === 'requested') {
                this.#state.snapshot = { ...this.#state.snapshot, state: 'failed', reason: 'the device did not answer in time' };
                this.#changed();
            }
        }, SNAPSHOT_TIMEOUT_MS);
        this.#changed();
        return id;
    }

    /** A summary of where the call stands, for the status bar and the tests. */
    get summary() {
        const s = this.#state;
        if (s.connection === 'failed') return 'failed';
        if (s.connection === 'stopped') return 'stopped';
        if (s.encryption === 'not-verified') return 'not-verified';
        if (s.connection === 'reconnecting') return 'reconnecting';
        if (s.connection !== 'joined') return 'connecting';
        if (!s.deviceOnline) return 'waiting-for-device';
        if (s.encryption !== 'verified') return 'exchanging';
        return this.#now() - this.#lastDecodedAt < LIVE_TIMEOUT_MS ? 'live' : 'verified';
    }

    /** A JSON-safe copy of every counter (no BigInts, no live references). */
    get stats() {
        const now = this.#now();
        const latency = this.#latency.values(now);
        const p50 = median(latency);
        const s = this.#state;
        return {
            state: this.summary,
            connection: s.connection,
            encryption: s.encryption,
            verified: s.encryption === 'verified',
            session: this.#session,
            peer: s.peer,
            deviceOnline: s.deviceOnline,
            fingerprint: s.fingerprint,
            keyEpoch: s.keyEpoch,
            error: s.error,
            framesReceived: s.framesReceived,
            framesDecoded: s.framesDecoded,
            framesWithoutKey: s.framesWithoutKey,
            framesLost: s.framesLost,
            framesSkipped: this.#decoder.stats.skipped,
            audioFrames: s.audioFrames,
            audioDecoded: this.#player.stats.decoded,
            audioPlayed: this.#player.stats.played,
            audioErrors: this.#player.stats.errors,
            audible: this.#player.audible,
            audioMuted: s.audioMuted,
            microphone: this.#microphone.running,
            microphoneFramesCaptured: this.#microphone.stats.captured,
            microphoneFramesEncoded: this.#microphone.stats.encoded,
            microphoneCapture: this.#microphone.stats.capture,
            microphoneFramesSent: s.microphoneFramesSent,
            microphoneOnsets: this.#microphone.stats.onsets,
            microphoneLastOnsetAt: this.#microphone.stats.lastOnsetAt,
            microphonePeakDbfs: this.#microphone.stats.peakDbfs,
            microphoneError: s.microphoneError,
            decryptFailures: s.decryptFailures,
            decryptFailuresByCode: { ...s.decryptFailuresByCode },
            decodeErrors: s.decodeErrors,
            malformed: s.malformed,
            lastFrameCounter: s.lastFrameCounter,
            lastKid: s.lastKid,
            latencyMs: latency.map((value) => Math.round(value * 10) / 10),
            latencyMsP50: p50 === null ? null : Math.round(p50 * 10) / 10,
            fps: this.#decodedWindow.count(now),
            bitrateKbps: Math.round((this.#bytesWindow.sum(now) * 8) / 1000),
            step: s.stream?.step ?? null,
            codec: s.stream?.codec ?? null,
            width: s.stream?.width ?? null,
            height: s.stream?.height ?? null,
            privacy: s.stream?.privacy ?? false,
            caseReference: s.stream?.caseReference ?? null,
            stream: s.stream ? { ...s.stream } : null,
            reconnects: s.reconnects,
            keyframeRequests: s.keyframeRequests,
            reportsSent: s.reportsSent,
            snapshot: s.snapshot ? { ...s.snapshot } : null,
            closeCode: s.closeCode,
        };
    }

    // MARK: connection

    #connect() {
        if (this.#stopped) return;
        const generation = ++this.#generation;
        this.#resetCall();
        this.#state.connection = this.#attempt === 0 ? 'connecting' : 'reconnecting';
        this.#changed();
        let socket;
        try {
            socket = new this.#WebSocket(this.#url);
        } catch (error) {
            this.#fail(`cannot open ${this.#url}: ${error.message}`);
            return;
        }
        socket.binaryType = 'arraybuffer';
        this.#socket = socket;
        this.#connectTimer = setTimeout(() => {
            if (generation === this.#generation && socket.readyState === socket.CONNECTING) socket.close();
        }, CONNECT_TIMEOUT_MS);
        socket.addEventListener('open', () => {
            if (generation !== this.#generation) return;
            clearTimeout(this.#connectTimer);
            this.#state.connection = 'joining';
            this.#send(protocol.hello(this.#joinToken));
            this.#changed();
        });
        socket.addEventListener('message', (event) => {
            if (generation !== this.#generation) return;
            // One queue for text and binary: a media key must be installed before the frames
            // sealed under it, and frames must reach the decoder in the order they came.
            this.#inbox = this.#inbox
                .then(() => (generation === this.#generation ? this.#receive(event.data, generation) : undefined))
                .catch((error) => console.error('sightline viewer:', error));
        });
        socket.addEventListener('close', (event) => {
            if (generation !== this.#generation) return;
            this.#closed(event.code);
        });
    }

    #closed(code) {
        clearTimeout(this.#connectTimer);
        this.#state.closeCode = code;
        this.#socket = null;
        if (this.#stopped) return;
        if (protocol.terminalCloseCodes.has(code)) {
            this.#generation += 1;
            this.#fail(protocol.closeReasons[code]);
            return;
        }
        if (protocol.closeReasons[code]) this.#state.error = protocol.closeReasons[code];
        const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** this.#attempt) * (0.8 + 0.4 * Math.random());
        this.#attempt += 1;
        this.#state.connection = 'reconnecting';
        this.#state.reconnects += 1;
        this.#generation += 1; // stale crypto work from the old socket must not touch the new call
        this.#changed();
        this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
    }

    #fail(message) {
        this.#state.connection = 'failed';
        this.#state.error = message;
        clearInterval(this.#reportTimer);
        this.#changed();
    }

    /** Everything tied to one socket: peer number, exchange, keys, decoder state. */
    #resetCall() {
        this.#state.peer = null;
        this.#state.deviceOnline = false;
        this.#resetKeys();
    }

    #resetKeys() {
        this.#exchange = null;
        this.#pairKey = null;
        this.#opener = new SFrameOpener();
        this.#deviceKids = [];
        this.#lastCounterByKid.clear();
        this.#sentNewViewerRequest = false;
        this.#keyframeRequestPending = false;
        this.#decoder.reset();
        this.#player.reset();
        this.#microphoneSealer = null;
        if (this.#state.encryption !== 'not-verified') this.#state.encryption = 'none';
        this.#state.keyEpoch = null;
    }

    #isOpen() {
        return this.#socket?.readyState === 1;
    }

    #send(message) {
        if (!this.#isOpen()) return false;
        this.#socket.send(JSON.stringify(message));
        return true;
    }

    // MARK: inbound

    async #receive(data, generation) {
        if (typeof data === 'string') {
            await this.#receiveText(data, generation);
        } else {
            await this.#receiveMedia(new Uint8Array(data));
        }
    }

    async #receiveText(text, generation) {
        let message;
        try {
            message = protocol.parseMessage(text);
        } catch (error) {
            this.#state.malformed += 1;
            console.warn('sightline viewer: ignoring message:', error.message);
            return;
        }
        switch (message.type) {
            case 'joined':
                this.#attempt = 0;
                this.#state.connection = 'joined';
                this.#state.peer = message.peer;
                this.#state.deviceOnline = message.device;
                this.#state.error = null;
                if (message.device) await this.#offer(generation);
                break;
            case 'device-joined':
                // A device back from a drop (maybe a new process) has new keys: exchange again.
                this.#resetKeys();
                this.#state.deviceOnline = true;
                await this.#offer(generation);
                break;
            case 'device-left':
                this.#state.deviceOnline = false;
                break;
            case 'kx-answer':
                await this.#answered(message, generation);
                break;
            case 'kx-failed':
                this.#state.encryption = 'not-verified';
                this.#state.error = 'the device refused our confirmation: this link’s secret does not match the call';
                break;
            case 'media-key':
                await this.#mediaKey(message, generation);
                break;
            case 'stream-state':
                this.#state.stream = {
                    step: message.step,
                    codec: message.codec,
                    width: message.width,
                    height: message.height,
                    fps: message.fps,
                    bitrateKbps: message.bitrateKbps,
                    privacy: message.privacy,
                    // The service case the call is filed in (optional: older devices omit it).
                    caseReference: typeof message.caseReference === 'string' ? message.caseReference : null,
                };
                this.#state.audioMuted = message.audioMuted === true;
                break;
            case 'snapshot-taken':
                if (this.#state.snapshot?.id === message.id) {
                    this.#state.snapshot = { ...this.#state.snapshot, state: 'taken', evidence: message.evidence, width: message.width, height: message.height };
                }
                break;
            case 'snapshot-failed':
                if (this.#state.snapshot?.id === message.id) {
                    clearTimeout(this.#snapshotTimer);
                    this.#state.snapshot = { ...this.#state.snapshot, state: 'failed', reason: message.reason };
                }
                break;
            case 'error':
                this.#state.error = `relay: ${message.message} (${message.code})`;
                break;
            default:
                return; // unknown types are for newer viewers
        }
        this.#changed();
    }

    async #offer(generation) {
        const exchange = await ExpertKeyExchange.start({
            session: this.#session,
            expertPeer: this.#state.peer,
            secret: this.#secret,
            macKey: this.#macKey,
        });
        if (generation !== this.#generation) return;
        this.#exchange = exchange;
        this.#state.encryption = 'exchanging';
        this.#send(protocol.kxOffer(exchange.publicKey));
    }

    async #answered(message, generation) {
        const exchange = this.#exchange;
        if (!exchange || this.#state.encryption !== 'exchanging') return; // not ours, or a repeat
        try {
            const result = await exchange.accept(message);
            if (generation !== this.#generation || exchange !== this.#exchange) return;
            this.#pairKey = result.pairKey;
            this.#state.fingerprint = result.fingerprint;
            this.#state.encryption = 'verified';
            this.#state.error = null;
            this.#send(protocol.kxConfirm(result.confirmation));
        } catch (error) {
            if (generation !== this.#generation) return;
            // Never confirm, never accept media: the relay or a stranger sits in the middle.
            this.#exchange = null;
            this.#state.encryption = 'not-verified';
            this.#state.error = error.message;
        }
    }

    async #mediaKey(message, generation) {
        if (this.#state.encryption !== 'verified' || !this.#pairKey) return;
        let baseKey;
        try {
            baseKey = await unwrapMediaKey(this.#pairKey, message);
        } catch (error) {
            this.#state.error = error.message;
            return;
        }
        const kid = BigInt(message.kid);
        await this.#opener.install(kid, baseKey);
        // The device's audio: same epoch and base key, its own KID (and so its own key and counter).
        await this.#opener.install(protocol.deviceAudioKid(kid), baseKey);
        if (generation !== this.#generation) return;
        this.#lastCounterByKid.delete(kid);
        this.#deviceKids = this.#deviceKids.filter((installed) => installed !== kid);
        this.#deviceKids.push(kid);
        this.#state.keyEpoch = protocol.splitKid(kid).epoch;
        // Keep the previous epoch a little for frames in flight; drop anything older now.
        const opener = this.#opener;
        const retire = (old) => {
            opener.remove(old);
            opener.remove(protocol.deviceAudioKid(old));
        };
        while (this.#deviceKids.length > 2) retire(this.#deviceKids.shift());
        if (this.#deviceKids.length === 2) {
            const previous = this.#deviceKids[0];
            setTimeout(() => {
                if (opener !== this.#opener || this.#deviceKids[0] !== previous || this.#deviceKids.length < 2) return;
                retire(previous);
                this.#deviceKids.shift();
            }, PREVIOUS_KEY_LIFETIME_MS);
        }
        if (!this.#sentNewViewerRequest) {
            this.#sentNewViewerRequest = true;
            this.#decoder.reset();
            this.#requestKeyframe('new-viewer', { force: true });
        }
        if (this.#microphoneWanted && !this.#microphoneSealer) await this.#newMicrophoneKey(generation);
    }

    async #receiveMedia(bytes) {
        const now = this.#now();
        this.#bytesWindow.add(now, bytes.length);
        let envelope;
        try {
            envelope = protocol.parseEnvelope(bytes);
        } catch {
            this.#state.malformed += 1;
            return;
        }
        if (this.#state.encryption !== 'verified') {
            this.#state.framesWithoutKey += 1;
            return;
        }
        let opened;
        try {
            opened = await this.#opener.open(envelope.frame, envelope.envelope);
        } catch (error) {
            if (error.code === 'unknown-kid') {
                this.#state.framesWithoutKey += 1;
            } else {
                this.#state.decryptFailures += 1;
                const code = error.code ?? 'other';
                this.#state.decryptFailuresByCode[code] = (this.#state.decryptFailuresByCode[code] ?? 0) + 1;
            }
            this.#changed();
            return;
        }
        this.#countCounter(opened.kid, opened.counter);
        if (envelope.kind === protocol.Kind.audio) {
            let audio;
            try {
                audio = protocol.parseAudioPayload(opened.plaintext);
            } catch {
                this.#state.malformed += 1;
                return;
            }
            this.#state.audioFrames += 1;
            this.#player.decode(audio);
            return;
        }
        let payload;
        try {
            payload = protocol.parsePayload(opened.plaintext);
        } catch {
            this.#state.malformed += 1;
            return;
        }
        if (envelope.kind === protocol.Kind.video) {
            this.#state.framesReceived += 1;
            if (envelope.keyframe) this.#keyframeRequestPending = false;
            this.#decoder.decode(payload, envelope.keyframe);
        } else if (envelope.kind === protocol.Kind.still) {
            await this.#still(payload);
        }
        this.#changed();
    }

    /** Counter gaps within one KID are frames the relay dropped or the network lost. */
    #countCounter(kid, counter) {
        const last = this.#lastCounterByKid.get(kid);
        if (last !== undefined && counter > last + 1n) this.#state.framesLost += Number(counter - last - 1n);
        if (last === undefined || counter > last) this.#lastCounterByKid.set(kid, counter);
        this.#state.lastFrameCounter = Number(counter);
        this.#state.lastKid = Number(kid);
    }

    #frameDecoded(frame, { captureTimeUs }) {
        const now = this.#now();
        this.#lastDecodedAt = now;
        this.#state.framesDecoded += 1;
        this.#decodedWindow.add(now);
        if (captureTimeUs > 0) this.#latency.add(now, now - captureTimeUs / 1000);
        // The listener draws the frame; whoever handles it closes it, else we do.
        const event = new CustomEvent('frame', { detail: { frame }, cancelable: true });
        if (this.dispatchEvent(event)) frame.close();
        this.#changed();
    }

    async #still(payload) {
        const snapshot = this.#state.snapshot;
        if (snapshot?.state === 'taken') {
            clearTimeout(this.#snapshotTimer);
            this.#state.snapshot = { ...snapshot, state: 'received' };
        }
        let image;
        try {
            image = await decodeJpeg(payload.data);
        } catch (error) {
            this.#state.error = `snapshot: ${error.message}`;
            return;
        }
        const detail = { image, jpeg: payload.data.slice(), width: payload.width, height: payload.height, snapshot: this.#state.snapshot };
        if (this.dispatchEvent(new CustomEvent('still', { detail, cancelable: true }))) image.close();
    }

    // MARK: outbound

    /**
     * A fresh base key for our microphone, sent to the device wrapped under the pair key. Our
     * KID is `epoch × 65536 + our peer number`, so the device knows whose voice it opens.
     */
    async #newMicrophoneKey(generation) {
        if (this.#state.encryption !== 'verified' || !this.#pairKey || this.#state.peer === null) return;
        const baseKey = crypto.getRandomValues(new Uint8Array(16));
        this.#microphoneEpoch += 1;
        const kid = (BigInt(this.#microphoneEpoch) << 16n) | BigInt(this.#state.peer);
        const wrapped = await wrapMediaKey(this.#pairKey, kid, baseKey);
        const sealer = await SFrameSealer.create(kid, baseKey);
        if (generation !== this.#generation) return;
        if (this.#send(protocol.expertMediaKey(wrapped))) this.#microphoneSealer = sealer;
    }

    async #sendMicrophoneFrame({ data, captureTimeUs }) {
        const sealer = this.#microphoneSealer;
        if (!sealer || !this.#isOpen()) return;
        const payload = protocol.buildAudioPayload({ sequence: this.#microphoneSequence, captureTimeUs, data });
        this.#microphoneSequence = (this.#microphoneSequence + 1) & 0xffff;
        const envelope = protocol.buildEnvelope(protocol.Kind.audio);
        const sealed = await sealer.seal(payload, envelope);
        if (sealer !== this.#microphoneSealer || !this.#isOpen()) return;
        this.#socket.send(concat(envelope, sealed));
        this.#state.microphoneFramesSent += 1;
    }

    #requestKeyframe(reason, { force = false } = {}) {
        const now = this.#now();
        if (!force && this.#keyframeRequestPending && now - this.#keyframeRequestedAt < KEYFRAME_REPEAT_INTERVAL_MS) return;
        if (this.#state.encryption !== 'verified') return;
        if (this.#send(protocol.keyframeRequest(reason))) {
            this.#keyframeRequestedAt = now;
            this.#keyframeRequestPending = true;
            this.#state.keyframeRequests += 1;
        }
    }

    #sendReport() {
        if (this.#state.encryption !== 'verified' || !this.#isOpen()) return;
        const stats = this.stats;
        const sent = this.#send(
            protocol.receiverReport({
                decodedFps: stats.fps,
                latencyMsP50: stats.latencyMsP50,
                decryptFailures: stats.decryptFailures,
                framesLost: stats.framesLost,
            }),
        );
        if (sent) this.#state.reportsSent += 1;
        this.#changed(); // fps and latency move with the clock even without new frames
    }

    #changed() {
        this.dispatchEvent(new Event('change'));
    }
}
