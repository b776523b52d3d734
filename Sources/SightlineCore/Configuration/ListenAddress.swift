/// `HOST:PORT` as written in the configuration; IPv6 hosts in brackets (`[::1]:9464`).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init?(_ text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var isLoopback: Bool { Self.isLoopbackHost(host) }

    /// `localhost`, `::1` (bracketed or not) or an address in 127.0.0.0/8.
    public static func isLoopbackHost(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.") && host.split(separator: ".").count == 4
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public enum GroupName {
    /// The portable POSIX user/group name rule as enforced by shadow-utils' `useradd`.
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 32 else { return false }
        let lower = "abcdefghijklmnopqrstuvwxyz"
        guard lower.unicodeScalars.contains(first) || first == "_" else { return false }
        return name.unicodeScalars.allSatisfy { lower.unicodeScalars.contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
    }
}
