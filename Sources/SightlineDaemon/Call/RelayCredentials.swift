import Foundation
import NIOSSL
import SightlineCore

/// What the device needs to reach its relay: the URL, its token and whom to trust for TLS.
struct RelayCredentials: Sendable {
    let url: String
    let token: String
    let tls: TLSConfiguration?

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Reads the token file (refusing one that others can read) and the optional CA file.
    static func load(_ relay: DaemonConfiguration.RelayConfiguration) throws(Failure) -> RelayCredentials {
        let path = relay.tokenFile
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw Failure(description: "relay token file \(path) is missing: provision this device on the relay and write its token there (mode 0600)")
        }
        guard info.st_mode & 0o007 == 0 else {
            throw Failure(description: "relay token file \(path) is readable by others: chmod 600 \(path)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let token = text.split(whereSeparator: \.isNewline).first.map({ $0.trimmingCharacters(in: .whitespaces) }),
              !token.isEmpty, token.count <= 512, !token.contains(" ")
        else {
            throw Failure(description: "relay token file \(path) does not hold a token on its first line")
        }
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
            tls = configuration
        }
        return RelayCredentials(url: relay.url, token: token, tls: tls)
    }
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
