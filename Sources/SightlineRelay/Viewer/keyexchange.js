/**
 * The expert's side of the call's key exchange (docs/PROTOCOL.md, "Calls, invite links and
 * secrets" and "Key exchange") on WebCrypto: X25519 for the ephemeral agreement, Ed25519 for
 * the device identity, HMAC-SHA256 over the transcript with a key only secret holders have.
 * The MAC is what keeps the relay out of the middle, so it is checked before anything else.
 */

import { asBytes, bigEndian, concat, fromB64u, toBase64Unpadded, utf8 } from './bytes.js';

const SECRET_LENGTH = 32;
const KEY_LENGTH = 32;
const TRANSCRIPT_LABEL = 'sightline kx v1';

/** Why an exchange or a media key was refused; `code` is stable for the UI and the tests. */
export class KeyExchangeError extends Error {
    constructor(code, message) {
        super(message);
        this.name = 'KeyExchangeError';
        this.code = code;
    }
}

const fail = {
    secret: () => new KeyExchangeError('bad-secret', 'the invite link does not carry a 43-character call secret after “#”'),
    malformed: (field) => new KeyExchangeError('malformed-key', `key exchange: '${field}' is not a valid 32-byte key`),
    mac: () =>
        new KeyExchangeError(
            'mac-mismatch',
            'key exchange: the device’s MAC does not verify (it does not hold this call’s secret, or the relay altered the messages)',
        ),
    signature: () => new KeyExchangeError('bad-signature', 'key exchange: the device identity signature does not verify'),
    unwrap: () => new KeyExchangeError('key-unwrap-failed', 'media key: does not decrypt under the pair key'),
    unsupported: (what) =>
        new KeyExchangeError('unsupported', `this browser lacks WebCrypto ${what}; use a current Chromium or Firefox`),
};

/** HKDF-SHA256 output bytes; every derivation of the protocol is this with different inputs. */
async function hkdf(ikm, salt, info, length) {
    const key = await crypto.subtle.importKey('raw', asBytes(ikm), 'HKDF', false, ['deriveBits']);
    const bits = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: asBytes(salt), info: asBytes(info) }, key, 8 * length);
    return new Uint8Array(bits);
}

async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', asBytes(bytes)));
}

