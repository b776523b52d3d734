/**
 * SFrame (RFC 9605) for cipher suite AES_128_GCM_SHA256_128 (0x0004), the only suite Sightline
 * uses, on WebCrypto. It mirrors SightlineCore/SFrame so both ends refuse exactly the same
 * frames: minimal headers only, a 128-counter replay window per KID, a size limit checked
 * before any decryption. KIDs and counters are 64-bit, so they are BigInts throughout.
 */

import { asBytes, bigEndian, concat, utf8 } from './bytes.js';

export const SUITE = 0x0004;
const KEY_LENGTH = 16; // Nk
const NONCE_LENGTH = 12; // Nn
const TAG_LENGTH = 16; // Nt
const MAX_U64 = (1n << 64n) - 1n;
/** Far above any frame we send, small enough that a hostile peer cannot make us buffer more. */
export const DEFAULT_MAXIMUM_FRAME_SIZE = 1 << 20;
export const REPLAY_WINDOW_SIZE = 128n;
const WINDOW_MASK = (1n << REPLAY_WINDOW_SIZE) - 1n;

/**
 * Why a frame was refused. `code` is stable (the viewer counts failures by it); the codes match
 * the cases of the Swift `SFrameError`.
 */
export class SFrameError extends Error {
    constructor(code, message, details = {}) {
        super(message);
        this.name = 'SFrameError';
        this.code = code;
        Object.assign(this, details);
    }
}

const fail = {
    truncatedHeader: () => new SFrameError('truncated-header', 'SFrame header is truncated'),
    invalidHeader: () => new SFrameError('invalid-header', 'SFrame header is not minimally encoded'),
    truncatedCiphertext: () => new SFrameError('truncated-ciphertext', 'SFrame ciphertext is shorter than its tag'),
    unknownKid: (kid) => new SFrameError('unknown-kid', `no SFrame key for KID ${kid}`, { kid }),
    authentication: () => new SFrameError('authentication-failed', 'SFrame authentication failed'),
    replayed: (kid, counter) =>
        new SFrameError('replayed', `SFrame KID ${kid} counter ${counter} was replayed`, { kid, counter }),
    tooOld: (kid, counter) =>
        new SFrameError('too-old', `SFrame KID ${kid} counter ${counter} is older than the replay window`, { kid, counter }),
    tooLarge: (size, limit) =>
        new SFrameError('frame-too-large', `SFrame payload of ${size} bytes exceeds the ${limit}-byte limit`, { size, limit }),
    exhausted: (kid) => new SFrameError('counter-exhausted', `SFrame counter for KID ${kid} is exhausted`, { kid }),
};

/** Bytes needed for `value` without leading zeros (at least one). */
function minimalLength(value) {
    let length = 1;
    while (value >> BigInt(8 * length) > 0n) length += 1;
    return length;
}

function checkU64(value, name) {
    if (typeof value !== 'bigint' || value < 0n || value > MAX_U64) {
        throw new RangeError(`${name} must be a BigInt in 0…2^64-1`);
    }
}

/**
 * The header for (kid, counter), RFC 9605 section 4.3: config byte `X K K K Y C C C`; values
 * below 8 ride in the three bits, larger ones follow in their minimal big-endian form.
 */
export function encodeHeader(kid, counter) {
    checkU64(kid, 'KID');
    checkU64(counter, 'CTR');
    let config = 0;
    const tail = [];
    for (const [value, shift] of [[kid, 4], [counter, 0]]) {
        if (value < 8n) {
            config |= Number(value) << shift;
        } else {
            const length = minimalLength(value);
            config |= (0x08 | (length - 1)) << shift;
            tail.push(bigEndian(value, length));
        }
    }
    return concat(Uint8Array.of(config), ...tail);
}

/**
 * Reads the header at the start of `bytes`: `{kid, counter, length}`. Non-minimal forms are
 * refused so every (KID, CTR) has exactly one wire form, as the protocol requires.
 */
