import Foundation

/// A private PulseAudio server for tests: its own runtime directory, an anonymous native unix
/// socket, a null sink (`vsink`) whose monitor (`vsink.monitor`) records what is played into it.
/// Works as root (user mode with `-n`, no default script). Can be killed and started again on the
/// same socket to test reconnection.
public final class PulseAudioServer: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let socketPath: String
    public let sinkName = "vsink"
    public let sampleRate: Int
    public let channels: Int
    public let logPath: String
    private var child: SpawnedProcess?

    /// The libpulse server string clients use.
    public var server: String { "unix:\(socketPath)" }
    public var monitorSource: String { "\(sinkName).monitor" }
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    public var isRunning: Bool { child?.isRunning ?? false }

    /// Why the server cannot run here, or nil when `pulseaudio` and `pactl` are installed.
    public static var unavailableReason: String? {
        for tool in ["/usr/bin/pulseaudio", "/usr/bin/pactl", "/usr/bin/pacat"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing (scripts/install-deps test installs pulseaudio and pulseaudio-utils)"
        }
        return nil
    }

    public init(sampleRate: Int = 48000, channels: Int = 1) throws {
        directory = try TemporaryDirectory(prefix: "sightline-pulse")
        socketPath = directory.file("native")
        logPath = directory.file("pulseaudio.log")
        self.sampleRate = sampleRate
        self.channels = channels
        for name in ["runtime", "home", "state"] {
            try FileManager.default.createDirectory(atPath: directory.file(name), withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
    }

    /// Environment for the server and for the command-line clients (pactl, pacat).
    public var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_RUNTIME_DIR"] = directory.file("runtime")
        environment["PULSE_RUNTIME_PATH"] = directory.file("runtime")
        environment["PULSE_STATE_PATH"] = directory.file("state")
        environment["HOME"] = directory.file("home")
        environment["PULSE_SERVER"] = server
        return environment
    }

    /// Starts the server and waits until `pactl info` answers on the socket.
    public func start(timeout: Duration = .seconds(15)) async throws {
        if isRunning { return }
        try? FileManager.default.removeItem(atPath: socketPath)
        let arguments = [
            "/usr/bin/pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--use-pid-file=no", "--realtime=no",
            "--high-priority=no", "--system=no", "--log-target=stderr",
            "-L", "module-native-protocol-unix auth-anonymous=1 socket=\(socketPath)",
            "-L", "module-null-sink sink_name=\(sinkName) rate=\(sampleRate) channels=\(channels)",
        ]
        child = try SpawnedProcess(arguments, environment: environment, outputPath: logPath)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard isRunning else { throw TestFailure("pulseaudio exited before answering:\n\(self.log)") }
            if FileManager.default.fileExists(atPath: socketPath), (try? pactl(["info"]))?.status == 0 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("pulseaudio did not answer `pactl info` within \(timeout):\n\(self.log)")
    }

    /// SIGKILL: the server vanishes the way a crash does, clients see the socket close.
    public func kill() { child?.signal(SIGKILL) }

    public func stop() { child?.signal(SIGTERM) }

    public func pactl(_ arguments: [String]) throws -> CommandLineTool.Result {
        try CommandLineTool.run("/usr/bin/pactl", ["--server=\(server)"] + arguments, environment: environment)
    }

    /// Adds a second 48 kHz mono null sink (a device's speaker apart from its microphone). Its
    /// description is its name too, so its monitor is "Monitor of NAME" to programs that pick
    /// devices by description (Firefox's `media.audio_loopback_dev`).
    public func addNullSink(named name: String) throws {
        let loaded = try pactl(["load-module", "module-null-sink", "sink_name=\(name)", "rate=48000", "channels=1",
                                "sink_properties=device.description=\(name)"])
        guard loaded.status == 0 else { throw TestFailure("pactl load-module module-null-sink failed: \(loaded.stderr)") }
    }

    /// A daemon configuration for a call with sound on this server: test-pattern video through
    /// `relay`, the microphone on this sink's monitor and the speaker on `speaker`.
    /// - Parameters:
    ///   - through: a forwarder the device reaches the relay by; invites still name the relay.
    ///   - heavyVideo: 720p JPEG instead of 320×240 H.264: about 1 MB/s, to fill a narrow link at once.
    public func callConfiguration(relay: RelayProcess, speaker: String, through link: ThrottledLink? = nil,
                                  heavyVideo: Bool = false) -> String {
        """
        camera:
          device: test-pattern
          width: \(heavyVideo ? 1280 : 320)
          height: \(heavyVideo ? 720 : 240)
          fps: 15
        stream:
          codec: \(heavyVideo ? "jpeg" : "h264")
        relay:
          url: \(link.map { "ws://127.0.0.1:\($0.port)" } ?? relay.webSocketURL)
          public_url: \(relay.httpURL)
          token_file: \(relay.deviceTokenFile)
        audio:
          backend: pulse
          capture_device: \(monitorSource)
          playback_device: \(speaker)

        """
    }

    /// Starts `pacat` playing raw S16LE samples into the null sink (or `sink`); the caller waits for it
    /// (`wait`). 250 ms of buffer: with less, a busy machine makes pacat underrun, and every
    /// underrun inserts silence into what the monitor records.
    public func play(rawFile: String, into sink: String? = nil) throws -> SpawnedProcess {
        try pacat(["--playback", "--latency-msec=250", "--device=\(sink ?? sinkName)", rawFile])
    }

    /// Starts `pacat --record` from the sink's monitor into `rawFile` (S16LE, 20 ms latency); the
    /// caller ends it with `signal(SIGINT)`.
    public func record(rawFile: String) throws -> SpawnedProcess {
        try pacat(["--record", "--latency-msec=20", "--device=\(monitorSource)", rawFile])
    }

    private func pacat(_ arguments: [String]) throws -> SpawnedProcess {
        try SpawnedProcess(["/usr/bin/pacat", "--server=\(server)", "--raw", "--format=s16le",
                            "--rate=\(sampleRate)", "--channels=\(channels)"] + arguments,
                           environment: environment, outputPath: directory.file("pacat.log"))
    }

    deinit { kill() }
}

