import Foundation
import SightlineSystem
import Synchronization

/// Plays systemd's side of `sd_notify(3)`: a datagram socket the test owns, collecting every
/// message a daemon sends with its arrival time.
public final class NotifySocketListener: Sendable {
    public struct Message: Sendable {
        public let text: String
        public let at: ContinuousClock.Instant
    }

    public let path: String
    private let fd: Int32
    private let received = Mutex<[Message]>([])
    private let stopped = Atomic<Bool>(false)

    public init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw SystemError("bind", path: path, errno: errno) }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Thread { [self] in self.receiveLoop() }.start()
    }

    private func receiveLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopped.load(ordering: .acquiring) {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 {
                let message = Message(text: String(decoding: buffer[0..<count], as: UTF8.self), at: .now)
                received.withLock { $0.append(message) }
            }
        }
    }

    public var messages: [Message] { received.withLock { $0 } }

    /// Waits for a message containing `fragment` (e.g. `READY=1`).
    public func waitFor(_ fragment: String, timeout: Duration) async -> Message? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let match = messages.first(where: { $0.text.contains(fragment) }) { return match }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    public func count(of fragment: String, after instant: ContinuousClock.Instant) -> Int {
        messages.filter { $0.at > instant && $0.text.contains(fragment) }.count
    }

    /// Ends the reader thread (which holds this listener) and closes the socket.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // The reader wakes within its receive timeout and sees the flag.
        usleep(150_000)
        close(fd)
        unlink(path)
    }
}
