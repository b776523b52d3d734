import Crypto
import Foundation
import Testing
@testable import SightlineCore

private func sframeBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        bytes.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

/// The `SFrameError` that `body` threw, or nil if it succeeded.
private func sframeFailure(_ body: () throws -> Void) -> SFrameError? {
    do {
        try body()
        return nil
    } catch let error as SFrameError {
        return error
    } catch {
        Issue.record("not an SFrameError: \(error)")
        return nil
    }
}

@Suite("SFrame header")
struct SFrameHeaderTests {
    @Test("every RFC 9605 header vector encodes to its published bytes and decodes back")
    func vectors() throws {
        #expect(SFrameVectors.headers.count == 289)
        for vector in SFrameVectors.headers {
            let bytes = sframeBytes(vector.encoded)
            let header = SFrameHeader(kid: vector.kid, counter: vector.counter)
            #expect(header.encoded == bytes, "kid \(vector.kid) ctr \(vector.counter)")
            let decoded = try SFrameHeader.decode(from: bytes + [0xAA, 0xBB])
            #expect(decoded.header == header)
            #expect(decoded.length == bytes.count)
            #expect(bytes.count <= SFrameHeader.maximumLength)
        }
    }

    @Test("every proper prefix of every header vector is a truncated header")
    func truncated() {
        for vector in SFrameVectors.headers {
            let bytes = sframeBytes(vector.encoded)
            for length in 0..<bytes.count {
                #expect(sframeFailure { _ = try SFrameHeader.decode(from: bytes.prefix(length)) } == .truncatedHeader)
            }
        }
    }

    @Test("non-minimal encodings are refused", arguments: [
        [0x80, 0x05] as [UInt8],  // KID 5 in an extended byte
        [0x90, 0x00, 0x12],  // KID 0x12 with a leading zero byte
        [0x08, 0x03],  // CTR 3 in an extended byte
        [0x09, 0x00, 0xFF],  // CTR 0xFF with a leading zero byte
    ])
    func nonMinimal(bytes: [UInt8]) {
        #expect(sframeFailure { _ = try SFrameHeader.decode(from: bytes) } == .invalidHeader)
    }
}

@Suite("SFrame cipher suite 0x0004")
struct SFrameCipherTests {
    @Test("RFC 9605 vector: labels, secret, key, salt, nonce, AAD, ciphertext and decryption")
    func vector() throws {
        #expect(SFrameVectors.suite4.count == 1)
        for vector in SFrameVectors.suite4 {
            #expect(vector.cipherSuite == SFrameCipher.suite)
            let baseKey = SymmetricKey(data: sframeBytes(vector.baseKey))
            let metadata = sframeBytes(vector.metadata)
            #expect(SFrameCipher.label("key", kid: vector.kid) == sframeBytes(vector.sframeKeyLabel))
            #expect(SFrameCipher.label("salt", kid: vector.kid) == sframeBytes(vector.sframeSaltLabel))
            #expect(Array(SFrameCipher.secret(baseKey: baseKey)) == sframeBytes(vector.sframeSecret))

            let cipher = SFrameCipher(kid: vector.kid, baseKey: baseKey)
            #expect(cipher.key.withUnsafeBytes { Array($0) } == sframeBytes(vector.sframeKey))
            #expect(cipher.salt == sframeBytes(vector.sframeSalt))
            #expect(cipher.nonce(counter: vector.counter) == sframeBytes(vector.nonce))
            let header = SFrameHeader(kid: vector.kid, counter: vector.counter).encoded
            #expect(Array(SFrameCipher.aad(header: header, metadata: metadata)) == sframeBytes(vector.aad))

            let frame = cipher.seal(counter: vector.counter, plaintext: sframeBytes(vector.plaintext), metadata: metadata)
            #expect(Array(frame) == sframeBytes(vector.ciphertext))

            var sealer = SFrameSealer(kid: vector.kid, baseKey: baseKey, startingCounter: vector.counter)
            #expect(Array(try sealer.seal(sframeBytes(vector.plaintext), metadata: metadata)) == sframeBytes(vector.ciphertext))

            var opener = SFrameOpener()
            opener.install(kid: vector.kid, baseKey: baseKey)
            let opened = try opener.open(sframeBytes(vector.ciphertext), metadata: metadata)
            #expect(opened.header == SFrameHeader(kid: vector.kid, counter: vector.counter))
            #expect(Array(opened.plaintext) == sframeBytes(vector.plaintext))
        }
    }
}

