/**
 * The wire format between viewer and relay (docs/PROTOCOL.md): the 4-byte media envelope, the
 * sealed media payload, and the JSON control messages. Parsing is strict and returns typed
 * errors, because everything here arrives through a relay we do not trust with content.
 */

import { asBytes, readBigEndian, toB64u } from './bytes.js';

export const ENVELOPE_LENGTH = 4;
export const ENVELOPE_VERSION = 1;
export const Kind = Object.freeze({ video: 1, audio: 2, still: 3 });
export const Codec = Object.freeze({ h264: 1, jpeg: 2, opus: 3 });
/** KIDs are `epoch × 65536 + sender`; the device's audio uses this sender number. */
export const DEVICE_AUDIO_SENDER = 0xffff;
export const PAYLOAD_HEADER_LENGTH = 16;
/** Text messages larger than this are refused by the relay (close 4413). */
export const MAX_TEXT_MESSAGE = 16 * 1024;

/** A malformed envelope, payload or message; `code` is stable for counters. */
export class ProtocolError extends Error {
    constructor(code, message) {
        super(message);
        this.name = 'ProtocolError';
        this.code = code;
    }
}

/**
 * `{version, kind, keyframe, flags, bytes}` of a binary message's first four bytes, plus the
 * SFrame frame after it. The envelope is SFrame metadata, so a flipped flag fails to open.
 */
export function parseEnvelope(message) {
    const bytes = asBytes(message);
    if (bytes.length < ENVELOPE_LENGTH) throw new ProtocolError('short-envelope', 'binary message shorter than its envelope');
    const [version, kind, flags] = bytes;
    if (version !== ENVELOPE_VERSION) throw new ProtocolError('envelope-version', `envelope version ${version} is not supported`);
    return {
        version,
        kind,
        flags,
        keyframe: (flags & 0x01) !== 0,
        envelope: bytes.subarray(0, ENVELOPE_LENGTH),
        frame: bytes.subarray(ENVELOPE_LENGTH),
    };
}

export function buildEnvelope(kind, { keyframe = false } = {}) {
    return Uint8Array.of(ENVELOPE_VERSION, kind, keyframe ? 1 : 0, 0);
}

/**
 * The sealed media payload: version, codec, width, height, reserved, capture time (µs since
 * the Unix epoch, u64), then the coded frame (a view, not a copy).
 */
