import CALSA
import CAudioShim
import Foundation
import SightlineCore
import Synchronization

/// ALSA directly through libasound, for devices without a sound server.
///
/// Each stream runs on its own thread in non-blocking mode, waiting in `poll` on the PCM's
/// descriptors and a pipe that `stop` writes to. Overruns and underruns (`-EPIPE`) and suspends
/// are counted and recovered with `snd_pcm_recover`; a device that disappears is reopened with a
/// back-off.
public struct ALSABackend: AudioBackend {
    public var kind: AudioBackendKind { .alsa }
    /// ALSA configuration (asoundrc syntax) to look device names up in instead of the system's,
    /// e.g. a `type file` PCM for tests; nil for the system configuration.
    public let configuration: String?
    /// Period (wake-up interval) asked of the device; the buffer holds `bufferPeriods` of them.
    public let periodTime: Duration
    public let bufferPeriods: Int

    public init(configuration: String? = nil, periodTime: Duration = .milliseconds(20), bufferPeriods: Int = 4) {
        self.configuration = configuration
        self.periodTime = periodTime
        self.bufferPeriods = bufferPeriods
        ALSADiagnostics.install()
    }

    public func openCapture(device: String?, format: AudioFormat) throws -> any AudioCapture {
        BackendCapture(engine: try ALSAStreamEngine(direction: .capture, backend: self, device: device ?? "default", format: format))
    }

    /// The node through `plughw`, which converts to the stream's format.
    public func deviceName(for address: SoundDeviceAddress) -> String { address.alsaPCM }

    public func openPlayback(device: String?, format: AudioFormat, source: AudioFrameSource?) throws -> any AudioPlayback {
        BackendPlayback(engine: try ALSAStreamEngine(direction: .playback, backend: self, device: device ?? "default", format: format,
                                                     source: source))
    }
}

/// ALSA prints its errors to stderr unless a handler is installed (`snd_lib_error_set_handler`);
/// this routes them to the project's log instead. Until the daemon sets a handler, the latest
/// messages are kept (bounded) for diagnostics and tests.
public enum ALSADiagnostics {
    private static let state = Mutex<(handler: (@Sendable (String) -> Void)?, recent: [String])>((nil, []))

    /// Sends ALSA's messages to `handler` from now on.
    public static func setHandler(_ handler: @escaping @Sendable (String) -> Void) {
        install()
        state.withLock { $0.handler = handler }
    }

    /// The last messages ALSA reported (at most 32).
    public static var recentMessages: [String] { state.withLock { $0.recent } }

    static func install() {
        caudio_alsa_set_error_callback { file, line, function, code, message in
            let text = [function.map { String(cString: $0) }, message.map { String(cString: $0) }]
                .compactMap { $0 }.joined(separator: ": ") + (code != 0 ? " (\(AudioError.alsaMessage(code)))" : "")
            _ = file
            _ = line
            ALSADiagnostics.report(text)
        }
    }

    static func report(_ message: String) {
        let handler = state.withLock { state in
            state.recent.append(message)
            if state.recent.count > 32 { state.recent.removeFirst(state.recent.count - 32) }
            return state.handler
        }
        handler?(message)
    }
}

/// The owner of one `snd_pcm_t` and the thread that drives it.
final class ALSAStreamEngine: StreamEngine, @unchecked Sendable {
    enum Direction { case capture, playback }

    let direction: Direction
    let device: String
    let format: AudioFormat
    let queue: AudioFrameQueue
    private let configuration: String?
    private let periodFrames: Int
    private let bufferPeriods: Int
    private let wakePipe: (read: Int32, write: Int32)
    let control = StreamControl()
    private let idle = Atomic<Bool>(true)
    /// Playback: frames written but not yet played by the device (`snd_pcm_delay`), as the
    /// device thread last saw it while idle; `drain` waits for 0.
    private let deviceBacklog = Atomic<Int>(0)
    /// Where a pulled playback stream gets its frames; nil for one fed through `queue`.
    private let source: AudioFrameSource?

