import Crypto

/// How an evidence blob is encrypted at rest (docs/ARCHIVE.md, "Blob files"): a 12-byte
/// header, then AES-256-GCM chunks of `chunkSize` plaintext bytes each (the last one shorter or
/// empty), each stored as `nonce (12) || ciphertext || tag (16)`. The additional data of chunk
/// `i` is `header || i (8 bytes big-endian) || final (1 byte)`, so chunks cannot be reordered,
/// dropped, or cut off at a chunk boundary without the tag check failing. A multi-GB recording
/// is sealed and opened one chunk at a time.
public enum ChunkedBlobFormat {
    public static let magic = Array("SLBLOB01".utf8)
    public static let headerSize = 12
    public static let chunkOverhead = 28
    public static let defaultChunkSize = 1 << 20

    public static func header(chunkSize: Int) -> [UInt8] {
        magic + withUnsafeBytes(of: UInt32(chunkSize).bigEndian) { Array($0) }
    }

    static func additionalData(header: [UInt8], index: UInt64, final: Bool) -> [UInt8] {
        header + withUnsafeBytes(of: index.bigEndian) { Array($0) } + [final ? 1 : 0]
    }

    /// The size on disk of a blob of `plaintextSize` bytes.
    public static func sealedSize(plaintextSize: UInt64, chunkSize: Int = defaultChunkSize) -> UInt64 {
        let chunks = max(1, (plaintextSize + UInt64(chunkSize) - 1) / UInt64(chunkSize))
        return UInt64(headerSize) + plaintextSize + chunks * UInt64(chunkOverhead)
    }

    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let reason: String
        public init(_ reason: String) { self.reason = reason }
        public var description: String { reason }
    }
}

/// Seals a stream of plaintext into the chunked format while hashing it, holding at most one
/// chunk in memory. The SHA-256 of the plaintext becomes the blob's address.
public struct ChunkedBlobSealer: Sendable {
    private let key: SymmetricKey
    private let chunkSize: Int
    public let header: [UInt8]
    private var buffer: [UInt8] = []
    private var index: UInt64 = 0
    private var hasher = SHA256()
    public private(set) var plaintextSize: UInt64 = 0

    public init(key: SymmetricKey, chunkSize: Int = ChunkedBlobFormat.defaultChunkSize) {
        precondition(chunkSize > 0 && chunkSize <= Int(UInt32.max))
        self.key = key
        self.chunkSize = chunkSize
        header = ChunkedBlobFormat.header(chunkSize: chunkSize)
        buffer.reserveCapacity(chunkSize)
    }

    /// Takes more plaintext; `emit` receives each sealed chunk as soon as it is complete.
    public mutating func append(_ bytes: some Collection<UInt8>, emit: ([UInt8]) throws -> Void) throws {
        hasher.update(data: Array(bytes))
        plaintextSize += UInt64(bytes.count)
        var rest = bytes[...]
        while !rest.isEmpty {
            // A full buffer is sealed only once more data arrives: the last chunk must carry
            // the final flag, and only `finish` knows which one that is.
            if buffer.count == chunkSize {
                try emit(try seal(final: false))
            }
            let take = min(chunkSize - buffer.count, rest.count)
            buffer.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
        }
    }

    /// Seals the final chunk and returns the plaintext's address.
    public mutating func finish(emit: ([UInt8]) throws -> Void) throws -> BlobReference {
        try emit(try seal(final: true))
        return BlobReference(sha256: Array(hasher.finalize()), size: plaintextSize)
    }

    private mutating func seal(final: Bool) throws -> [UInt8] {
        let aad = ChunkedBlobFormat.additionalData(header: header, index: index, final: final)
        let box = try AES.GCM.seal(buffer, using: key, nonce: AES.GCM.Nonce(), authenticating: aad)
        index += 1
        buffer.removeAll(keepingCapacity: true)
        return Array(box.nonce) + Array(box.ciphertext) + Array(box.tag)
    }
}

/// Opens a sealed blob chunk by chunk, in order: give it the header, then each sealed chunk
/// of the length it asks for next.
public struct ChunkedBlobOpener: Sendable {
    private let key: SymmetricKey
    private let header: [UInt8]
    public let chunkCount: UInt64
    private let fullLength: UInt64
    private let lastLength: UInt64
    public private(set) var nextIndex: UInt64 = 0

