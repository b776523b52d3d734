/// The one byte encoding that journal entries and checkpoints are hashed and signed in
/// (docs/ARCHIVE.md, "Canonical encoding"). A flat tag-length-value list rather than JSON: a
/// third party can re-implement it in a few lines and two encoders can never disagree about
/// key order, number formats or string escapes.
///
/// `record := field*`, `field := tag (1 byte) || length (4 bytes, big-endian) || value`. Tags
/// appear in ascending order; only list fields repeat their tag; absent optional fields are
/// left out. Values: text as UTF-8, integers as 8 bytes big-endian (two's complement when
/// signed), booleans as one byte 0 or 1, hashes and keys as raw bytes, nested records as
/// their own encoding.
public struct CanonicalWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    private var lastTag: UInt8 = 0

    public init() {}

    /// Appends one field. Tags must not go down: a caller that breaks the order is a bug in
    /// this module, not bad input.
    public mutating func field(_ tag: UInt8, _ value: some Collection<UInt8>) {
        precondition(tag >= lastTag, "canonical fields must be written in ascending tag order")
        lastTag = tag
        bytes.append(tag)
        let length = UInt32(value.count)
        withUnsafeBytes(of: length.bigEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: value)
    }

    public mutating func text(_ tag: UInt8, _ value: String?) {
        if let value { field(tag, Array(value.utf8)) }
    }

    public mutating func unsigned(_ tag: UInt8, _ value: UInt64?) {
        if let value { field(tag, withUnsafeBytes(of: value.bigEndian) { Array($0) }) }
    }

    public mutating func signed(_ tag: UInt8, _ value: Int64?) {
        if let value { field(tag, withUnsafeBytes(of: value.bigEndian) { Array($0) }) }
    }

    public mutating func flag(_ tag: UInt8, _ value: Bool?) {
        if let value { field(tag, [value ? 1 : 0]) }
    }

    public mutating func raw(_ tag: UInt8, _ value: [UInt8]?) {
        if let value { field(tag, value) }
    }

    public mutating func record(_ tag: UInt8, _ value: CanonicalWriter?) {
        if let value { field(tag, value.bytes) }
    }
}

/// Why bytes are not a valid canonical record.
public struct CanonicalDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Reads a record written by `CanonicalWriter`, strictly: truncated fields, tags out of order,
/// a scalar field given twice, unknown tags, wrong integer widths and invalid UTF-8 are all
/// refused, so that exactly one byte string decodes to each value.
public struct CanonicalReader: Sendable {
    private var fields: [(tag: UInt8, value: ArraySlice<UInt8>)] = []
    private var consumed: Set<UInt8> = []

    public init(_ bytes: some Collection<UInt8>) throws(CanonicalDecodingError) {
        let bytes = Array(bytes)
        var offset = 0
        var lastTag: UInt8 = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 5 else { throw CanonicalDecodingError("truncated field header at byte \(offset)") }
            let tag = bytes[offset]
            let length = bytes[(offset + 1)..<(offset + 5)].reduce(0) { $0 << 8 | Int($1) }
            offset += 5
            guard tag >= lastTag else { throw CanonicalDecodingError("field \(tag) comes after field \(lastTag)") }
            guard length <= bytes.count - offset else { throw CanonicalDecodingError("field \(tag) is truncated") }
            fields.append((tag, bytes[offset..<(offset + length)]))
            lastTag = tag
            offset += length
        }
    }

    private mutating func single(_ tag: UInt8) throws(CanonicalDecodingError) -> ArraySlice<UInt8>? {
        consumed.insert(tag)
        let matches = fields.filter { $0.tag == tag }
        guard matches.count <= 1 else { throw CanonicalDecodingError("field \(tag) appears \(matches.count) times") }
        return matches.first?.value
    }

    private static func require<T>(_ value: T?, _ tag: UInt8) throws(CanonicalDecodingError) -> T {
        guard let value else { throw CanonicalDecodingError("required field \(tag) is missing") }
        return value
    }

    public mutating func text(_ tag: UInt8) throws(CanonicalDecodingError) -> String? {
        guard let value = try single(tag) else { return nil }
        guard let text = String(validating: value, as: UTF8.self) else {
            throw CanonicalDecodingError("field \(tag) is not valid UTF-8")
        }
        return text
    }

    public mutating func requiredText(_ tag: UInt8) throws(CanonicalDecodingError) -> String {
        try Self.require(try text(tag), tag)
    }

    public mutating func unsigned(_ tag: UInt8) throws(CanonicalDecodingError) -> UInt64? {
        guard let value = try single(tag) else { return nil }
        guard value.count == 8 else { throw CanonicalDecodingError("field \(tag) must be 8 bytes, not \(value.count)") }
        return value.reduce(0) { $0 << 8 | UInt64($1) }
    }

    public mutating func requiredUnsigned(_ tag: UInt8) throws(CanonicalDecodingError) -> UInt64 {
        try Self.require(try unsigned(tag), tag)
    }

    public mutating func signed(_ tag: UInt8) throws(CanonicalDecodingError) -> Int64? {
        try unsigned(tag).map { Int64(bitPattern: $0) }
    }

    public mutating func requiredSigned(_ tag: UInt8) throws(CanonicalDecodingError) -> Int64 {
        try Self.require(try signed(tag), tag)
    }

    public mutating func flag(_ tag: UInt8) throws(CanonicalDecodingError) -> Bool? {
        guard let value = try single(tag) else { return nil }
        guard value.count == 1, value.first == 0 || value.first == 1 else {
            throw CanonicalDecodingError("field \(tag) must be one byte 0 or 1")
        }
        return value.first == 1
    }

    /// Raw bytes of a fixed length (hashes, keys); `length` nil accepts any length.
    public mutating func raw(_ tag: UInt8, length: Int? = nil) throws(CanonicalDecodingError) -> [UInt8]? {
        guard let value = try single(tag) else { return nil }
        if let length, value.count != length {
            throw CanonicalDecodingError("field \(tag) must be \(length) bytes, not \(value.count)")
        }
        return Array(value)
    }

    public mutating func requiredRaw(_ tag: UInt8, length: Int? = nil) throws(CanonicalDecodingError) -> [UInt8] {
        try Self.require(try raw(tag, length: length), tag)
    }

    public mutating func record(_ tag: UInt8) throws(CanonicalDecodingError) -> CanonicalReader? {
        guard let value = try single(tag) else { return nil }
        return try CanonicalReader(value)
    }

    public mutating func requiredRecord(_ tag: UInt8) throws(CanonicalDecodingError) -> CanonicalReader {
        try Self.require(try record(tag), tag)
    }

    /// Every value of a list field, in order.
    public mutating func list(_ tag: UInt8) -> [ArraySlice<UInt8>] {
        consumed.insert(tag)
        return fields.filter { $0.tag == tag }.map(\.value)
    }

    /// Refuses fields that the decoder did not ask for: an unknown field would otherwise be
    /// hashed and signed without anyone having read it.
    public func finish() throws(CanonicalDecodingError) {
        if let unknown = fields.first(where: { !consumed.contains($0.tag) }) {
            throw CanonicalDecodingError("unknown field \(unknown.tag)")
        }
    }
}