export function decodeHeader(input) {
    const bytes = asBytes(input);
    if (bytes.length < 1) throw fail.truncatedHeader();
    const config = bytes[0];
    let offset = 1;
    const field = (bits) => {
        if ((bits & 0x08) === 0) return BigInt(bits);
        const count = (bits & 0x07) + 1;
        if (bytes.length < offset + count) throw fail.truncatedHeader();
        let value = 0n;
        for (let i = 0; i < count; i += 1) value = (value << 8n) | BigInt(bytes[offset + i]);
        offset += count;
        if (value < 8n || minimalLength(value) !== count) throw fail.invalidHeader();
        return value;
    };
    const kid = field(config >> 4);
    const counter = field(config & 0x0f);
    return { kid, counter, length: offset };
}

/** `"SFrame 1.0 Secret " + purpose + " " || KID (8) || suite (2)`: binds keys to KID and suite. */
export function label(purpose, kid) {
    return concat(utf8(`SFrame 1.0 Secret ${purpose} `), bigEndian(kid, 8), bigEndian(SUITE, 2));
}

/**
 * `sframe_key` and `sframe_salt` for `kid` (RFC 9605 section 4.4.2). WebCrypto's HKDF runs
 * Extract and Expand in one call; an empty salt is HMAC-keyed by zeros either way, so this is
 * `Expand(Extract("", base_key), label, L)` exactly.
 */
export async function deriveKeyMaterial(baseKey, kid) {
    const ikm = await crypto.subtle.importKey('raw', asBytes(baseKey), 'HKDF', false, ['deriveBits']);
    const expand = async (purpose, length) =>
        new Uint8Array(
            await crypto.subtle.deriveBits(
                { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: label(purpose, kid) },
                ikm,
                8 * length,
            ),
        );
    return { key: await expand('key', KEY_LENGTH), salt: await expand('salt', NONCE_LENGTH) };
}

/**
 * One KID's AES-GCM key and salt. Stateless: counters live in `SFrameSealer`, replay state in
 * `SFrameOpener`, so the cipher itself can never be the reason a nonce repeats.
 */
export class SFrameCipher {
    constructor(kid, key, salt) {
        this.kid = kid;
        this.key = key;
        this.salt = salt;
    }

    /** Derives the keys; the AES key is imported non-extractable. */
    static async create(kid, baseKey) {
        checkU64(kid, 'KID');
        const material = await deriveKeyMaterial(baseKey, kid);
        const key = await crypto.subtle.importKey('raw', material.key, 'AES-GCM', false, ['encrypt', 'decrypt']);
        return new SFrameCipher(kid, key, material.salt);
    }

    /** `sframe_salt XOR CTR` (CTR left-padded to 12 bytes): each counter gets its own nonce. */
    nonce(counter) {
        const padded = bigEndian(counter, NONCE_LENGTH);
        return padded.map((byte, i) => byte ^ this.salt[i]);
    }

    /** `header || ciphertext || tag`; the caller guarantees `counter` is used once. */
    async seal(counter, plaintext, metadata = new Uint8Array(0)) {
        const header = encodeHeader(this.kid, counter);
        const sealed = await crypto.subtle.encrypt(
            { name: 'AES-GCM', iv: this.nonce(counter), additionalData: concat(header, asBytes(metadata)), tagLength: 8 * TAG_LENGTH },
            this.key,
            asBytes(plaintext),
        );
        return concat(header, new Uint8Array(sealed));
    }

    /** Authenticates and decrypts `frame` whose header (of `headerLength` bytes) names `counter`. */
    async open(counter, headerLength, frame, metadata = new Uint8Array(0)) {
        const bytes = asBytes(frame);
        if (bytes.length - headerLength < TAG_LENGTH) throw fail.truncatedCiphertext();
        try {
            const plain = await crypto.subtle.decrypt(
                {
                    name: 'AES-GCM',
                    iv: this.nonce(counter),
                    additionalData: concat(bytes.subarray(0, headerLength), asBytes(metadata)),
                    tagLength: 8 * TAG_LENGTH,
                },
                this.key,
                bytes.subarray(headerLength),
            );
            return new Uint8Array(plain);
        } catch {
            throw fail.authentication();
        }
    }
}

