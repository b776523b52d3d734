import Foundation

/// Owner-only files and directories, written atomically: the daemon's secrets and evidence
/// must never be readable by others, and a crash mid-write must leave either the old file or
/// the new one, never half of one.
public enum SecureFiles {
    /// Creates `path` (and missing parents) with mode 0700, or tightens an existing directory
    /// that this process owns.
    public static func ensurePrivateDirectory(_ path: String) throws(SystemError) {
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else { throw SystemError("use directory", path: path, errno: ENOTDIR) }
            if info.st_mode & 0o077 != 0, info.st_uid == geteuid() {
                try retryingOnInterrupt("chmod 0700", path: path) { chmod(path, 0o700) }
            }
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path, parent != "/" {
            var parentInfo = stat()
            if stat(parent, &parentInfo) != 0 {
                try ensurePrivateDirectory(parent)
            }
        }
        let result = mkdir(path, 0o700)
        if result != 0, errno != EEXIST { throw SystemError("mkdir", path: path, errno: errno) }
    }

    /// Writes `data` to `path` with mode 0600: temporary file, fsync, rename, directory fsync.
    public static func writeAtomically(_ data: Data, to path: String) throws(SystemError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("create", path: temporary, errno: errno) }
        // Data.withUnsafeBytes is not typed-throws: report the failed write's errno instead.
        let writeErrno: Int32 = data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += written
            }
            return 0
        }
        do throws(SystemError) {
            defer { close(fd) }
            if writeErrno != 0 { throw SystemError("write", path: temporary, errno: writeErrno) }
            try retryingOnInterrupt("fsync", path: temporary) { fsync(fd) }
            try retryingOnInterrupt("rename", path: path) { rename(temporary, path) }
        } catch {
            unlink(temporary)
            throw error
        }
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }
}
