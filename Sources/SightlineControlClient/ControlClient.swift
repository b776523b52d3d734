import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SightlineCore

/// Talks to the daemon's control API over its Unix socket. Every failure is turned into a
/// sentence that tells the operator what to do next.
public struct ControlClient: Sendable {
    public static let defaultSocket = "/run/sightline/control.sock"
    public let socketPath: String

    public init(socketPath: String = ControlClient.defaultSocket) {
        self.socketPath = socketPath
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// Suggested exit status: 69 (EX_UNAVAILABLE) when the daemon is not there, 77
        /// (EX_NOPERM) when access is refused, 1 otherwise.
        public let exitStatus: Int32
    }

    public func get<Value: Decodable>(_ path: String, as type: Value.Type) async throws(Failure) -> Value {
        try await send(method: .GET, path: path, body: nil, as: type)
    }

    /// - Parameter timeout: how long the daemon may take; longer only for work that waits on
    ///   something outside the device (a sync pass).
    public func post<Value: Decodable>(_ path: String, json body: some Encodable, as type: Value.Type,
                                       timeout: TimeAmount = .seconds(10)) async throws(Failure) -> Value {
        let data: Data
        do { data = try Self.encoder.encode(body) } catch {
            throw Failure(description: "cannot encode the request: \(error)", exitStatus: 1)
        }
        return try await send(method: .POST, path: path, body: data, as: type, timeout: timeout)
    }

    /// Sends one request on its own connection (`Connection: close`), so a command line tool
    /// leaves no pooled connection behind.
    func send<Value: Decodable>(method: HTTPMethod, path: String, body: Data?, as type: Value.Type,
                                timeout: TimeAmount = .seconds(10)) async throws(Failure) -> Value {
        try preflight()
        guard let url = URL(httpURLWithSocketPath: socketPath, uri: path) else {
            throw Failure(description: "control socket path \(socketPath) cannot be used in a URL", exitStatus: 1)
        }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        request.headers.add(name: "Connection", value: "close")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let status: UInt
        let bytes: ByteBuffer
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: timeout)
            status = response.status.code
            bytes = try await response.body.collect(upTo: 4 * 1024 * 1024)
        } catch {
            throw Failure(
                description: "daemon not answering on \(socketPath) (\(error)): check it with systemctl status sightlined",
                exitStatus: 69)
        }
        let data = Data(bytes.readableBytesView)
        guard (200..<300).contains(status) else {
            let message = (try? JSONDecoder().decode(ErrorBody.self, from: data))?.error.message
                ?? String(decoding: data, as: UTF8.self)
            throw Failure(description: "daemon refused: \(message)", exitStatus: status == 403 ? 77 : 1)
        }
        do {
            return try Self.decoder.decode(Value.self, from: data)
        } catch {
            throw Failure(description: "daemon answered something this sightctl does not understand (\(error)); "
                            + "are sightctl and sightlined the same version? (sightctl version)", exitStatus: 1)
        }
    }

    /// Reads a newline-delimited JSON stream until the daemon ends it, calling `handle` per line.
    public func stream<Value: Decodable>(_ path: String, as type: Value.Type, _ handle: (Value) -> Void) async throws(Failure) {
        try preflight()
        guard let url = URL(httpURLWithSocketPath: socketPath, uri: path) else {
            throw Failure(description: "control socket path \(socketPath) cannot be used in a URL", exitStatus: 1)
        }
        do {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url.absoluteString), timeout: .hours(24 * 365))
            guard response.status.code == 200 else {
                throw Failure(description: "daemon refused: HTTP \(response.status.code)", exitStatus: response.status.code == 403 ? 77 : 1)
            }
            var pending: [UInt8] = []
            for try await chunk in response.body {
                pending += chunk.readableBytesView
                // Bounded: a line longer than 1 MiB is not an event this client knows.
                if pending.count > 1 << 20 { pending.removeAll() }
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Data(pending[..<newline])
                    pending.removeSubrange(...newline)
                    if let value = try? Self.decoder.decode(Value.self, from: line) { handle(value) }
                }
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(description: "daemon not answering on \(socketPath) (\(error)): check it with systemctl status sightlined",
                          exitStatus: 69)
        }
    }

    /// POSTs to `path` and streams the answer into the file `destination` (mode 0600): written
    /// under a temporary name and renamed only once complete, so a cut connection never leaves
    /// a file that looks whole. Returns the number of bytes written.
    public func download(_ path: String, to destination: String) async throws(Failure) -> UInt64 {
        try preflight()
        guard let url = URL(httpURLWithSocketPath: socketPath, uri: path) else {
            throw Failure(description: "control socket path \(socketPath) cannot be used in a URL", exitStatus: 1)
        }
        let temporary = "\(destination).part-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw Failure(description: "cannot create \(temporary): \(String(cString: strerror(errno))); choose another --out", exitStatus: 73)
        }
        let file = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var written: UInt64 = 0
        do {
            var request = HTTPClientRequest(url: url.absoluteString)
            request.method = .POST
            request.headers.add(name: "Connection", value: "close")
            let response = try await HTTPClient.shared.execute(request, timeout: .hours(24))
            guard response.status.code == 200 else {
                let data = Data((try await response.body.collect(upTo: 1 << 20)).readableBytesView)
                let message = (try? JSONDecoder().decode(ErrorBody.self, from: data))?.error.message ?? String(decoding: data, as: UTF8.self)
                throw Failure(description: "daemon refused: \(message)", exitStatus: response.status.code == 403 ? 77 : 1)
            }
            for try await chunk in response.body {
                try file.write(contentsOf: Data(chunk.readableBytesView))
                written += UInt64(chunk.readableBytes)
            }
            try file.synchronize()
            try file.close()
            guard rename(temporary, destination) == 0 else {
                throw Failure(description: "cannot rename \(temporary) to \(destination): \(String(cString: strerror(errno)))", exitStatus: 73)
            }
            return written
        } catch let failure as Failure {
            unlink(temporary)
            throw failure
        } catch {
            unlink(temporary)
            throw Failure(description: "download from the daemon failed after \(written) bytes (\(error)); nothing was kept", exitStatus: 1)
        }
    }

    /// Checks the socket file before connecting, to give the precise reason a connection
    /// would fail.
    private func preflight() throws(Failure) {
        var info = stat()
        guard stat(socketPath, &info) == 0 else {
            let code = errno
            if code == EACCES {
                throw Failure(description: "permission denied on \(socketPath): run as root or join group sightline "
                                + "(usermod -aG sightline $USER, then log in again)", exitStatus: 77)
            }
            throw Failure(description: "daemon not running (no socket at \(socketPath)): start it with systemctl start sightlined",
                          exitStatus: 69)
        }
        guard access(socketPath, W_OK) == 0 else {
            throw Failure(description: "permission denied on \(socketPath): run as root or join group sightline "
                            + "(usermod -aG sightline $USER, then log in again)", exitStatus: 77)
        }
    }

    /// Hummingbird's error body: `{"error":{"message":"..."}}`.
    struct ErrorBody: Decodable {
        struct Detail: Decodable { let message: String }
        let error: Detail
    }

    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }
}
