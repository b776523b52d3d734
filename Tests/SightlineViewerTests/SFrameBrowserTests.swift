import Crypto
import Foundation
import SightlineCore
import SightlineTesting
import Testing

/// RFC 9605 Appendix C, the header cases and the 0x0004 case, copied from the published JSON.
struct SFrameTestVectors: Decodable {
    struct Header: Decodable {
        let kid: UInt64
        let ctr: UInt64
        let encoded: String
    }

    struct Suite: Decodable {
        let cipher_suite: UInt16
        let kid: UInt64
        let ctr: UInt64
        let base_key: String
        let sframe_key_label: String
        let sframe_salt_label: String
        let sframe_key: String
        let sframe_salt: String
        let metadata: String
        let nonce: String
        let aad: String
        let pt: String
        let ct: String
    }

    let header: [Header]
    let sframe: [Suite]

    static func load() throws -> SFrameTestVectors {
        try JSONDecoder().decode(SFrameTestVectors.self, from: ViewerFiles.resource("sframe-rfc9605-suite4", "json"))
    }
}

extension ViewerBrowserTests {
    @Suite("viewer SFrame in Chromium")
    struct SFrameBrowserTests {
        @Test("every RFC 9605 header vector encodes and decodes; every proper prefix is truncated")
        func headerVectors() async throws {
            let vectors = try SFrameTestVectors.load()
            #expect(vectors.header.count == 289)
            // 64-bit values travel as decimal strings: JSON numbers would lose precision in JavaScript.
            let cases: WebDriverValue = .array(vectors.header.map { ["kid": .string(String($0.kid)), "ctr": .string(String($0.ctr)), "encoded": .string($0.encoded)] })
            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let failures = try await lab.run("""
                    const { sframe, bytes } = lab;
                    const failures = [];
                    for (const v of arguments[0]) {
                        const kid = BigInt(v.kid), ctr = BigInt(v.ctr);
                        const encoded = bytes.toHex(sframe.encodeHeader(kid, ctr));
                        if (encoded !== v.encoded) failures.push(`encode ${v.kid}/${v.ctr}: ${encoded}`);
                        const wire = bytes.fromHex(v.encoded);
                        const decoded = sframe.decodeHeader(bytes.concat(wire, Uint8Array.of(0xaa, 0xbb)));
                        if (decoded.kid !== kid || decoded.counter !== ctr || decoded.length !== wire.length) failures.push(`decode ${v.encoded}`);
                        for (let n = 0; n < wire.length; n += 1) {
                            try { sframe.decodeHeader(wire.subarray(0, n)); failures.push(`prefix ${n} of ${v.encoded} decoded`); }
                            catch (e) { if (e.code !== 'truncated-header') failures.push(`prefix ${n} of ${v.encoded}: ${e.code}`); }
                        }
                    }
                    return failures;
                    """, cases)
                #expect(failures == [], "\(failures)")
            }
        }