/** The call secret from the invite link's fragment (`#` + 43 b64u characters). */
export function parseSecret(fragment) {
    const text = (fragment ?? '').replace(/^#/, '');
    const bytes = fromB64u(text);
    if (!bytes || bytes.length !== SECRET_LENGTH) throw fail.secret();
    return bytes;
}

/**
 * What the viewer derives from the call secret: the join token it presents to the relay (the
 * relay keeps only its hash) and the MAC key, which never leaves this page.
 */
export async function deriveCallKeys(secret) {
    const empty = new Uint8Array(0);
    const joinToken = await hkdf(secret, empty, utf8('sightline join token v1'), 32);
    const macBytes = await hkdf(secret, empty, utf8('sightline kx mac v1'), 32);
    const macKey = await crypto.subtle.importKey('raw', macBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    return { joinToken, macKey };
}

/**
 * `"sightline kx v1" || u16 len || session (UTF-8) || u32 expert peer || Ee || Ed || I`:
 * binding session, peer number and all three keys stops a relay from splicing exchanges.
 */
export function transcript({ session, expertPeer, expertPublicKey, devicePublicKey, identityPublicKey }) {
    const sessionBytes = utf8(session);
    if (sessionBytes.length > 0xffff) throw new RangeError('session id longer than 65535 bytes');
    return concat(
        utf8(TRANSCRIPT_LABEL),
        bigEndian(sessionBytes.length, 2),
        sessionBytes,
        bigEndian(expertPeer, 4),
        asBytes(expertPublicKey),
        asBytes(devicePublicKey),
        asBytes(identityPublicKey),
    );
}

/** `HMAC(MAC key, role || transcript)` with role "device" or "expert". */
export async function transcriptMac(macKey, role, transcriptBytes) {
    return new Uint8Array(await crypto.subtle.sign('HMAC', macKey, concat(utf8(role), transcriptBytes)));
}

/** `SHA256:` + unpadded standard base64 of SHA-256(identity): what the device's owner registered. */
export async function fingerprint(identityPublicKey) {
    return `SHA256:${toBase64Unpadded(await sha256(identityPublicKey))}`;
}

/** True when this browser has the curves the exchange needs (Chromium ≥ 133, Firefox ≥ 130). */
export async function supportsKeyExchange() {
    try {
        await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
        await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
        return true;
    } catch {
        return false;
    }
}

/** A 32-byte field of the answer, or a typed error naming the field. */
function keyField(answer, field) {
    const value = answer[field];
    const bytes = value instanceof Uint8Array ? value : fromB64u(value);
    if (!bytes || bytes.length !== KEY_LENGTH) throw fail.malformed(field);
    return bytes;
}

/**
 * One exchange of this expert with the device. Create it after `joined` (the transcript needs
 * the peer number the relay gave us) and again after every reconnect: keys are ephemeral.
 */
export class ExpertKeyExchange {
    #keyPair;
    #secret;
    #macKey;

    constructor({ session, expertPeer, secret, macKey, keyPair, publicKey }) {
        this.session = session;
        this.expertPeer = expertPeer;
        this.publicKey = publicKey;
        this.#secret = secret;
        this.#macKey = macKey;
        this.#keyPair = keyPair;
    }

    /** Draws a fresh X25519 key pair `Ee`; `publicKey` goes into the `kx-offer`. */
    static async start({ session, expertPeer, secret, macKey }) {
        let keyPair;
        try {
            keyPair = await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
        } catch {
            throw fail.unsupported('X25519');
        }
        const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', keyPair.publicKey));
        const keys = macKey ? { macKey } : await deriveCallKeys(secret);
        return new ExpertKeyExchange({ session, expertPeer, secret, macKey: keys.macKey, keyPair, publicKey });
    }

    /**
     * Verifies a `kx-answer` (fields b64u strings or bytes: pub, identity, signature, mac) and
     * returns `{confirmation, pairKey, fingerprint, identityPublicKey}`. The MAC comes first
     * and is mandatory; then the identity signature; only then is the shared secret used.
     */
    async accept(answer) {
        const devicePublicKey = keyField(answer, 'pub');
        const identityPublicKey = keyField(answer, 'identity');
        const mac = answer.mac instanceof Uint8Array ? answer.mac : fromB64u(answer.mac);
        const signature = answer.signature instanceof Uint8Array ? answer.signature : fromB64u(answer.signature);
        const bytes = transcript({
            session: this.session,
            expertPeer: this.expertPeer,
            expertPublicKey: this.publicKey,
            devicePublicKey,
            identityPublicKey,
        });
        // HMAC verify in WebCrypto compares in constant time.
        const macValid = mac && mac.length === 32 && (await crypto.subtle.verify('HMAC', this.#macKey, mac, concat(utf8('device'), bytes)));
        if (!macValid) throw fail.mac();

        let identity;
        try {
            identity = await crypto.subtle.importKey('raw', identityPublicKey, { name: 'Ed25519' }, false, ['verify']);
        } catch (error) {
            throw error?.name === 'NotSupportedError' ? fail.unsupported('Ed25519') : fail.malformed('identity');
        }
        const signatureValid = signature && signature.length === 64 && (await crypto.subtle.verify({ name: 'Ed25519' }, identity, signature, bytes));
        if (!signatureValid) throw fail.signature();

        let shared;
        try {
            const deviceKey = await crypto.subtle.importKey('raw', devicePublicKey, { name: 'X25519' }, false, []);
            // Throws for low-order points, whose shared secret would be all zeros.
            shared = await crypto.subtle.deriveBits({ name: 'X25519', public: deviceKey }, this.#keyPair.privateKey, 256);
        } catch {
            throw fail.malformed('pub');
        }
        const info = concat(utf8('sightline pair key v1'), await sha256(bytes));
        const pairBytes = await hkdf(shared, this.#secret, info, 16);
        const pairKey = await crypto.subtle.importKey('raw', pairBytes, 'AES-GCM', false, ['decrypt', 'encrypt']);
        return {
            confirmation: await transcriptMac(this.#macKey, 'expert', bytes),
            pairKey,
            fingerprint: await fingerprint(identityPublicKey),
            identityPublicKey,
        };
    }
}

/** `"sightline media key v1" || KID (8 bytes)`: the AAD that pins a wrapped key to its KID. */
export function mediaKeyAad(kid) {
    return concat(utf8('sightline media key v1'), bigEndian(BigInt(kid), 8));
}

/** The 16-byte SFrame base key of a `media-key` message (nonce, key: b64u; kid: number). */
export async function unwrapMediaKey(pairKey, { kid, nonce, key }) {
    const nonceBytes = nonce instanceof Uint8Array ? nonce : fromB64u(nonce);
    const sealed = key instanceof Uint8Array ? key : fromB64u(key);
    if (!nonceBytes || nonceBytes.length !== 12 || !sealed || sealed.length !== 32) throw fail.unwrap();
    try {
        const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonceBytes, additionalData: mediaKeyAad(kid), tagLength: 128 }, pairKey, sealed);
        return new Uint8Array(plain);
    } catch {
        throw fail.unwrap();
    }
}

/** The device's side of `unwrapMediaKey`, for tests and a future expert-to-device key. */
export async function wrapMediaKey(pairKey, kid, baseKey) {
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: mediaKeyAad(kid), tagLength: 128 }, pairKey, asBytes(baseKey));
    return { kid, nonce, key: new Uint8Array(sealed) };
}
