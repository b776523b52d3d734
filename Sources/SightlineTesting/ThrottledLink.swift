import Foundation
import Synchronization

/// A TCP forwarder on loopback whose upstream direction (client to server) carries at most a
/// set number of bytes per second, changeable while connections run: a narrow uplink such as a
/// technician's cellular connection, for tests of what the device does when its link chokes.
///
/// Written by hand on blocking sockets and plain threads: no library here shapes a TCP stream,
/// and tc/netem would need root and a network namespace.
public final class ThrottledLink: Sendable {
    /// Where clients connect.
    public let port: Int
    private let target: Int
    private let listener: Int32
    /// Bytes per second upstream; 0 is unlimited.
    private let rate = Atomic<Int>(0)
    private let sockets = Mutex<[Int32]>([])
    private let stopped = Atomic<Bool>(false)

    /// Listens on an ephemeral loopback port and forwards every connection to `targetPort`.
    public init(targetPort: Int) throws {
        target = targetPort
        let listening = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listening >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        // A small receive buffer so a slow drain pushes back on the sender within a second or two.
        Self.setBuffer(listening, SO_RCVBUF, 8192)
        var address = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ready = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listening, $0, length) == 0 && listen(listening, 16) == 0 && getsockname(listening, $0, &length) == 0
            }
        }
        guard ready else {
            let problem = String(cString: strerror(errno))
            close(listening)
            throw TestFailure("listening on loopback: \(problem)")
        }
        listener = listening
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    deinit { stop() }

    /// Limits the upstream to `bytesPerSecond`; nil lifts the limit.
    public func limit(bytesPerSecond: Int?) { rate.store(bytesPerSecond ?? 0, ordering: .releasing) }

    /// Closes the listener and every forwarded connection.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        sockets.withLock { open in for socket in open { shutdown(socket, Int32(SHUT_RDWR)) } }
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if errno == EINTR { continue }
                return
            }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: target)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard server >= 0, connected == 0 else {
                close(client)
                if server >= 0 { close(server) }
                continue
            }
            sockets.withLock { $0 += [client, server] }
            let pair = Pair()
            Thread.detachNewThread { [self] in pump(from: client, to: server, throttled: true, pair: pair) }
            Thread.detachNewThread { [self] in pump(from: server, to: client, throttled: false, pair: pair) }
        }
    }

    /// The two pumps of one connection; the last to finish closes both descriptors, so
    /// neither touches a descriptor number the process may have reused.
    private final class Pair: Sendable {
        private let running = Mutex(2)
        func finished() -> Bool { running.withLock { $0 -= 1; return $0 == 0 } }
    }

    /// Copies until either side closes, then shuts both down.
    private func pump(from source: Int32, to sink: Int32, throttled: Bool, pair: Pair) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        copying: while true {
            let limit = throttled ? rate.load(ordering: .acquiring) : 0
            // Small reads under a limit, so the pacing is smooth and the sender feels it at once.
            let chunk = limit > 0 ? max(1, min(buffer.count, limit / 20)) : buffer.count
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, chunk) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            var offset = 0
            while offset < count {
                let written = buffer[offset..<count].withUnsafeBytes { write(sink, $0.baseAddress, $0.count) }
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { break copying }
                offset += written
            }
            if limit > 0 { usleep(UInt32(1_000_000 * count / limit)) }
        }
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(sink, Int32(SHUT_RDWR))
        guard pair.finished() else { return }
        sockets.withLock { $0.removeAll { $0 == source || $0 == sink } }
        close(source)
        close(sink)
    }

    private static func setBuffer(_ socket: Int32, _ option: Int32, _ bytes: Int32) {
        var value = bytes
        setsockopt(socket, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
