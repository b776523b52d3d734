/**
 * Byte helpers shared by the viewer's modules: hex and base64 text, big-endian integers and
 * concatenation. The protocol puts binary fields in JSON as b64u and frames integers
 * big-endian; keeping every conversion here means each one is written (and checked) once.
 */

const textEncoder = new TextEncoder();

/** UTF-8 bytes of `text`: labels and session ids are hashed and MACed as UTF-8. */
export function utf8(text) {
    return textEncoder.encode(text);
}

/** One Uint8Array holding `parts` in order; WebCrypto wants contiguous buffers. */
export function concat(...parts) {
    const length = parts.reduce((sum, part) => sum + part.length, 0);
    const out = new Uint8Array(length);
    let offset = 0;
    for (const part of parts) {
        out.set(part, offset);
        offset += part.length;
    }
    return out;
}

/** A Uint8Array view of whatever binary shape the caller holds (ArrayBuffer, view, array). */
export function asBytes(value) {
    if (value instanceof Uint8Array) return value;
    if (value instanceof ArrayBuffer) return new Uint8Array(value);
    if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    if (Array.isArray(value)) return Uint8Array.from(value);
    throw new TypeError('expected bytes');
}

/** Lower-case hex; test vectors and logs use it. */
export function toHex(bytes) {
    return Array.from(asBytes(bytes), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** Bytes from hex, refusing odd lengths and non-hex characters rather than guessing. */
export function fromHex(hex) {
    if (hex.length % 2 !== 0 || /[^0-9a-fA-F]/.test(hex)) throw new TypeError('not hex');
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i += 1) out[i] = parseInt(hex.substr(2 * i, 2), 16);
    return out;
}

/** Standard base64 with padding, via the browser's binary-string codec. */
function toBase64Padded(bytes) {
    let binary = '';
    const view = asBytes(bytes);
    // Chunked so large frames do not exceed the argument limit of String.fromCharCode.
    for (let i = 0; i < view.length; i += 0x8000) {
        binary += String.fromCharCode(...view.subarray(i, i + 0x8000));
    }
    return btoa(binary);
}

/** Unpadded standard base64: the fingerprint format (`SHA256:` + this). */
export function toBase64Unpadded(bytes) {
    return toBase64Padded(bytes).replace(/=+$/, '');
}

/** base64url without padding (RFC 4648 section 5), every binary field of the protocol's JSON. */
export function toB64u(bytes) {
    return toBase64Unpadded(bytes).replace(/\+/g, '-').replace(/\//g, '_');
}

/**
 * Bytes from unpadded base64url. Returns null for anything else (padding, the standard
 * alphabet, stray characters, an impossible length), so a peer cannot smuggle in a value
 * that two decoders would read differently.
 */
export function fromB64u(text) {
    if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
    const standard = text.replace(/-/g, '+').replace(/_/g, '/');
    let binary;
    try {
        binary = atob(standard + '='.repeat((4 - (standard.length % 4)) % 4));
    } catch {
        return null;
    }
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) out[i] = binary.charCodeAt(i);
    // Reject non-canonical trailing bits: re-encoding must give the same text.
    return toB64u(out) === text ? out : null;
}

/** `value` as `count` big-endian bytes; `value` is a BigInt so 64-bit fields stay exact. */
export function bigEndian(value, count) {
    const out = new Uint8Array(count);
    let rest = BigInt(value);
    for (let i = count - 1; i >= 0; i -= 1) {
        out[i] = Number(rest & 0xffn);
        rest >>= 8n;
    }
    return out;
}

/** The big-endian unsigned integer in `bytes`, as a BigInt. */
export function readBigEndian(bytes) {
    let value = 0n;
    for (const byte of asBytes(bytes)) value = (value << 8n) | BigInt(byte);
    return value;
}

/** Constant-time comparison for values that must not leak where they differ. */
export function equalBytes(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
    return diff === 0;
}
