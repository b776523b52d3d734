import Foundation

/// Reads a file that holds a secret (device tokens, a database password), refusing one that
/// group or others may read or write: a secret that leaked to another local user lets that
/// user pose as whoever it belongs to. `what` names the file in messages ("device token file").
public enum SecretFile {
    public static let maximumSize = 1 << 20

    public static func read(_ path: String, what: String) throws(ServerConfigurationError) -> [UInt8] {
        func fail(_ message: String) -> ServerConfigurationError { ServerConfigurationError(description: "\(what) \(path) \(message)") }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw fail("cannot be opened: \(String(cString: strerror(errno))); pass a readable file") }
        defer { close(fd) }
        // fstat on the open descriptor, so the mode checked is the mode of the file read.
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw fail("cannot be examined: \(String(cString: strerror(errno)))") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw fail("is not a regular file") }
        guard info.st_mode & 0o077 == 0 else {
            let mode = String(info.st_mode & 0o777, radix: 8)
            throw fail("has mode \(mode), so other users can read it: run `chmod 600 \(path)` (owner: the server's user) and change the secret if others could read it")
        }
        guard Int(info.st_size) <= maximumSize else { throw fail("is larger than 1 MiB; is it the right file?") }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw fail("cannot be read: \(String(cString: strerror(code)))")
            }
            if count == 0 { break }
            bytes += chunk[..<count]
            guard bytes.count <= maximumSize else { throw fail("is larger than 1 MiB; is it the right file?") }
        }
        return bytes
    }
}