    public init(key: SymmetricKey, header: [UInt8], sealedSize: UInt64) throws(ChunkedBlobFormat.Failure) {
        guard sealedSize >= UInt64(ChunkedBlobFormat.headerSize + ChunkedBlobFormat.chunkOverhead), header.count == ChunkedBlobFormat.headerSize else {
            throw ChunkedBlobFormat.Failure("the file is \(sealedSize) bytes, shorter than an empty blob")
        }
        guard Array(header.prefix(8)) == ChunkedBlobFormat.magic else { throw ChunkedBlobFormat.Failure("not a blob file (bad magic)") }
        let chunkSize = UInt64(header[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard chunkSize > 0 else { throw ChunkedBlobFormat.Failure("the header's chunk size is zero") }
        let body = sealedSize - UInt64(ChunkedBlobFormat.headerSize)
        let full = chunkSize + UInt64(ChunkedBlobFormat.chunkOverhead)
        var chunks = body / full
        var last = full
        if body % full != 0 {
            guard body % full >= UInt64(ChunkedBlobFormat.chunkOverhead) else {
                throw ChunkedBlobFormat.Failure("the file ends inside a chunk's nonce or tag (truncated?)")
            }
            chunks += 1
            last = body % full
        }
        self.key = key
        self.header = header
        chunkCount = chunks
        fullLength = full
        lastLength = last
    }

    /// How many sealed bytes the next chunk has; nil when all chunks were opened.
    public var nextSealedLength: Int? {
        guard nextIndex < chunkCount else { return nil }
        return Int(nextIndex == chunkCount - 1 ? lastLength : fullLength)
    }

    /// Authenticates and decrypts the next chunk.
    public mutating func open(_ sealed: [UInt8]) throws(ChunkedBlobFormat.Failure) -> [UInt8] {
        guard let expected = nextSealedLength, sealed.count == expected else { throw ChunkedBlobFormat.Failure("unexpected chunk length") }
        let final = nextIndex == chunkCount - 1
        let aad = ChunkedBlobFormat.additionalData(header: header, index: nextIndex, final: final)
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: sealed.prefix(12)), ciphertext: sealed.dropFirst(12).dropLast(16), tag: sealed.suffix(16))
            let plaintext = Array(try AES.GCM.open(box, using: key, authenticating: aad))
            nextIndex += 1
            return plaintext
        } catch {
            throw ChunkedBlobFormat.Failure("chunk \(nextIndex) fails authentication (changed, reordered, or wrong key)")
        }
    }

    /// Opens a whole blob; `read(n)` must return exactly the next `n` bytes.
    public static func open(
        key: SymmetricKey, sealedSize: UInt64, read: (Int) throws -> [UInt8], plaintext: ([UInt8]) throws -> Void
    ) throws {
        guard sealedSize >= UInt64(ChunkedBlobFormat.headerSize) else {
            throw ChunkedBlobFormat.Failure("the file is \(sealedSize) bytes, shorter than an empty blob")
        }
        var opener = try ChunkedBlobOpener(key: key, header: try read(ChunkedBlobFormat.headerSize), sealedSize: sealedSize)
        while let length = opener.nextSealedLength {
            try plaintext(try opener.open(try read(length)))
        }
    }
}

/// Per-case data keys (AES-256) are stored only wrapped: AES-256-GCM under the device's
/// archive key, `combined` form `nonce (12) || ciphertext (32) || tag (16)`.
public enum CaseKeyWrapping {
    /// Wraps a case's data key under the device's archive key, bound to the case id so a
    /// wrapped key cannot be moved to another case.
    public static func wrap(dataKey: SymmetricKey, archiveKey: SymmetricKey, caseID: String) throws -> [UInt8] {
        let box = try AES.GCM.seal(dataKey.withUnsafeBytes { Array($0) }, using: archiveKey, authenticating: keyWrapContext(caseID))
        guard let combined = box.combined else { throw ChunkedBlobFormat.Failure("sealed key has no combined form") }
        return Array(combined)
    }

    public static func unwrap(_ wrapped: [UInt8], archiveKey: SymmetricKey, caseID: String) throws(ChunkedBlobFormat.Failure) -> SymmetricKey {
        do {
            let box = try AES.GCM.SealedBox(combined: wrapped)
            let raw = try AES.GCM.open(box, using: archiveKey, authenticating: keyWrapContext(caseID))
            guard raw.count == 32 else { throw ChunkedBlobFormat.Failure("unwrapped key has \(raw.count) bytes") }
            return SymmetricKey(data: raw)
        } catch {
            throw ChunkedBlobFormat.Failure("the case's data key cannot be unwrapped: its row was changed, or this is not the archive key it was made with")
        }
    }

    static func keyWrapContext(_ caseID: String) -> [UInt8] { Array("sightline case key v1\n".utf8) + Array(caseID.utf8) }
}