/**
 * Seals one sender's frames under one KID. The counter is taken synchronously before the
 * first `await`, so concurrent calls can never share a counter (and thus a nonce).
 */
export class SFrameSealer {
    #cipher;
    #next;

    constructor(cipher, { startingCounter = 0n, maximumFrameSize = DEFAULT_MAXIMUM_FRAME_SIZE } = {}) {
        checkU64(startingCounter, 'CTR');
        this.#cipher = cipher;
        this.#next = startingCounter;
        this.maximumFrameSize = maximumFrameSize;
    }

    static async create(kid, baseKey, options) {
        return new SFrameSealer(await SFrameCipher.create(kid, baseKey), options);
    }

    get kid() {
        return this.#cipher.kid;
    }

    /** The counter the next frame gets; null once all 2^64 values are used. */
    get nextCounter() {
        return this.#next;
    }

    async seal(plaintext, metadata = new Uint8Array(0)) {
        const bytes = asBytes(plaintext);
        if (bytes.length > this.maximumFrameSize) throw fail.tooLarge(bytes.length, this.maximumFrameSize);
        const counter = this.#next;
        if (counter === null) throw fail.exhausted(this.kid);
        // Never wrap: after 2^64-1 the sender needs a new key and KID.
        this.#next = counter === MAX_U64 ? null : counter + 1n;
        return this.#cipher.seal(counter, bytes, metadata);
    }
}

/** Which of the last 128 counters (up to the highest accepted) were already accepted. */
class ReplayWindow {
    highest = null;
    seen = 0n; // bit i set: counter highest - i was accepted

    check(kid, counter) {
        if (this.highest === null || counter > this.highest) return;
        const age = this.highest - counter;
        if (age >= REPLAY_WINDOW_SIZE) throw fail.tooOld(kid, counter);
        if ((this.seen >> age) & 1n) throw fail.replayed(kid, counter);
    }

    record(counter) {
        if (this.highest !== null && counter <= this.highest) {
            this.seen |= 1n << (this.highest - counter);
            return;
        }
        const advance = this.highest === null ? REPLAY_WINDOW_SIZE : counter - this.highest;
        this.seen = advance >= REPLAY_WINDOW_SIZE ? 1n : ((this.seen << advance) | 1n) & WINDOW_MASK;
        this.highest = counter;
    }
}

/**
 * Opens frames from every sender whose key is installed, refusing replays per KID. A counter
 * is recorded only after its tag verifies, so forged frames cannot move the window.
 */
export class SFrameOpener {
    #receivers = new Map(); // kid (BigInt) -> { cipher, window }

    constructor({ maximumFrameSize = DEFAULT_MAXIMUM_FRAME_SIZE } = {}) {
        this.maximumFrameSize = maximumFrameSize;
    }

    /** Installs (or replaces) the key for `kid` with a fresh replay window. */
    async install(kid, baseKey) {
        const cipher = await SFrameCipher.create(kid, baseKey);
        this.#receivers.set(kid, { cipher, window: new ReplayWindow() });
    }

    remove(kid) {
        this.#receivers.delete(kid);
    }

    has(kid) {
        return this.#receivers.has(kid);
    }

    get kids() {
        return [...this.#receivers.keys()];
    }

    /** `{kid, counter, plaintext}` for an authentic frame seen for the first time. */
    async open(frame, metadata = new Uint8Array(0)) {
        const bytes = asBytes(frame);
        const { kid, counter, length } = decodeHeader(bytes);
        const payloadSize = bytes.length - length - TAG_LENGTH;
        if (payloadSize > this.maximumFrameSize) throw fail.tooLarge(payloadSize, this.maximumFrameSize);
        const receiver = this.#receivers.get(kid);
        if (!receiver) throw fail.unknownKid(kid);
        receiver.window.check(kid, counter);
        const plaintext = await receiver.cipher.open(counter, length, bytes, metadata);
        // Decryption awaited: another open of the same frame may have finished first.
        receiver.window.check(kid, counter);
        receiver.window.record(counter);
        return { kid, counter, plaintext };
    }
}