export function parsePayload(plaintext) {
    const bytes = asBytes(plaintext);
    if (bytes.length < PAYLOAD_HEADER_LENGTH) throw new ProtocolError('short-payload', 'media payload shorter than its header');
    if (bytes[0] !== 1) throw new ProtocolError('payload-version', `media payload version ${bytes[0]} is not supported`);
    const codec = bytes[1];
    if (codec !== Codec.h264 && codec !== Codec.jpeg) throw new ProtocolError('codec', `unknown codec ${codec}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return {
        codec,
        width: view.getUint16(2),
        height: view.getUint16(4),
        // µs since 1970 stay below 2^53 for the next 250 years, so a Number is exact.
        captureTimeUs: Number(readBigEndian(bytes.subarray(8, 16))),
        data: bytes.subarray(PAYLOAD_HEADER_LENGTH),
    };
}

export function buildPayload({ codec, width, height, captureTimeUs, data }) {
    const out = new Uint8Array(PAYLOAD_HEADER_LENGTH + data.length);
    const view = new DataView(out.buffer);
    out[0] = 1;
    out[1] = codec;
    view.setUint16(2, width);
    view.setUint16(4, height);
    view.setBigUint64(8, BigInt(captureTimeUs));
    out.set(asBytes(data), PAYLOAD_HEADER_LENGTH);
    return out;
}

/**
 * The sealed audio payload: version, codec 3 (Opus), sequence (u16, one per 20 ms frame,
 * wrapping), samples per channel at 48 kHz, reserved, capture time (µs since the Unix epoch,
 * u64), then one Opus packet (a view, not a copy).
 */
export function parseAudioPayload(plaintext) {
    const bytes = asBytes(plaintext);
    if (bytes.length < PAYLOAD_HEADER_LENGTH) throw new ProtocolError('short-payload', 'audio payload shorter than its header');
    if (bytes[0] !== 1) throw new ProtocolError('payload-version', `audio payload version ${bytes[0]} is not supported`);
    if (bytes[1] !== Codec.opus) throw new ProtocolError('codec', `audio codec ${bytes[1]} is not Opus`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return {
        sequence: view.getUint16(2),
        frameSamples: view.getUint16(4),
        captureTimeUs: Number(readBigEndian(bytes.subarray(8, 16))),
        data: bytes.subarray(PAYLOAD_HEADER_LENGTH),
    };
}

export function buildAudioPayload({ sequence, frameSamples = 960, captureTimeUs, data }) {
    const out = new Uint8Array(PAYLOAD_HEADER_LENGTH + data.length);
    const view = new DataView(out.buffer);
    out[0] = 1;
    out[1] = Codec.opus;
    view.setUint16(2, sequence & 0xffff);
    view.setUint16(4, frameSamples);
    view.setBigUint64(8, BigInt(captureTimeUs));
    out.set(asBytes(data), PAYLOAD_HEADER_LENGTH);
    return out;
}

/** The KID of the device's audio in the epoch of a (video) KID from `media-key`. */
export function deviceAudioKid(kid) {
    return (BigInt(kid) & ~0xffffn) | BigInt(DEVICE_AUDIO_SENDER);
}

/** What each message from the device must carry; anything else is dropped as malformed. */
const deviceMessageFields = {
    'kx-answer': { pub: 'string', identity: 'string', signature: 'string', mac: 'string' },
    'kx-failed': {},
    'media-key': { kid: 'number', nonce: 'string', key: 'string' },
    'stream-state': { step: 'string', codec: 'string', width: 'number', height: 'number', fps: 'number', bitrateKbps: 'number', privacy: 'boolean' },
    'snapshot-taken': { id: 'string', evidence: 'string', width: 'number', height: 'number' },
    'snapshot-failed': { id: 'string', reason: 'string' },
};

/** What the relay itself sends (no `from`). */
const relayMessageFields = {
    joined: { session: 'string', peer: 'number', device: 'boolean' },
    'device-left': {},
    'device-joined': {},
    error: { code: 'number|string', message: 'string' }, // the relay sends its close code
};

/**
 * A text message as an object with a known `type` and well-typed fields, or a ProtocolError.
 * Device messages must come `from` peer 0: the relay stamps `from`, so another expert cannot
 * pose as the device. Unknown types are returned with `known: false` and otherwise ignored.
 */
export function parseMessage(text) {
    if (typeof text !== 'string' || text.length > MAX_TEXT_MESSAGE) throw new ProtocolError('message-size', 'text message too large');
    let message;
    try {
        message = JSON.parse(text);
    } catch {
        throw new ProtocolError('not-json', 'text message is not JSON');
    }
    if (message === null || typeof message !== 'object' || Array.isArray(message) || typeof message.type !== 'string') {
        throw new ProtocolError('no-type', 'text message has no string "type"');
    }
    const fromDevice = deviceMessageFields[message.type];
    const fromRelay = relayMessageFields[message.type];
    const fields = fromDevice ?? fromRelay;
    if (!fields) return { ...message, known: false };
    if (fromDevice && message.from !== 0) throw new ProtocolError('not-from-device', `"${message.type}" did not come from the device`);
    for (const [name, types] of Object.entries(fields)) {
        if (!types.split('|').includes(typeof message[name])) throw new ProtocolError('field', `"${message.type}" needs ${types} "${name}"`);
    }
    if (message.type === 'media-key' && !(Number.isSafeInteger(message.kid) && message.kid >= 0)) {
        throw new ProtocolError('field', '"media-key" needs a non-negative integer "kid"');
    }
    return { ...message, known: true };
}

/** KIDs are `epoch × 65536 + sender`; the device sends as sender 0. */
export function splitKid(kid) {
    const value = BigInt(kid);
    return { epoch: Number(value >> 16n), sender: Number(value & 0xffffn) };
}

// Message builders: the viewer only ever talks to the device (peer 0) after its hello.

export const hello = (joinToken) => ({ type: 'hello', role: 'expert', joinToken: toB64u(joinToken) });
export const kxOffer = (publicKey) => ({ type: 'kx-offer', to: 0, pub: toB64u(publicKey) });
export const kxConfirm = (mac) => ({ type: 'kx-confirm', to: 0, mac: toB64u(mac) });
/** `reason`: `new-viewer`, `decode-error` or `loss`. */
export const keyframeRequest = (reason) => ({ type: 'keyframe-request', to: 0, reason });
export const receiverReport = ({ decodedFps, latencyMsP50, decryptFailures, framesLost }) => ({
    type: 'receiver-report',
    to: 0,
    decodedFps,
    latencyMsP50,
    decryptFailures,
    framesLost,
});
export const snapshotRequest = (id) => ({ type: 'snapshot-request', to: 0, id });
/** The expert's own key for its microphone, wrapped under the pair key (`wrapMediaKey`). */
export const expertMediaKey = ({ kid, nonce, key }) => ({ type: 'media-key', to: 0, kid: Number(kid), nonce: toB64u(nonce), key: toB64u(key) });

/** What each close code of the relay means, in words an expert can act on. */
export const closeReasons = Object.freeze({
    4400: 'the relay refused a malformed message',
    4401: 'the relay refused this link: the call has ended or the link is wrong',
    4404: 'this call does not exist (any more) on the relay',
    4408: 'the relay timed the connection out',
    4409: 'replaced by a newer connection of the device',
    4413: 'a message was larger than the relay allows',
    4429: 'too many messages: the relay’s rate limit was exceeded',
});

/** Codes after which reconnecting cannot help: the link itself is wrong or the call is over. */
export const terminalCloseCodes = new Set([4401, 4404]);