/// A child process started with posix_spawn and reaped with waitpid, outside Foundation's
/// `Process`: pulseaudio closes every inherited descriptor at start, which makes Foundation's
/// process monitor believe it exited and block in `waitpid` for it, stalling every other
/// `Process` of the test run.
public final class SpawnedProcess: @unchecked Sendable {
    public let pid: pid_t
    private var status: Int32?

    /// Starts `arguments[0]` with stdin from /dev/null and stdout and stderr appended to `outputPath`.
    public init(_ arguments: [String], environment: [String: String], outputPath: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
        guard result == 0 else { throw TestFailure("posix_spawn \(arguments[0]) failed: \(String(cString: strerror(result)))") }
        self.pid = pid
    }

    public var isRunning: Bool {
        guard status == nil else { return false }
        var value: Int32 = 0
        if waitpid(pid, &value, WNOHANG) == pid { status = value }
        return status == nil
    }

    /// Waits for the process to end and returns its exit status (or 128 + signal).
    @discardableResult
    public func wait() -> Int32 {
        if status == nil {
            var value: Int32 = 0
            while waitpid(pid, &value, 0) < 0, errno == EINTR {}
            status = value
        }
        let value = status ?? 0
        return value & 0x7F == 0 ? (value >> 8) & 0xFF : 128 + (value & 0x7F)
    }

    /// Sends `number` and waits for the process to end; SIGKILL after 3 s.
    public func signal(_ number: Int32) {
        guard isRunning else { return }
        kill(pid, number)
        for _ in 0..<300 where isRunning { usleep(10_000) }
        if isRunning { kill(pid, SIGKILL) }
        wait()
    }

    deinit { signal(SIGKILL) }
}
