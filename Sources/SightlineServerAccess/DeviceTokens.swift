import Crypto
import Foundation

/// The provisioned devices: one `NAME TOKEN` line per device in a file only the server's user
/// may read (the relay and the archive server read the same format, docs/RELAY.md). Only
/// SHA-256 digests of the tokens stay in memory.
public struct DeviceTokens: Sendable {
    /// Shorter tokens are refused at load: a token is the device's only credential.
    public static let minimumTokenLength = 16

    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    private let entries: [(name: String, digest: SHA256Digest)]

    public var names: [String] { entries.map(\.name) }

    /// Parses token file text (see docs/RELAY.md): blank lines and lines starting with `#`
    /// are ignored; every other line is `NAME TOKEN`.
    public init(text: String, source: String = "token file") throws(LoadError) {
        var entries: [(name: String, digest: SHA256Digest)] = []
        var seenNames = Set<String>()
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let at = "\(source) line \(index + 1)"
            guard fields.count == 2 else {
                throw LoadError(description: "\(at): expected `NAME TOKEN`, found \(fields.count) fields; put comments on their own line starting with #")
            }
            let name = String(fields[0]), token = String(fields[1])
            guard name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }) else {
                throw LoadError(description: "\(at): device name \(name.debugDescription) may only use letters, digits, '.', '_' and '-'")
            }
            guard token.utf8.count >= Self.minimumTokenLength else {
                throw LoadError(description: "\(at): the token of \(name) is shorter than \(Self.minimumTokenLength) characters; generate one with `openssl rand -base64 32`")
            }
            guard seenNames.insert(name).inserted else {
                throw LoadError(description: "\(at): device \(name) is listed twice; keep one line per device")
            }
            let digest = SHA256.hash(data: Array(token.utf8))
            guard !entries.contains(where: { $0.digest == digest }) else {
                throw LoadError(description: "\(at): the token of \(name) is also another device's token; give every device its own")
            }
            entries.append((name, digest))
        }
        self.entries = entries
    }

    /// Reads the token file, refusing one that group or others may read or write: a token
    /// that leaked to another local user lets that user pose as the device.
    public init(contentsOf path: String) throws(LoadError) {
        let bytes: [UInt8]
        do {
            bytes = try SecretFile.read(path, what: "device token file")
        } catch {
            throw LoadError(description: error.description)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw LoadError(description: "device token file \(path) is not UTF-8 text")
        }
        try self.init(text: text, source: path)
        guard !entries.isEmpty else {
            throw LoadError(description: "device token file \(path) lists no device; add a `NAME TOKEN` line per device")
        }
    }

    /// The device name for `token`, or nil.
    ///
    /// Compares SHA-256 digests, with swift-crypto's constant-time digest equality, against
    /// every entry without stopping at a match: digests have a fixed length, so neither the
    /// token's length nor how many leading bytes match, nor which entry matched, shows in
    /// the response time. A plain `==` on strings returns at the first differing byte and
    /// would let a network attacker guess a token byte by byte.
    public func deviceName(for token: some StringProtocol) -> String? {
        let digest = SHA256.hash(data: Array(token.utf8))
        var match: String?
        for entry in entries where entry.digest == digest {
            match = entry.name
        }
        return match
    }

    /// The device for an `Authorization: Bearer TOKEN` header value.
    public func deviceName(forAuthorization header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return deviceName(for: parts[1].trimmingCharacters(in: .whitespaces))
    }
}