@Suite("SFrame sealer and opener")
struct SFrameContextTests {
    static let vector = SFrameVectors.suite4[0]
    static let baseKey = SymmetricKey(data: sframeBytes(vector.baseKey))
    static let metadata = sframeBytes(vector.metadata)
    static let frame = sframeBytes(vector.ciphertext)

    static func opener(maximumFrameSize: Int = SFrameCipher.defaultMaximumFrameSize) -> SFrameOpener {
        var opener = SFrameOpener(maximumFrameSize: maximumFrameSize)
        opener.install(kid: vector.kid, baseKey: baseKey)
        return opener
    }

    @Test("frames round-trip with increasing counters; wrong metadata fails without consuming the counter")
    func roundTrip() throws {
        var sealer = SFrameSealer(kid: 7, baseKey: Self.baseKey)
        var opener = SFrameOpener()
        opener.install(kid: 7, baseKey: Self.baseKey)
        for counter in UInt64(0)..<3 {
            let plaintext = Data("frame \(counter)".utf8)
            let frame = try sealer.seal(plaintext, metadata: [0x01])
            #expect(sframeFailure { _ = try opener.open(frame, metadata: [0x02]) } == .authenticationFailed)
            let opened = try opener.open(frame, metadata: [0x01])
            #expect(opened.header == SFrameHeader(kid: 7, counter: counter))
            #expect(opened.plaintext == plaintext)
        }
        #expect(sealer.nextCounter == 3)
    }

    @Test("every proper prefix of a valid frame is refused; the frame still opens afterwards")
    func truncated() throws {
        var opener = Self.opener()
        for length in 0..<Self.frame.count {
            let expected: SFrameError =
                switch length {
                case ..<5: .truncatedHeader
                case ..<(5 + 16): .truncatedCiphertext
                default: .authenticationFailed
                }
            #expect(sframeFailure { _ = try opener.open(Self.frame.prefix(length), metadata: Self.metadata) } == expected)
        }
        #expect(try opener.open(Self.frame, metadata: Self.metadata).header.counter == Self.vector.counter)
    }

    @Test("frames above the maximum size are refused by the sealer and the opener")
    func oversized() throws {
        #expect(SFrameCipher.defaultMaximumFrameSize == 1 << 20)
        var unlimited = SFrameSealer(kid: 7, baseKey: Self.baseKey)
        let large = [UInt8](repeating: 0x5A, count: (1 << 20) + 1)
        #expect(sframeFailure { _ = try unlimited.seal(large) } == .frameTooLarge(size: (1 << 20) + 1, limit: 1 << 20))

        var small = SFrameSealer(kid: 7, baseKey: Self.baseKey, maximumFrameSize: 1024)
        _ = try small.seal([UInt8](repeating: 0, count: 1024))
        #expect(sframeFailure { _ = try small.seal([UInt8](repeating: 0, count: 1025)) } == .frameTooLarge(size: 1025, limit: 1024))
        #expect(small.nextCounter == 1)

        var big = SFrameSealer(kid: 7, baseKey: Self.baseKey, maximumFrameSize: 4096)
        let frame = try big.seal([UInt8](repeating: 0, count: 1025))
        var opener = SFrameOpener(maximumFrameSize: 1024)
        opener.install(kid: 7, baseKey: Self.baseKey)
        #expect(sframeFailure { _ = try opener.open(frame) } == .frameTooLarge(size: 1025, limit: 1024))
    }