        @Test("non-minimal headers are refused exactly like the Swift core refuses them")
        func nonMinimalHeaders() async throws {
            let samples: [[UInt8]] = [[0x80, 0x05], [0x90, 0x00, 0x12], [0x08, 0x03], [0x09, 0x00, 0xFF], [0x8F, 0, 0, 0, 0, 0, 0, 0, 9]]
            for sample in samples {
                #expect(throws: SFrameError.invalidHeader) { _ = try SFrameHeader.decode(from: sample) }
            }
            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let codes = try await lab.run("""
                    return arguments[0].map((h) => {
                        try { lab.sframe.decodeHeader(lab.bytes.fromHex(h)); return 'accepted'; } catch (e) { return e.code; }
                    });
                    """, .array(samples.map { .string(hex($0)) }))
                #expect(codes == .array(samples.map { _ in "invalid-header" }))
            }
        }

        @Test("the 0x0004 vector: derived key, salt, nonce, sealed frame and its opening match the RFC")
        func suiteVector() async throws {
            let vectors = try SFrameTestVectors.load()
            #expect(vectors.sframe.count == 1)
            for v in vectors.sframe {
                #expect(v.cipher_suite == 0x0004)
                let vector: WebDriverValue = [
                    "kid": .string(String(v.kid)), "ctr": .string(String(v.ctr)), "baseKey": .string(v.base_key),
                    "keyLabel": .string(v.sframe_key_label), "saltLabel": .string(v.sframe_salt_label),
                    "key": .string(v.sframe_key), "salt": .string(v.sframe_salt), "metadata": .string(v.metadata),
                    "nonce": .string(v.nonce), "aad": .string(v.aad), "pt": .string(v.pt), "ct": .string(v.ct),
                ]
                try await ViewerLab.run { lab in
                    try await lab.openHarness()
                    let result = try await lab.run("""
                        const { sframe, bytes } = lab;
                        const v = arguments[0];
                        const kid = BigInt(v.kid), ctr = BigInt(v.ctr);
                        const material = await sframe.deriveKeyMaterial(bytes.fromHex(v.baseKey), kid);
                        const cipher = await sframe.SFrameCipher.create(kid, bytes.fromHex(v.baseKey));
                        const header = sframe.encodeHeader(kid, ctr);
                        const sealed = await cipher.seal(ctr, bytes.fromHex(v.pt), bytes.fromHex(v.metadata));
                        const sealer = new sframe.SFrameSealer(cipher, { startingCounter: ctr });
                        const sealedBySealer = await sealer.seal(bytes.fromHex(v.pt), bytes.fromHex(v.metadata));
                        const opener = new sframe.SFrameOpener();
                        await opener.install(kid, bytes.fromHex(v.baseKey));
                        const opened = await opener.open(bytes.fromHex(v.ct), bytes.fromHex(v.metadata));
                        return {
                            keyLabel: bytes.toHex(sframe.label('key', kid)),
                            saltLabel: bytes.toHex(sframe.label('salt', kid)),
                            key: bytes.toHex(material.key), salt: bytes.toHex(material.salt),
                            nonce: bytes.toHex(cipher.nonce(ctr)),
                            aad: bytes.toHex(bytes.concat(header, bytes.fromHex(v.metadata))),
                            ct: bytes.toHex(sealed), ctBySealer: bytes.toHex(sealedBySealer),
                            pt: bytes.toHex(opened.plaintext),
                            openedKid: String(opened.kid), openedCtr: String(opened.counter),
                        };
                        """, vector)
                    #expect(result["keyLabel"]?.string == v.sframe_key_label)
                    #expect(result["saltLabel"]?.string == v.sframe_salt_label)
                    #expect(result["key"]?.string == v.sframe_key)
                    #expect(result["salt"]?.string == v.sframe_salt)
                    #expect(result["nonce"]?.string == v.nonce)
                    #expect(result["aad"]?.string == v.aad)
                    #expect(result["ct"]?.string == v.ct)
                    #expect(result["ctBySealer"]?.string == v.ct)
                    #expect(result["pt"]?.string == v.pt)
                    #expect(result["openedKid"]?.string == String(v.kid))
                    #expect(result["openedCtr"]?.string == String(v.ctr))
                }
            }
        }

        @Test("truncated, tampered, replayed, too old, unknown KID and oversized frames are refused with typed errors")
        func rejections() async throws {
            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let result = try await lab.run("""
                    const { sframe, bytes } = lab;
                    const baseKey = crypto.getRandomValues(new Uint8Array(16));
                    const metadata = Uint8Array.of(1, 1, 1, 0);
                    const sealer = await sframe.SFrameSealer.create(7n, baseKey);
                    const frames = [];
                    for (let i = 0; i < 200; i += 1) frames.push(await sealer.seal(Uint8Array.of(i, i, i), metadata));
                    const opener = new sframe.SFrameOpener({ maximumFrameSize: 64 });
                    await opener.install(7n, baseKey);
                    const code = async (frame, meta = metadata) => {
                        try { await opener.open(frame, meta); return 'ok'; } catch (e) { return e.code ?? String(e); }
                    };
                    const flip = (frame, index, mask = 0x01) => { const copy = frame.slice(); copy[index] ^= mask; return copy; };
                    const out = {};
                    out.first = await code(frames[150]);
                    out.replay = await code(frames[150]);
                    out.inWindow = await code(frames[30]);        // 120 below the highest: accepted once
                    out.inWindowAgain = await code(frames[30]);
                    out.tooOld = await code(frames[22]);          // 128 below: outside the window
                    out.truncatedHeader = await code(frames[151].subarray(0, 1));  // config byte says a CTR byte follows
                    out.truncatedCiphertext = await code(frames[151].subarray(0, 2 + 15));
                    out.tamperedHeader = await code(flip(frames[151], 1, 0x20)); // CTR 151 becomes 183: new, but forged
                    out.tamperedBody = await code(flip(frames[151], 3));
                    out.tamperedTag = await code(flip(frames[151], frames[151].length - 1));
                    out.tamperedMetadata = await code(frames[151], Uint8Array.of(1, 1, 0, 0));
                    out.afterForgeries = await code(frames[151]); // forgeries did not move the window
                    out.unknownKid = await code((await (await sframe.SFrameSealer.create(8n, baseKey)).seal(Uint8Array.of(1))));
                    out.tooLarge = await code(await (await sframe.SFrameSealer.create(7n, baseKey, { startingCounter: 1000n })).seal(new Uint8Array(65)));
                    try { await (await sframe.SFrameSealer.create(9n, baseKey, { maximumFrameSize: 4 })).seal(new Uint8Array(5)); out.sealTooLarge = 'ok'; }
                    catch (e) { out.sealTooLarge = e.code; }
                    const last = await sframe.SFrameSealer.create(9n, baseKey, { startingCounter: (1n << 64n) - 1n });
                    await last.seal(Uint8Array.of(1));
                    try { await last.seal(Uint8Array.of(1)); out.exhausted = 'ok'; } catch (e) { out.exhausted = e.code; }
                    out.errorClass = (await opener.open(frames[150]).catch((e) => e)) instanceof sframe.SFrameError;
                    out.slid = await code(frames[199]);
                    out.concurrentReplay = (await Promise.allSettled([opener.open(frames[198], metadata), opener.open(frames[198], metadata)]))
                        .map((r) => r.status === 'fulfilled' ? 'ok' : r.reason.code).sort();
                    return out;
                    """)
                let expected: [String: WebDriverValue] = [
                    "first": "ok", "replay": "replayed", "inWindow": "ok", "inWindowAgain": "replayed", "tooOld": "too-old",
                    "truncatedHeader": "truncated-header", "truncatedCiphertext": "truncated-ciphertext",
                    "tamperedHeader": "authentication-failed", "tamperedBody": "authentication-failed",
                    "tamperedTag": "authentication-failed", "tamperedMetadata": "authentication-failed", "afterForgeries": "ok",
                    "unknownKid": "unknown-kid", "tooLarge": "frame-too-large", "sealTooLarge": "frame-too-large",
                    "exhausted": "counter-exhausted", "errorClass": true, "slid": "ok", "concurrentReplay": ["ok", "replayed"],
                ]
                for (key, value) in expected {
                    #expect(result[key] == value, "\(key)")
                }
            }
        }

        @Test("frames sealed by the Swift SFrameSealer open in the browser, and the browser's open in Swift")
        func interopWithSwiftCore() async throws {
            let baseKey = SymmetricKey(size: .bits128)
            let baseKeyHex = baseKey.withUnsafeBytes { hex($0) }
            let kid = MediaKeyID(epoch: 3, sender: 0).kid
            let metadata: [UInt8] = [1, 1, 1, 0]
            // Counters beyond one byte, and payloads from empty to larger than a typical frame.
            var sealer = SFrameSealer(kid: kid, baseKey: baseKey, startingCounter: 250)
            let payloads: [[UInt8]] = [[], [0x42], Array(repeating: 0xA5, count: 1000), (0..<70_000).map { UInt8(truncatingIfNeeded: $0 * 7) }]
            var sealed: [WebDriverValue] = []
            for payload in payloads { sealed.append(.hex(try sealer.seal(payload, metadata: metadata))) }

            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let result = try await lab.run("""
                    const { sframe, bytes } = lab;
                    const [keyHex, kid, metaHex, frames] = arguments;
                    const opener = new sframe.SFrameOpener();
                    await opener.install(BigInt(kid), bytes.fromHex(keyHex));
                    const opened = [];
                    for (const frame of frames) {
                        const o = await opener.open(bytes.fromHex(frame), bytes.fromHex(metaHex));
                        opened.push({ ctr: String(o.counter), kid: String(o.kid), pt: bytes.toHex(o.plaintext) });
                    }
                    const sealer = await sframe.SFrameSealer.create(BigInt(kid) + 1n, bytes.fromHex(keyHex), { startingCounter: 7n });
                    const fromBrowser = [];
                    for (const pt of ['', '00', 'ff'.repeat(5000)]) fromBrowser.push(bytes.toHex(await sealer.seal(bytes.fromHex(pt), bytes.fromHex(metaHex))));
                    return { opened, fromBrowser };
                    """, .string(baseKeyHex), .string(String(kid)), .hex(metadata), .array(sealed))

                let opened = try #require(result["opened"]?.array)
                #expect(opened.count == payloads.count)
                for (index, payload) in payloads.enumerated() {
                    #expect(opened[index]["pt"]?.string == hex(payload))
                    #expect(opened[index]["ctr"]?.string == String(250 + index))
                    #expect(opened[index]["kid"]?.string == String(kid))
                }

                var opener = SFrameOpener()
                opener.install(kid: kid + 1, baseKey: baseKey)
                let fromBrowser = try #require(result["fromBrowser"]?.array)
                let expected: [[UInt8]] = [[], [0], Array(repeating: 0xFF, count: 5000)]
                for (index, frame) in fromBrowser.enumerated() {
                    let (header, plaintext) = try opener.open(bytes(hex: try #require(frame.string)), metadata: metadata)
                    #expect(header == SFrameHeader(kid: kid + 1, counter: UInt64(7 + index)))
                    #expect(Array(plaintext) == expected[index])
                }
                // The envelope is authenticated: a relay flipping the keyframe flag breaks the frame.
                var fresh = SFrameOpener()
                fresh.install(kid: kid + 1, baseKey: baseKey)
                #expect(throws: SFrameError.authenticationFailed) {
                    _ = try fresh.open(bytes(hex: fromBrowser[0].string ?? ""), metadata: [1, 1, 0, 0])
                }
            }
        }
    }
}
