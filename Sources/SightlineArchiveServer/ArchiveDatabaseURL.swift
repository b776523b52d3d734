import Foundation

/// Where the organisation-wide archive database is, parsed from `--database` in libpq's URL
/// forms: `postgres://USER@HOST[:PORT]/DB[?sslmode=disable|prefer|require][&sslrootcert=FILE]`
/// over TCP, or `postgresql:///DB?host=/run/postgresql[&user=USER]` on a unix socket. A
/// password in the URL is refused: it would show in `ps` and in the unit file; it comes from a
/// 0600 file instead. Unlike libpq's `require`, TLS here always verifies the server's
/// certificate and host name: against the system's trust store, or against `sslrootcert` (PEM)
/// for an organisation's own CA.
public struct ArchiveDatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The socket file itself (DIR/.s.PGSQL.PORT, as libpq names it).
        case unixSocket(path: String)
    }

    public enum TLSMode: String, Sendable, Equatable {
        case disable, prefer, require
    }

    public var endpoint: Endpoint
    public var user: String
    public var database: String
    public var tls: TLSMode
    /// PEM certificates to trust for the database's TLS instead of the system store (`sslrootcert`).
    public var rootCertificates: String?

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    public init(endpoint: Endpoint, user: String, database: String, tls: TLSMode, rootCertificates: String? = nil) {
        self.endpoint = endpoint
        self.user = user
        self.database = database
        self.tls = tls
        self.rootCertificates = rootCertificates
    }

    /// - Parameter defaultUser: the role when the URL names none (libpq takes the OS user).
    public init(_ text: String, defaultUser: String) throws(ParseError) {
        func fail(_ why: String) -> ParseError {
            ParseError(description: "--database \(Self.redacting(text)): \(why); expected postgres://USER@HOST[:PORT]/DB or postgresql:///DB?host=/run/postgresql")
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw fail("not a postgres:// URL")
        }
        if components.password != nil {
            throw fail("a password does not belong in the URL (it would show in ps and the unit file); put it in a 0600 file for --database-password-file")
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let unknown = Set(query.keys).subtracting(["host", "port", "user", "dbname", "sslmode", "sslrootcert"])
        if let name = unknown.sorted().first { throw fail("unknown parameter \(name)") }
        let database = query["dbname"] ?? String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw fail("name the database in the path, e.g. /sightline") }
        let port = components.port ?? query["port"].flatMap { Int($0) } ?? 5432
        guard (1...65535).contains(port) else { throw fail("port \(port) is out of range") }
        let host = query["host"] ?? components.host ?? ""
        let endpoint: Endpoint
        if host.isEmpty || host.hasPrefix("/") {
            // libpq's default socket directory on Debian when the URL names no host.
            let directory = host.isEmpty ? "/run/postgresql" : host
            endpoint = .unixSocket(path: (directory as NSString).appendingPathComponent(".s.PGSQL.\(port)"))
        } else {
            endpoint = .tcp(host: host, port: port)
        }
        let defaultTLS: TLSMode = if case .unixSocket = endpoint { .disable } else { .prefer }
        guard let tls = query["sslmode"].map({ TLSMode(rawValue: $0) }) ?? defaultTLS else {
            throw fail("sslmode is disable, prefer or require")
        }
        if case .unixSocket = endpoint, tls != .disable { throw fail("sslmode applies to TCP only, not to a unix socket") }
        let rootCertificates = query["sslrootcert"]
        if let rootCertificates {
            guard rootCertificates.hasPrefix("/") else { throw fail("sslrootcert needs an absolute path to a PEM file") }
            guard tls != .disable else { throw fail("sslrootcert needs TLS: sslmode=prefer or require over TCP") }
        }
        let user = query["user"] ?? components.user ?? defaultUser
        guard !user.isEmpty else { throw fail("name the role, e.g. postgres://sightline@HOST/DB") }
        self.init(endpoint: endpoint, user: user, database: database, tls: tls, rootCertificates: rootCertificates)
    }

    /// The URL as logs and error messages show it: never a password (none is held here).
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            let parameters = (tls == .prefer ? [] : ["sslmode=\(tls.rawValue)"]) + (rootCertificates.map { ["sslrootcert=\($0)"] } ?? [])
            return "postgres://\(user)@\(shownHost):\(port)/\(database)" + (parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&"))
        case .unixSocket(let path):
            return "postgresql:///\(database)?host=\((path as NSString).deletingLastPathComponent)&user=\(user)"
        }
    }

    /// A mistyped URL may hold a password anyway: error messages show it without.
    static func redacting(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? "(unparseable URL)"
    }
}
