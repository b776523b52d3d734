import Crypto
import Foundation

/// Seals one sender's frames under one KID with a counter that only goes up.
/// Noncopyable: a copy would reuse counters, and thus AES-GCM nonces, under the same key.
public struct SFrameSealer: ~Copyable, Sendable {
    public let maximumFrameSize: Int
    let cipher: SFrameCipher
    /// The counter the next frame gets; `nil` once every value has been used.
    public private(set) var nextCounter: UInt64?

    public var kid: UInt64 { cipher.kid }

    /// `startingCounter` lets a sender continue after counters it already used with this key.
    public init(
        kid: UInt64, baseKey: SymmetricKey, startingCounter: UInt64 = 0,
        maximumFrameSize: Int = SFrameCipher.defaultMaximumFrameSize
    ) {
        cipher = SFrameCipher(kid: kid, baseKey: baseKey)
        nextCounter = startingCounter
        self.maximumFrameSize = maximumFrameSize
    }

    /// Returns `header || ciphertext || tag`; `metadata` is authenticated but not sent.
    public mutating func seal(_ plaintext: some DataProtocol, metadata: some DataProtocol = Data()) throws(SFrameError) -> Data {
        guard plaintext.count <= maximumFrameSize else {
            throw .frameTooLarge(size: plaintext.count, limit: maximumFrameSize)
        }
        guard let counter = nextCounter else { throw .counterExhausted(kid: kid) }
        // Refuse to wrap: after UInt64.max the sender needs a new key (and KID).
        nextCounter = counter == .max ? nil : counter + 1
        return cipher.seal(counter: counter, plaintext: plaintext, metadata: metadata)
    }
}

/// Opens frames from any sender whose key is installed, refusing replays per KID.
/// Noncopyable so two copies cannot each accept the same frame once.
public struct SFrameOpener: ~Copyable, Sendable {
    /// Counters this far behind the highest accepted one are still accepted once; older ones
    /// are refused because the window can no longer tell whether they were seen.
    public static let replayWindowSize = Int(ReplayWindow.size)
    public let maximumFrameSize: Int
    private var receivers: [UInt64: (cipher: SFrameCipher, window: ReplayWindow)] = [:]

    public init(maximumFrameSize: Int = SFrameCipher.defaultMaximumFrameSize) {
        self.maximumFrameSize = maximumFrameSize
    }

    /// Installs (or replaces) the key for `kid` with a fresh replay window. Never reinstall a
    /// key already used: its old frames would be accepted again.
    public mutating func install(kid: UInt64, baseKey: SymmetricKey) {
        receivers[kid] = (SFrameCipher(kid: kid, baseKey: baseKey), ReplayWindow())
    }

    public mutating func remove(kid: UInt64) {
        receivers[kid] = nil
    }

    /// Authenticates and decrypts `frame`, returning its header and plaintext. The counter is
    /// recorded only after authentication, so forged frames cannot shift the replay window.
    public mutating func open(
        _ frame: some DataProtocol, metadata: some DataProtocol = Data()
    ) throws(SFrameError) -> (header: SFrameHeader, plaintext: Data) {
        let (header, headerLength) = try SFrameHeader.decode(from: frame)
        let payloadSize = frame.count - headerLength - SFrameCipher.tagLength
        guard payloadSize <= maximumFrameSize else { throw .frameTooLarge(size: payloadSize, limit: maximumFrameSize) }
        guard let receiver = receivers[header.kid] else { throw .unknownKeyID(header.kid) }
        try receiver.window.check(header)
        let plaintext = try receiver.cipher.open(
            counter: header.counter, headerLength: headerLength, frame: frame, metadata: metadata)
        receivers[header.kid]?.window.record(header.counter)
        return (header, plaintext)
    }
}

/// A sliding bitmap of the last 128 counters below and including the highest accepted one.
struct ReplayWindow: Sendable {
    static let size: UInt64 = 128
    /// The highest counter accepted so far; `nil` before the first frame.
    private(set) var highest: UInt64?
    /// Bit `i` set means counter `highest - i` was accepted.
    private var seen: UInt128 = 0

    func check(_ header: SFrameHeader) throws(SFrameError) {
        guard let highest, header.counter <= highest else { return }
        let age = highest - header.counter
        guard age < Self.size else { throw .counterTooOld(kid: header.kid, counter: header.counter) }
        guard seen & (1 << age) == 0 else { throw .replayed(kid: header.kid, counter: header.counter) }
    }

    mutating func record(_ counter: UInt64) {
        if let highest, counter <= highest {
            seen |= 1 << (highest - counter)
            return
        }
        let advance = highest.map { counter - $0 } ?? Self.size
        seen = advance >= Self.size ? 1 : seen << advance | 1
        highest = counter
    }
}
