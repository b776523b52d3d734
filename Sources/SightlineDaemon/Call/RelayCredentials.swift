import Foundation
import NIOSSL
import SightlineCore

/// What the device needs to reach its relay: the URL, its token and whom to trust for TLS.
struct RelayCredentials: Sendable {
    let url: String
    let token: String
    let tls: TLSConfiguration?
    /// The name sent in TLS's SNI. Only set for a relay addressed by IP, where SNI may not
    /// carry the address; any name does, since that relay's own certificate is the trust root.
    var sniHostname: String? = nil

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Reads the token file (refusing one that others can read) and the optional CA file.
    static func load(_ relay: DaemonConfiguration.RelayConfiguration) throws(Failure) -> RelayCredentials {
        let token = try DeviceTokenFile.read(relay.tokenFile, server: "relay")
        var tls: TLSConfiguration?
        if relay.url.hasPrefix("wss://") {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv12
            if let caFile = relay.caFile {
                guard let certificates = try? NIOSSLCertificate.fromPEMFile(caFile), !certificates.isEmpty else {
                    throw Failure(description: "relay.ca_file \(caFile) holds no PEM certificate")
                }
                configuration.trustRoots = .certificates(certificates)
            }
            if let host = URLComponents(string: relay.url)?.host, isIPAddress(host) {
                // TLS names no IP address in SNI, and a public CA's certificate for an address
                // proves little: trust exactly the relay's certificate from relay.ca_file.
                guard relay.caFile != nil else {
                    throw Failure(description: "relay.url \(relay.url) names the relay by IP address: set relay.ca_file to the relay's own certificate, or use its DNS name")
                }
                configuration.certificateVerification = .noHostnameVerification
                tls = configuration
                return RelayCredentials(url: relay.url, token: token, tls: tls, sniHostname: "sightline-relay")
            }
            tls = configuration
        }
        return RelayCredentials(url: relay.url, token: token, tls: tls)
    }
}

/// A device's token for a server it dials out to (the relay, the organisation's archive): the
/// first line of a file that others may not read.
enum DeviceTokenFile {
    static func read(_ path: String, server: String) throws(RelayCredentials.Failure) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw .init(description: "\(server) token file \(path) is missing: provision this device on the \(server) and write its token there (mode 0600)")
        }
        guard info.st_mode & 0o007 == 0 else {
            throw .init(description: "\(server) token file \(path) is readable by others: chmod 600 \(path)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let token = text.split(whereSeparator: \.isNewline).first.map({ $0.trimmingCharacters(in: .whitespaces) }),
              !token.isEmpty, token.count <= 512, !token.contains(" ")
        else {
            throw .init(description: "\(server) token file \(path) does not hold a token on its first line")
        }
        return token
    }
}

/// An IPv4 or IPv6 literal (URLComponents keeps IPv6's brackets).
func isIPAddress(_ host: String) -> Bool {
    let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    var v4 = in_addr(), v6 = in6_addr()
    return inet_pton(AF_INET, bare, &v4) == 1 || inet_pton(AF_INET6, bare, &v6) == 1
}

/// Driver timestamps are CLOCK_MONOTONIC; the wire carries wall-clock time so a viewer on
/// another machine can compute latency against its own (NTP-synchronised) clock.
enum CaptureClock {
    static func unixMicroseconds(ofMonotonic timestamp: Duration) -> UInt64 {
        var realtime = timespec()
        var monotonic = timespec()
        clock_gettime(CLOCK_REALTIME, &realtime)
        clock_gettime(CLOCK_MONOTONIC, &monotonic)
        let age = Duration.seconds(monotonic.tv_sec) + .nanoseconds(monotonic.tv_nsec) - timestamp
        let now = Int64(realtime.tv_sec) * 1_000_000 + Int64(realtime.tv_nsec) / 1000
        let (microseconds, _) = age.components.seconds.multipliedReportingOverflow(by: 1_000_000)
        return UInt64(clamping: now - microseconds - age.components.attoseconds / 1_000_000_000_000)
    }
}