    @Test("the same frame opened twice is a replay")
    func replayed() throws {
        var opener = Self.opener()
        _ = try opener.open(Self.frame, metadata: Self.metadata)
        #expect(
            sframeFailure { _ = try opener.open(Self.frame, metadata: Self.metadata) }
                == .replayed(kid: Self.vector.kid, counter: Self.vector.counter))
    }

    @Test("out-of-order counters inside the window are accepted once; older ones are too old")
    func window() throws {
        #expect(SFrameOpener.replayWindowSize == 128)
        var sealer = SFrameSealer(kid: 9, baseKey: Self.baseKey)
        let frames = try (0..<300).map { _ in try sealer.seal([0x42]) }
        var opener = SFrameOpener()
        opener.install(kid: 9, baseKey: Self.baseKey)
        func attempt(_ counter: Int) -> SFrameError? {
            sframeFailure { _ = try opener.open(frames[counter]) }
        }

        #expect(attempt(200) == nil)
        #expect(attempt(73) == nil)  // 127 behind: the oldest the window still covers
        #expect(attempt(72) == .counterTooOld(kid: 9, counter: 72))
        #expect(attempt(150) == nil)
        #expect(attempt(150) == .replayed(kid: 9, counter: 150))
        #expect(attempt(199) == nil)
        #expect(attempt(250) == nil)  // slides the window forward by 50
        #expect(attempt(200) == .replayed(kid: 9, counter: 200))
        #expect(attempt(150) == .replayed(kid: 9, counter: 150))
        #expect(attempt(122) == .counterTooOld(kid: 9, counter: 122))
        #expect(attempt(123) == nil)
        #expect(attempt(123) == .replayed(kid: 9, counter: 123))
        #expect(attempt(251) == nil)
        #expect(attempt(251) == .replayed(kid: 9, counter: 251))
    }

    @Test("a jump past the whole window forgets everything older")
    func jump() throws {
        var sealer = SFrameSealer(kid: 9, baseKey: Self.baseKey)
        let frames = try (0..<300).map { _ in try sealer.seal([0x42]) }
        var opener = SFrameOpener()
        opener.install(kid: 9, baseKey: Self.baseKey)
        _ = try opener.open(frames[0])
        _ = try opener.open(frames[299])
        #expect(sframeFailure { _ = try opener.open(frames[0]) } == .counterTooOld(kid: 9, counter: 0))
        #expect(sframeFailure { _ = try opener.open(frames[172]) } == nil)
        #expect(sframeFailure { _ = try opener.open(frames[299]) } == .replayed(kid: 9, counter: 299))
    }

    @Test("flipping any bit pattern in any byte of the frame or metadata never opens")
    func tampered() throws {
        var opener = Self.opener()
        for index in Self.frame.indices {
            for mask: UInt8 in [0x01, 0x80, 0xFF] {
                var frame = Self.frame
                frame[index] ^= mask
                let error = sframeFailure { _ = try opener.open(frame, metadata: Self.metadata) }
                #expect(error != nil, "byte \(index) mask \(mask) opened")
                if index >= 3 {
                    // CTR and ciphertext flips keep the KID, so only the tag can catch them.
                    #expect(error == .authenticationFailed, "byte \(index) mask \(mask)")
                } else {
                    // Config and KID flips may name another KID or a non-minimal header instead.
                    switch error {
                    case nil, .authenticationFailed?, .unknownKeyID(_)?, .invalidHeader?: break
                    case let other?: Issue.record("byte \(index) mask \(mask): unexpected \(other)")
                    }
                }
            }
        }
        for index in Self.metadata.indices {
            var metadata = Self.metadata
            metadata[index] ^= 0x01
            #expect(sframeFailure { _ = try opener.open(Self.frame, metadata: metadata) } == .authenticationFailed)
        }
        #expect(try opener.open(Self.frame, metadata: Self.metadata).plaintext == Data(sframeBytes(Self.vector.plaintext)))
    }

    @Test("frames for a KID without a key, or under another key, are refused")
    func unknownKeyID() throws {
        var opener = SFrameOpener()
        #expect(sframeFailure { _ = try opener.open(Self.frame, metadata: Self.metadata) } == .unknownKeyID(Self.vector.kid))
        opener.install(kid: Self.vector.kid + 1, baseKey: Self.baseKey)
        #expect(sframeFailure { _ = try opener.open(Self.frame, metadata: Self.metadata) } == .unknownKeyID(Self.vector.kid))
        opener.install(kid: Self.vector.kid, baseKey: SymmetricKey(size: .bits128))
        #expect(sframeFailure { _ = try opener.open(Self.frame, metadata: Self.metadata) } == .authenticationFailed)
        opener.install(kid: Self.vector.kid, baseKey: Self.baseKey)
        _ = try opener.open(Self.frame, metadata: Self.metadata)
        opener.remove(kid: Self.vector.kid)
        #expect(sframeFailure { _ = try opener.open(Self.frame, metadata: Self.metadata) } == .unknownKeyID(Self.vector.kid))
    }

    @Test("the sealer uses the last counter once and then refuses to wrap")
    func counterExhausted() throws {
        var sealer = SFrameSealer(kid: 0x1234, baseKey: Self.baseKey, startingCounter: .max - 1)
        var opener = SFrameOpener()
        opener.install(kid: 0x1234, baseKey: Self.baseKey)
        #expect(try opener.open(sealer.seal([1])).header.counter == .max - 1)
        #expect(try opener.open(sealer.seal([2])).header.counter == .max)
        #expect(sealer.nextCounter == nil)
        #expect(sframeFailure { _ = try sealer.seal([3]) } == .counterExhausted(kid: 0x1234))
        #expect(sframeFailure { _ = try sealer.seal([3]) } == .counterExhausted(kid: 0x1234))
    }
}
