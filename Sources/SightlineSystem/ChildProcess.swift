import Foundation

/// Runs a program to completion with bytes on its stdin, keeping a bounded amount of its output,
/// and kills its whole process group when it overruns its time. For integrators' hook programs:
/// a hook that forks, hangs or floods its output must never hold the daemon.
public enum ChildProcess {
    public struct Outcome: Sendable, Equatable {
        /// Exit status, or nil when a signal ended it.
        public var status: Int32?
        public var signal: Int32?
        public var timedOut: Bool
        /// At most `outputLimit` bytes of each stream; `truncated` says when more came.
        public var stdout: String
        public var stderr: String
        public var truncated: Bool

        public var succeeded: Bool { status == 0 && !timedOut }
    }

    /// Starts `arguments[0]` (an absolute path) in a process group of its own, with exactly
    /// `environment`, default signal dispositions and an empty signal mask, and waits for it.
    /// Blocks the calling thread: call it from a thread of its own, never the cooperative pool.
    public static func run(_ arguments: [String], environment: [String: String], stdin input: Data, timeout: Duration,
                           outputLimit: Int = 4096) throws(SystemError) -> Outcome {
        let stdinPipe = try makePipe()
        let stdoutPipe: [Int32], stderrPipe: [Int32]
        do {
            stdoutPipe = try makePipe()
        } catch {
            closeAll(stdinPipe)
            throw error
        }
        do {
            stderrPipe = try makePipe()
        } catch {
            closeAll(stdinPipe + stdoutPipe)
            throw error
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The daemon ignores SIGTERM/SIGINT for its own shutdown handling and SIGPIPE for its
        // sockets; ignored signals survive exec, so the child gets the defaults back.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        // ETXTBSY: a program just written (by an installer, or a test) can still be open for
        // writing in a process another thread is forking; that clears within milliseconds.
        var spawned = posix_spawn(&pid, arguments.first ?? "", &actions, &attributes, argv, envp)
        for _ in 0..<25 where spawned == ETXTBSY {
            usleep(20_000)
            spawned = posix_spawn(&pid, arguments.first ?? "", &actions, &attributes, argv, envp)
        }
        close(stdinPipe[0])
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard spawned == 0 else {
            closeAll([stdinPipe[1], stdoutPipe[0], stderrPipe[0]])
            throw SystemError("posix_spawn", path: arguments.first, errno: spawned)
        }

        // The payload is small (a few hundred bytes) and fits the pipe. A child that exits
        // without reading it makes the write fail with EPIPE, which is its business, but would
        // also raise SIGPIPE, which ends the daemon: blocked on this thread while writing, and a
        // pending one taken off again before the mask is restored.
        var pipeSignal = sigset_t(), previousMask = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &previousMask)
        defer {
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            while sigtimedwait(&pipeSignal, nil, &zero) == SIGPIPE {}
            pthread_sigmask(SIG_SETMASK, &previousMask, nil)
        }
        input.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(stdinPipe[1], buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                if written < 0, errno == EINTR { continue }
                if written <= 0 { break }
                offset += written
            }
        }
        close(stdinPipe[1])

        let deadline = ContinuousClock.now + timeout
        var out = Data(), err = Data(), truncated = false, timedOut = false
        var open: [Int32] = [stdoutPipe[0], stderrPipe[0]]
        var buffer = [UInt8](repeating: 0, count: 4096)
        var wait: Int32 = 0
        var reaped = false
        while !open.isEmpty {
            // The program ended but something it started still holds its output open: the
            // group goes, so the output ends now rather than at the timeout.
            if !reaped, waitpid(pid, &wait, WNOHANG) == pid {
                reaped = true
                kill(-pid, SIGKILL)
            }
            let left = deadline - ContinuousClock.now
            if left <= .zero {
                timedOut = true
                kill(-pid, SIGKILL)
                break
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let milliseconds = Int32(clamping: min(100, max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
            let ready = poll(&fds, nfds_t(fds.count), milliseconds)
            if ready < 0, errno == EINTR { continue }
            if ready <= 0 { continue }
            for descriptor in fds where descriptor.revents != 0 {
                let count = read(descriptor.fd, &buffer, buffer.count)
                if count < 0, errno == EINTR { continue }
                if count <= 0 {
                    open.removeAll { $0 == descriptor.fd }
                    continue
                }
                let isOut = descriptor.fd == stdoutPipe[0]
                let kept = isOut ? out.count : err.count
                let room = max(0, outputLimit - kept)
                if count > room { truncated = true }
                let slice = buffer[0..<min(count, room)]
                if isOut { out.append(contentsOf: slice) } else { err.append(contentsOf: slice) }
            }
        }
        closeAll([stdoutPipe[0], stderrPipe[0]])
        if !reaped {
            while waitpid(pid, &wait, 0) < 0, errno == EINTR {}
            // Anything the program left behind in its group goes with it.
            kill(-pid, SIGKILL)
        }
        let exited = (wait & 0x7f) == 0
        return Outcome(status: exited ? (wait >> 8) & 0xff : nil, signal: exited ? nil : wait & 0x7f, timedOut: timedOut,
                       stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self), truncated: truncated)
    }

    /// A pipe whose ends are not inherited by other programs the daemon starts (spawn's dup2
    /// clears the flag on the copies the child gets).
    private static func makePipe() throws(SystemError) -> [Int32] {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw SystemError("pipe", errno: errno) }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        return ends
    }

    private static func closeAll(_ descriptors: [Int32]) {
        for descriptor in descriptors where descriptor >= 0 { close(descriptor) }
    }
}