    /// Opens the PCM once here so a wrong name or format fails at once, with ALSA's reason.
    init(direction: Direction, backend: ALSABackend, device: String, format: AudioFormat,
         source: AudioFrameSource? = nil) throws(AudioError) {
        self.direction = direction
        self.source = source
        self.device = device
        self.format = format
        self.configuration = backend.configuration
        let milliseconds = Int(backend.periodTime.components.seconds * 1000 + backend.periodTime.components.attoseconds / 1_000_000_000_000_000)
        periodFrames = max(1, format.frames(milliseconds: milliseconds))
        bufferPeriods = max(2, backend.bufferPeriods)
        queue = AudioFrameQueue(capacity: 1000 / AudioFrame.milliseconds)
        let pcm = try Self.open(device: device, direction: direction, format: format, configuration: configuration,
                                periodFrames: periodFrames, bufferPeriods: bufferPeriods)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            let code = errno
            pcm.close()
            throw .alsa(operation: "pipe", device: device, code: -code)
        }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        wakePipe = (fds[0], fds[1])
        control.statistics.withLock { $0.connected = true }
        let thread = Thread { [self] in run(pcm: pcm) }
        thread.name = "alsa \(direction == .capture ? "capture" : "playback") \(device)"
        thread.start()
    }

    func stop() async {
        if control.requestStop() {
            queue.finish()
            var byte: UInt8 = 1
            _ = write(wakePipe.write, &byte, 1)
        }
        await control.waitUntilFinished()
    }

    func drain(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if queue.count == 0, idle.load(ordering: .acquiring), deviceBacklog.load(ordering: .acquiring) == 0 { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    private var isStopping: Bool { control.isStopping }

    // MARK: Worker thread

    private func run(pcm initial: PCMHandle) {
        var pcm: PCMHandle? = initial
        var failures = 0
        var assembler = AudioFrameAssembler(format: format)
        var clock = CaptureClock(format: format)
        var pending: [Int16] = []
        while !isStopping {
            guard let handle = pcm else {
                // The device went away: reopen with a back-off until it is back.
                sleepUnlessStopping(milliseconds: min(1000, 50 << min(failures, 5)))
                failures += 1
                do {
                    pcm = try Self.open(device: device, direction: direction, format: format, configuration: configuration,
                                        periodFrames: periodFrames, bufferPeriods: bufferPeriods)
                    control.statistics.withLock {
                        $0.connected = true
                        $0.reconnects += 1
                        $0.lastError = nil
                    }
                    failures = 0
                    assembler.discardPartial()
                    clock.reset()
                } catch {
                    control.statistics.withLock { $0.lastError = error.description }
                }
                continue
            }
            let result: Int
            switch direction {
            case .capture: result = captureStep(handle, assembler: &assembler, clock: &clock)
            case .playback: result = playbackStep(handle, pending: &pending)
            }
            guard result < 0 else { continue }
            if !recover(handle, code: Int32(result)) {
                handle.close()
                pcm = nil
                assembler.discardPartial()
                control.statistics.withLock { $0.connected = false }
            }
        }
        pcm?.close()
        Foundation.close(wakePipe.read)
        Foundation.close(wakePipe.write)
        control.statistics.withLock { $0.connected = false }
        queue.finish()
        control.markFinished()
    }

    /// Waits for the PCM or the wake pipe; returns false when woken to stop.
    private func wait(_ pcm: PCMHandle) -> Bool {
        let count = Int(snd_pcm_poll_descriptors_count(pcm.pointer))
        var fds = [pollfd](repeating: pollfd(), count: max(0, count) + 1)
        let filled = fds.withUnsafeMutableBufferPointer { buffer in
            snd_pcm_poll_descriptors(pcm.pointer, buffer.baseAddress, UInt32(count))
        }
        fds[Int(max(0, filled))] = pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)
        let total = Int(max(0, filled)) + 1
        let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t(total), 500) }
        if ready < 0 { return !isStopping }
        if fds[total - 1].revents != 0 { return false }
        return true
    }

    /// Reads what the device has (`snd_pcm_readi`) and hands 20 ms frames to the queue. Returns a
    /// negative ALSA error to recover from, or 0.
    private func captureStep(_ pcm: PCMHandle, assembler: inout AudioFrameAssembler, clock: inout CaptureClock) -> Int {
        guard wait(pcm) else { return 0 }
        var buffer = [Int16](repeating: 0, count: periodFrames * format.channels)
        let read = buffer.withUnsafeMutableBytes { snd_pcm_readi(pcm.pointer, $0.baseAddress, snd_pcm_uframes_t(periodFrames)) }
        if read == -Int(EAGAIN) { return 0 }
        if read < 0 { return read }
        var delay: snd_pcm_sframes_t = 0
        let now = MonotonicTime.now()
        let behind = snd_pcm_delay(pcm.pointer, &delay) == 0 ? max(0, delay) : 0
        // Overruns arrive as -EPIPE and are counted there; the clock only re-anchors after them.
        let (captured, _) = clock.stamp(frames: read, measured: now - format.duration(frames: behind + read))
        let frames = assembler.append(Array(buffer[0..<(read * format.channels)]), capturedAt: captured)
        if control.isMuted {
            control.statistics.withLock { $0.mutedFrames += UInt64(frames.count) }
            return 0
        }
        for frame in frames {
            // Lossless: wait for the consumer; if it stalls long enough the device overruns,
            // which the next read reports as -EPIPE and we count.
            while !isStopping, !queue.push(frame, timeout: .milliseconds(100)) {}
            let level = AudioLevel(samples: frame.samples)
            control.statistics.withLock {
                $0.frames += 1
                $0.level = level
            }
        }
        return 0
    }

    /// Writes queued (or pulled) frames as the device takes them (`snd_pcm_writei`).
    private func playbackStep(_ pcm: PCMHandle, pending: inout [Int16]) -> Int {
        if pending.isEmpty, let source {
            // Pulled: the next frame once the device has room, so what waits ahead of the
            // speaker never exceeds the device's buffer.
            guard wait(pcm) else { return 0 }
            idle.store(false, ordering: .releasing)
            pending = source() ?? [Int16](repeating: 0, count: format.samplesPerFrame)
            let level = AudioLevel(samples: pending)
            control.statistics.withLock {
                $0.frames += 1
                $0.level = level
            }
        }
        if pending.isEmpty {
            idle.store(true, ordering: .releasing)
            guard let frame = queue.pop(timeout: .milliseconds(20)) else {
                // What the device still holds; an underrun at the end of the audio (an error
                // here) means it holds nothing.
                var delay: snd_pcm_sframes_t = 0
                let result = snd_pcm_delay(pcm.pointer, &delay)
                let backlog = result < 0 || snd_pcm_state(pcm.pointer) != SND_PCM_STATE_RUNNING ? 0 : max(0, delay)
                deviceBacklog.store(backlog, ordering: .releasing)
                noteLatency(deviceFrames: backlog)
                return 0
            }
            idle.store(false, ordering: .releasing)
            deviceBacklog.store(frame.frameCount, ordering: .releasing)
            pending = frame.samples
            let level = AudioLevel(samples: frame.samples)
            control.statistics.withLock {
                $0.frames += 1
                $0.level = level
            }
        }
        guard wait(pcm) else { return 0 }
        let frames = pending.count / format.channels
        let written = pending.withUnsafeBytes { snd_pcm_writei(pcm.pointer, $0.baseAddress, snd_pcm_uframes_t(frames)) }
        if written == -Int(EAGAIN) { return 0 }
        if written < 0 { return written }
        pending.removeFirst(written * format.channels)
        var delay: snd_pcm_sframes_t = 0
        if snd_pcm_delay(pcm.pointer, &delay) == 0 { noteLatency(deviceFrames: max(0, delay) + pending.count / format.channels) }
        return 0
    }

    /// Playback latency for the statistics: what the device (and `pending`) holds, and the
    /// frames still queued here for room in it.
    private func noteLatency(deviceFrames: Int) {
        let milliseconds = Double(queue.count * AudioFrame.milliseconds) + Double(deviceFrames) * 1000 / Double(format.sampleRate)
        control.statistics.withLock { $0.latencyMs = milliseconds }
    }

    /// Counts and recovers an xrun or suspend (`snd_pcm_recover`); false when the PCM is gone.
    private func recover(_ pcm: PCMHandle, code: Int32) -> Bool {
        if code == -EPIPE || code == -ESTRPIPE || code == -EINTR {
            if code == -EPIPE { control.statistics.withLock { $0.xruns += 1 } }
            let result = snd_pcm_recover(pcm.pointer, code, 1)
            if result < 0 {
                control.statistics.withLock { $0.lastError = AudioError.alsa(operation: "snd_pcm_recover", device: device, code: result).description }
                return false
            }
            if direction == .capture {
                let started = snd_pcm_start(pcm.pointer)
                if started < 0 {
                    control.statistics.withLock { $0.lastError = AudioError.alsa(operation: "snd_pcm_start", device: device, code: started).description }
                    return false
                }
            }
            return true
        }
        control.statistics.withLock { $0.lastError = AudioError.alsa(operation: direction == .capture ? "snd_pcm_readi" : "snd_pcm_writei",
                                                         device: device, code: code).description }
        return false
    }

    private func sleepUnlessStopping(milliseconds: Int) {
        var left = milliseconds
        while left > 0, !isStopping {
            usleep(UInt32(min(left, 10) * 1000))
            left -= 10
        }
    }

    // MARK: Opening

    /// Opens and configures a PCM: S16_LE interleaved at exactly the requested rate and channels,
    /// one period per 20 ms. Plugins such as `plughw` and `default` convert for hardware that
    /// cannot do this natively.
    static func open(device: String, direction: Direction, format: AudioFormat, configuration: String?,
                     periodFrames: Int, bufferPeriods: Int) throws(AudioError) -> PCMHandle {
        let stream = direction == .capture ? SND_PCM_STREAM_CAPTURE : SND_PCM_STREAM_PLAYBACK
        var pcm: OpaquePointer?
        var localConfiguration: OpaquePointer?
        if let configuration {
            localConfiguration = try Self.load(configuration, device: device)
            let result = snd_pcm_open_lconf(&pcm, device, stream, SND_PCM_NONBLOCK, localConfiguration)
            guard result >= 0, pcm != nil else {
                snd_config_delete(localConfiguration)
                throw .alsa(operation: "snd_pcm_open", device: device, code: result)
            }
        } else {
            let result = snd_pcm_open(&pcm, device, stream, SND_PCM_NONBLOCK)
            guard result >= 0, pcm != nil else { throw .alsa(operation: "snd_pcm_open", device: device, code: result) }
        }
        guard let pcm else { throw .alsa(operation: "snd_pcm_open", device: device, code: -ENODEV) }
        let handle = PCMHandle(pointer: pcm, configuration: localConfiguration)
        do throws(AudioError) {
            try configure(handle, device: device, direction: direction, format: format, periodFrames: periodFrames, bufferPeriods: bufferPeriods)
        } catch {
            handle.close()
            throw error
        }
        return handle
    }

    private static func configure(_ handle: PCMHandle, device: String, direction: Direction, format: AudioFormat,
                                  periodFrames: Int, bufferPeriods: Int) throws(AudioError) {
        let pcm = handle.pointer
        func check(_ result: Int32, _ operation: String) throws(AudioError) {
            guard result >= 0 else { throw .alsa(operation: operation, device: device, code: result) }
        }
        var hardware: OpaquePointer?
        try check(snd_pcm_hw_params_malloc(&hardware), "snd_pcm_hw_params_malloc")
        defer { snd_pcm_hw_params_free(hardware) }
        try check(snd_pcm_hw_params_any(pcm, hardware), "snd_pcm_hw_params_any")
        try check(snd_pcm_hw_params_set_access(pcm, hardware, SND_PCM_ACCESS_RW_INTERLEAVED), "snd_pcm_hw_params_set_access")
        try check(snd_pcm_hw_params_set_format(pcm, hardware, SND_PCM_FORMAT_S16_LE), "snd_pcm_hw_params_set_format S16_LE")
        try check(snd_pcm_hw_params_set_channels(pcm, hardware, UInt32(format.channels)), "snd_pcm_hw_params_set_channels \(format.channels)")
        try check(snd_pcm_hw_params_set_rate(pcm, hardware, UInt32(format.sampleRate), 0), "snd_pcm_hw_params_set_rate \(format.sampleRate)")
        var period = snd_pcm_uframes_t(periodFrames)
        try check(snd_pcm_hw_params_set_period_size_near(pcm, hardware, &period, nil), "snd_pcm_hw_params_set_period_size_near")
        var buffer = snd_pcm_uframes_t(periodFrames * bufferPeriods)
        try check(snd_pcm_hw_params_set_buffer_size_near(pcm, hardware, &buffer), "snd_pcm_hw_params_set_buffer_size_near")
        try check(snd_pcm_hw_params(pcm, hardware), "snd_pcm_hw_params")

        var software: OpaquePointer?
        try check(snd_pcm_sw_params_malloc(&software), "snd_pcm_sw_params_malloc")
        defer { snd_pcm_sw_params_free(software) }
        try check(snd_pcm_sw_params_current(pcm, software), "snd_pcm_sw_params_current")
        try check(snd_pcm_sw_params_set_avail_min(pcm, software, period), "snd_pcm_sw_params_set_avail_min")
        // Playback starts once two periods are queued, so the first frames do not underrun at once.
        let threshold = direction == .capture ? snd_pcm_uframes_t(1) : min(buffer, period * 2)
        try check(snd_pcm_sw_params_set_start_threshold(pcm, software, threshold), "snd_pcm_sw_params_set_start_threshold")
        try check(snd_pcm_sw_params(pcm, software), "snd_pcm_sw_params")
        try check(snd_pcm_prepare(pcm), "snd_pcm_prepare")
        if direction == .capture {
            try check(snd_pcm_start(pcm), "snd_pcm_start")
        }
    }

    /// Parses asoundrc text into a configuration tree (`snd_config_load`); owned by the caller.
    private static func load(_ text: String, device: String) throws(AudioError) -> OpaquePointer? {
        var top: OpaquePointer?
        var result = snd_config_top(&top)
        guard result >= 0 else { throw .alsa(operation: "snd_config_top", device: device, code: result) }
        var input: OpaquePointer?
        result = text.withCString { snd_input_buffer_open(&input, $0, strlen($0)) }
        guard result >= 0 else {
            snd_config_delete(top)
            throw .alsa(operation: "snd_input_buffer_open", device: device, code: result)
        }
        result = snd_config_load(top, input)
        snd_input_close(input)
        guard result >= 0 else {
            snd_config_delete(top)
            throw .alsa(operation: "snd_config_load (the ALSA configuration text)", device: device, code: result)
        }
        return top
    }
}

/// The one owner of an open PCM and the configuration it was opened from.
final class PCMHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    private let configuration: OpaquePointer?
    private var closed = false

    init(pointer: OpaquePointer, configuration: OpaquePointer?) {
        self.pointer = pointer
        self.configuration = configuration
    }

    /// `snd_pcm_close`, then the configuration; only the engine's thread calls it.
    func close() {
        guard !closed else { return }
        closed = true
        snd_pcm_close(pointer)
        if let configuration { snd_config_delete(configuration) }
    }

    deinit { close() }
}
