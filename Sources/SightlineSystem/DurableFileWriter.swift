import Foundation

/// A file written in pieces that appears under its final name only once all of it is on disk:
/// data goes to a 0600 temporary file, which `commit` fsyncs, renames and then fsyncs the
/// directory of. A crash at any point leaves either no file or the whole file, never part.
/// The one owner of its descriptor: a writer neither committed nor discarded removes its
/// temporary file when it goes away.
public final class DurableFileWriter {
    public let temporaryPath: String
    private var fd: Int32

    /// `temporaryPath` must be on the same file system as the final path (rename(2)).
    public init(temporaryPath: String) throws(SystemError) {
        self.temporaryPath = temporaryPath
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("create", path: temporaryPath, errno: errno) }
    }

    /// write(2) until every byte is written; ENOSPC and EDQUOT surface here with the path.
    public func write(_ bytes: [UInt8]) throws(SystemError) {
        guard fd >= 0 else { throw SystemError("write", path: temporaryPath, errno: EBADF) }
        let failure: Int32 = bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(fd, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += written
            }
            return 0
        }
        if failure != 0 { throw SystemError("write", path: temporaryPath, errno: failure) }
    }

    /// fsync, close, rename over `path`, fsync the directory: after this returns the file
    /// survives a power cut under its new name.
    public func commit(to path: String) throws(SystemError) {
        guard fd >= 0 else { throw SystemError("commit", path: temporaryPath, errno: EBADF) }
        do throws(SystemError) {
            try retryingOnInterrupt("fsync", path: temporaryPath) { fsync(fd) }
            let closing = fd
            fd = -1
            try retryingOnInterrupt("close", path: temporaryPath) { close(closing) }
            try retryingOnInterrupt("rename", path: path) { rename(temporaryPath, path) }
        } catch {
            discard()
            throw error
        }
        try SecureFiles.syncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// Drops the temporary file.
    public func discard() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        unlink(temporaryPath)
    }

    deinit {
        if fd >= 0 {
            close(fd)
            unlink(temporaryPath)
        }
    }
}

extension SecureFiles {
    /// fsync(2) on a directory, so that a rename or a new file in it is itself durable.
    public static func syncDirectory(_ path: String) throws(SystemError) {
        let directory = open(path.isEmpty ? "." : path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw SystemError("open directory", path: path, errno: errno) }
        defer { close(directory) }
        try retryingOnInterrupt("fsync directory", path: path) { fsync(directory) }
    }
}
