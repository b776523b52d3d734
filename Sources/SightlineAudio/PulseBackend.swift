import CPulse
import Foundation
import SightlineCore
import Synchronization

/// PulseAudio (or PipeWire's Pulse server) through libpulse's asynchronous API.
///
/// Each stream owns a `pa_threaded_mainloop` (libpulse's own event thread) and a worker thread
/// that waits on it for data, so nothing blocks the cooperative pool. When the server goes away
/// the stream tears its context down and reconnects with a back-off until the server is back;
/// the process never needs a restart.
public struct PulseBackend: AudioBackend {
    public var kind: AudioBackendKind { .pulse }
    /// A libpulse server string such as `unix:/run/user/1000/pulse/native`; nil for libpulse's
    /// defaults (`PULSE_SERVER`, the user's runtime directory).
    public let server: String?
    /// Capture fragment size asked of the server; small values stop an idle server from
    /// delivering in bursts of seconds.
    public let latency: Duration
    /// Audio the server holds for playback (`tlength`): the margin against underruns when this
    /// process is late, and part of mouth-to-ear delay.
    public let playbackLatency: Duration

    public init(server: String? = nil, latency: Duration = .milliseconds(20), playbackLatency: Duration = .milliseconds(60)) {
        self.server = server
        self.latency = latency
        self.playbackLatency = playbackLatency
    }

    public func openCapture(device: String?, format: AudioFormat) throws -> any AudioCapture {
        BackendCapture(engine: try PulseStreamEngine(direction: .capture, server: server, device: device, format: format, latency: latency))
    }

    public func openPlayback(device: String?, format: AudioFormat, source: AudioFrameSource?) throws -> any AudioPlayback {
        BackendPlayback(engine: try PulseStreamEngine(direction: .playback, server: server, device: device, format: format,
                                                      latency: playbackLatency, source: source))
    }

    /// Connects a context and disconnects again: is a server answering at `server`?
    /// Used by `auto` backend selection.
    public static func probe(server: String?, timeout: Duration = .seconds(1)) -> AudioError? {
        do throws(AudioError) {
            _ = try PulseQuery(server: server, timeout: timeout)
            return nil
        } catch {
            return error
        }
    }

    /// The server's name for an ALSA node: its source (capture) or sink (playback) whose
    /// `alsa.card` and `alsa.device` are the node's. Blocks for up to `timeout` (libpulse's
    /// introspection on a private mainloop): call it off the cooperative pool.
    public func deviceName(for address: SoundDeviceAddress) throws -> String {
        switch SoundServerMatch.device(for: address, among: try devices(address.direction)) {
        case .success(let name): return name
        case .failure(let missing): throw AudioError.noServerDevice(missing)
        }
    }

    /// The server's sources or sinks with their properties (`pa_context_get_source_info_list`,
    /// `pa_context_get_sink_info_list`).
    public func devices(_ direction: SoundDeviceAddress.Direction, timeout: Duration = .seconds(2)) throws(AudioError) -> [SoundServerDevice] {
        try PulseQuery(server: server, timeout: timeout).devices(direction)
    }
}

/// One Pulse stream with its mainloop, context, worker thread and reconnection.
///
/// All `pa_*` state below is touched only with the mainloop lock held (libpulse's rule for the
/// threaded mainloop); libpulse callbacks only signal the worker, which does the work.
final class PulseStreamEngine: StreamEngine, @unchecked Sendable {
    enum Direction { case capture, playback }

    let direction: Direction
    let server: String?
    let device: String?
    let format: AudioFormat
    let latency: Duration
    /// Where a pulled playback stream gets its frames; nil for one fed through `queue`.
    let source: AudioFrameSource?
    let queue: AudioFrameQueue

    private let mainloop: OpaquePointer
    // Guarded by the mainloop lock:
    private var context: OpaquePointer?
    private var stream: OpaquePointer?
    private var wasReady = false
    private var playbackPending: [Int16] = []
    /// Worker thread only.
    private var clock: CaptureClock

    let control = StreamControl()
    /// Set while `drain` waits for the server to play out: the underflow that ends every
    /// drained stream is not an underrun.
    private let draining = Atomic<Bool>(false)

    init(direction: Direction, server: String?, device: String?, format: AudioFormat, latency: Duration,
         source: AudioFrameSource? = nil) throws(AudioError) {
        guard format.sampleRate > 0, (1...8).contains(format.channels) else { throw .unsupportedFormat(.init(text: format.description)) }
        guard let mainloop = pa_threaded_mainloop_new() else { throw .pulse(operation: "pa_threaded_mainloop_new", code: Int32(PA_ERR_INTERNAL.rawValue)) }
        self.mainloop = mainloop
        self.direction = direction
        self.server = server
        self.device = device
        self.format = format
        self.latency = latency
        self.source = source
        // One second of audio either way: enough to ride out a slow consumer, bounded.
        queue = AudioFrameQueue(capacity: 1000 / AudioFrame.milliseconds)
        // Pulse's latency estimates jitter by 100 ms and more on a busy machine.
        clock = CaptureClock(format: format, gapTolerance: .milliseconds(250))
        guard pa_threaded_mainloop_start(mainloop) >= 0 else {
            pa_threaded_mainloop_free(mainloop)
            throw .pulse(operation: "pa_threaded_mainloop_start", code: Int32(PA_ERR_INTERNAL.rawValue))
        }
        let thread = Thread { [self] in run() }
        thread.name = "pulse \(direction == .capture ? "capture" : "playback") \(device ?? "default")"
        thread.start()
    }

    /// The worker thread holds a reference until it has stopped the mainloop, so this runs after.
    deinit { pa_threaded_mainloop_free(mainloop) }

    func stop() async {
        if control.requestStop() {
            queue.finish()
            pa_threaded_mainloop_lock(mainloop)
            pa_threaded_mainloop_signal(mainloop, 0)
            pa_threaded_mainloop_unlock(mainloop)
        }
        await control.waitUntilFinished()
    }

    /// Waits until everything queued has been handed to the server and the server has played
    /// it (`pa_stream_drain`): a stream stopped earlier would cut off what the server still holds.
    func drain(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            pa_threaded_mainloop_lock(mainloop)
            let empty = playbackPending.isEmpty
            pa_threaded_mainloop_unlock(mainloop)
            if empty, queue.count == 0 { return await drainServer(until: deadline) }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    private func drainServer(until deadline: ContinuousClock.Instant) async -> Bool {
        draining.store(true, ordering: .releasing)
        defer { draining.store(false, ordering: .releasing) }
        pa_threaded_mainloop_lock(mainloop)
        let operation: OpaquePointer? = stream.flatMap { stream in
            guard pa_stream_get_state(stream) == PA_STREAM_READY else { return nil }
            return pa_stream_drain(stream, { _, _, userdata in
                guard let userdata else { return }
                pa_threaded_mainloop_signal(OpaquePointer(userdata), 0)
            }, UnsafeMutableRawPointer(mainloop))
        }
        pa_threaded_mainloop_unlock(mainloop)
        // No stream (the server is away): nothing more can be played.
        guard let operation else { return direction == .capture }
        defer { pa_operation_unref(operation) }
        while ContinuousClock.now < deadline {
            pa_threaded_mainloop_lock(mainloop)
            let state = pa_operation_get_state(operation)
            pa_threaded_mainloop_unlock(mainloop)
            if state != PA_OPERATION_RUNNING { return state == PA_OPERATION_DONE }
            try? await Task.sleep(for: .milliseconds(5))
        }
        pa_threaded_mainloop_lock(mainloop)
        pa_operation_cancel(operation)
        pa_threaded_mainloop_unlock(mainloop)
        return false
    }

    private var isStopping: Bool { control.isStopping }

    // MARK: Worker thread

    private func run() {
        var assembler = AudioFrameAssembler(format: format)
        var failures = 0
        pa_threaded_mainloop_lock(mainloop)
        while !isStopping {
            guard let context else {
                if failures > 0 {
                    // Back off 50 ms, 100 ms, … up to 1 s while the server is away.
                    let delay = min(1000, 50 << min(failures - 1, 5))
                    pa_threaded_mainloop_unlock(mainloop)
                    sleepUnlessStopping(milliseconds: delay)
                    pa_threaded_mainloop_lock(mainloop)
                    if isStopping { break }
                }
                failures += 1
                connectContext()
                continue
            }
            switch pa_context_get_state(context) {
            case PA_CONTEXT_READY:
                break
            case PA_CONTEXT_FAILED, PA_CONTEXT_TERMINATED:
                noteError(AudioError.pulseUnavailable(server: server, reason: AudioError.pulseMessage(pa_context_errno(context))).description)
                teardown()
                continue
            default:
                pa_threaded_mainloop_wait(mainloop)
                continue
            }
            guard let stream else {
                if !connectStream(context: context) { teardown() }
                continue
            }
            switch pa_stream_get_state(stream) {
            case PA_STREAM_READY:
                if failures > 0 {
                    clock.reset()
                    let reconnected = wasReady
                    control.statistics.withLock {
                        $0.connected = true
                        $0.lastError = nil
                        if reconnected { $0.reconnects += 1 }
                    }
                    wasReady = true
                    failures = 0
                }
            case PA_STREAM_FAILED, PA_STREAM_TERMINATED:
                noteError(AudioError.pulse(operation: "stream on \(device ?? "the default device")", code: pa_context_errno(context)).description)
                teardown()
                continue
            default:
                pa_threaded_mainloop_wait(mainloop)
                continue
            }
            switch direction {
            case .capture: captureStep(stream: stream, assembler: &assembler)
            case .playback: playbackStep(stream: stream)
            }
        }
        teardown()
        pa_threaded_mainloop_unlock(mainloop)
        // Freed in deinit, not here: `stop` may still take the lock to signal.
        pa_threaded_mainloop_stop(mainloop)
        control.statistics.withLock { $0.connected = false }
        queue.finish()
        control.markFinished()
    }

    /// Reads what the server has (`pa_stream_peek`/`pa_stream_drop`) and hands whole 20 ms frames
    /// to the queue, waiting for room without holding the mainloop lock.
    private func captureStep(stream: OpaquePointer, assembler: inout AudioFrameAssembler) {
        var data: UnsafeRawPointer?
        var length = 0
        guard pa_stream_peek(stream, &data, &length) >= 0 else {
            noteError(AudioError.pulse(operation: "pa_stream_peek", code: pa_context_errno(context)).description)
            teardown()
            return
        }
        guard length > 0 else {
            pa_threaded_mainloop_wait(mainloop)
            return
        }
        guard let data else {
            // A hole in the stream: samples were lost, so the current frame cannot continue.
            pa_stream_drop(stream)
            assembler.discardPartial()
            control.statistics.withLock { $0.xruns += 1 }
            return
        }
        let sampleCount = length / 2
        let samples = [Int16](unsafeUninitializedCapacity: sampleCount) { buffer, count in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(start: data, count: sampleCount * 2))
            count = sampleCount
        }
        pa_stream_drop(stream)
        // The chunk's first sample was captured `latency` ago (pa_stream_get_latency), when known.
        var latencyMicroseconds: pa_usec_t = 0
        var negative: Int32 = 0
        let now = MonotonicTime.now()
        let captured = pa_stream_get_latency(stream, &latencyMicroseconds, &negative) == 0 && negative == 0
            ? now - .microseconds(Int64(latencyMicroseconds))
            : now - format.duration(frames: sampleCount / format.channels)
        let isMuted = control.isMuted
        pa_threaded_mainloop_unlock(mainloop)
        let (timestamp, _) = clock.stamp(frames: sampleCount / format.channels, measured: captured)
        let frames = assembler.append(samples.map { Int16(littleEndian: $0) }, capturedAt: timestamp)
        if isMuted {
            control.statistics.withLock { $0.mutedFrames += UInt64(frames.count) }
        } else {
            for frame in frames {
                let blockedSince = ContinuousClock.now
                while !isStopping, !queue.push(frame, timeout: .milliseconds(100)) {}
                // libpulse does not tell a record stream that it dropped data nobody read: while
                // this thread waited longer than the stream's buffer holds, audio was certainly lost.
                if ContinuousClock.now - blockedSince >= Self.recordBuffer {
                    control.statistics.withLock { $0.xruns += 1 }
                }
                let level = AudioLevel(samples: frame.samples)
                control.statistics.withLock {
                    $0.frames += 1
                    $0.level = level
                }
            }
        }
        pa_threaded_mainloop_lock(mainloop)
    }

    /// Writes queued (or pulled) frames as far as the server has room (`pa_stream_writable_size`).
    private func playbackStep(stream: OpaquePointer) {
        if playbackPending.isEmpty, let source {
            // Pulled: one frame whenever the server has room for one, so what waits ahead of
            // the speaker never exceeds `tlength`.
            let writable = pa_stream_writable_size(stream)
            guard writable != Int.max, writable >= format.samplesPerFrame * 2 else {
                pa_threaded_mainloop_wait(mainloop)
                return
            }
            pa_threaded_mainloop_unlock(mainloop)
            let samples = source() ?? [Int16](repeating: 0, count: format.samplesPerFrame)
            pa_threaded_mainloop_lock(mainloop)
            playbackPending = samples
            let level = AudioLevel(samples: samples)
            control.statistics.withLock {
                $0.frames += 1
                $0.level = level
            }
            return
        }
        if playbackPending.isEmpty {
            pa_threaded_mainloop_unlock(mainloop)
            let frame = queue.pop(timeout: .milliseconds(50))
            pa_threaded_mainloop_lock(mainloop)
            if let frame {
                playbackPending.append(contentsOf: frame.samples)
                let level = AudioLevel(samples: frame.samples)
                control.statistics.withLock {
                    $0.frames += 1
                    $0.level = level
                }
            }
            return
        }
        let writable = pa_stream_writable_size(stream)
        guard writable != Int.max, writable >= 2 else {
            pa_threaded_mainloop_wait(mainloop)
            return
        }
        let count = min(playbackPending.count, writable / 2)
        let result = playbackPending.withUnsafeBufferPointer { samples in
            pa_stream_write(stream, samples.baseAddress, count * 2, nil, 0, PA_SEEK_RELATIVE)
        }
        guard result >= 0 else {
            noteError(AudioError.pulse(operation: "pa_stream_write", code: pa_context_errno(context)).description)
            teardown()
            return
        }
        playbackPending.removeFirst(count)
        // Timing updates come on their own (PA_STREAM_AUTO_TIMING_UPDATE); this only reads them.
        var latencyMicroseconds: pa_usec_t = 0
        var negative: Int32 = 0
        if pa_stream_get_latency(stream, &latencyMicroseconds, &negative) == 0 {
            // What the server holds, and what still waits here for room in it.
            let server = negative == 0 ? Double(latencyMicroseconds) / 1000 : 0
            let waiting = Double(queue.count * AudioFrame.milliseconds) + Double(playbackPending.count / format.channels) * 1000 / Double(format.sampleRate)
            control.statistics.withLock { $0.latencyMs = server + waiting }
        }
    }

    /// What a record stream buffers in the client before libpulse drops audio.
    static let recordBuffer = Duration.milliseconds(500)

    private static func byteCount(_ duration: Duration, format: AudioFormat) -> UInt32 {
        let milliseconds = Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
        return UInt32(format.frames(milliseconds: max(1, milliseconds)) * format.channels * 2)
    }

    private func connectContext() {
        guard let api = pa_threaded_mainloop_get_api(mainloop), let context = pa_context_new(api, "sightline") else {
            noteError(AudioError.pulse(operation: "pa_context_new", code: Int32(PA_ERR_INTERNAL.rawValue)).description)
            return
        }
        pa_context_set_state_callback(context, { _, userdata in
            guard let userdata else { return }
            pa_threaded_mainloop_signal(OpaquePointer(userdata), 0)
        }, UnsafeMutableRawPointer(mainloop))
        guard pa_context_connect(context, server, PA_CONTEXT_NOAUTOSPAWN, nil) >= 0 else {
            noteError(AudioError.pulseUnavailable(server: server, reason: AudioError.pulseMessage(pa_context_errno(context))).description)
            pa_context_set_state_callback(context, nil, nil)
            pa_context_unref(context)
            return
        }
        self.context = context
    }

    private func connectStream(context: OpaquePointer) -> Bool {
        var spec = pa_sample_spec(format: PA_SAMPLE_S16LE, rate: UInt32(format.sampleRate), channels: UInt8(format.channels))
        guard let stream = pa_stream_new(context, direction == .capture ? "capture" : "playback", &spec, nil) else {
            noteError(AudioError.pulse(operation: "pa_stream_new", code: pa_context_errno(context)).description)
            return false
        }
        let signal: pa_stream_notify_cb_t = { _, userdata in
            guard let userdata else { return }
            pa_threaded_mainloop_signal(OpaquePointer(userdata), 0)
        }
        let request: pa_stream_request_cb_t = { _, _, userdata in
            guard let userdata else { return }
            pa_threaded_mainloop_signal(OpaquePointer(userdata), 0)
        }
        let loop = UnsafeMutableRawPointer(mainloop)
        let engine = Unmanaged.passUnretained(self).toOpaque()
        pa_stream_set_state_callback(stream, signal, loop)
        // A pulled stream's source answers at once, so two frames (one playing, one ready)
        // are enough; more would only be heard as delay.
        let bytes = Self.byteCount(source == nil ? latency : min(latency, .milliseconds(2 * AudioFrame.milliseconds)), format: format)
        let unset = UInt32.max
        var attributes: pa_buffer_attr
        let flags = pa_stream_flags_t(rawValue: PA_STREAM_ADJUST_LATENCY.rawValue | PA_STREAM_AUTO_TIMING_UPDATE.rawValue
                                      | PA_STREAM_INTERPOLATE_TIMING.rawValue)
        let result: Int32
        switch direction {
        case .capture:
            pa_stream_set_read_callback(stream, request, loop)
            // Bounded: a consumer stalled longer loses audio, counted as an xrun.
            attributes = pa_buffer_attr(maxlength: Self.byteCount(Self.recordBuffer, format: format), tlength: unset, prebuf: unset,
                                        minreq: unset, fragsize: bytes)
            result = pa_stream_connect_record(stream, device, &attributes, flags)
        case .playback:
            pa_stream_set_write_callback(stream, request, loop)
            pa_stream_set_underflow_callback(stream, { _, userdata in
                guard let userdata else { return }
                let engine = Unmanaged<PulseStreamEngine>.fromOpaque(userdata).takeUnretainedValue()
                guard !engine.draining.load(ordering: .acquiring) else { return }
                engine.control.statistics.withLock { $0.xruns += 1 }
            }, engine)
            // Playback starts once one 20 ms frame is buffered, not a full `tlength` (Pulse's
            // default), so the first sound of a clip is not held back for the whole buffer.
            attributes = pa_buffer_attr(maxlength: unset, tlength: bytes,
                                        prebuf: min(bytes, Self.byteCount(.milliseconds(AudioFrame.milliseconds), format: format)),
                                        minreq: unset, fragsize: unset)
            result = pa_stream_connect_playback(stream, device, &attributes, flags, nil, nil)
        }
        self.stream = stream
        guard result >= 0 else {
            noteError(AudioError.pulse(operation: direction == .capture ? "pa_stream_connect_record" : "pa_stream_connect_playback",
                                       code: pa_context_errno(context)).description)
            return false
        }
        return true
    }

    /// Drops stream and context (callbacks first, so none fires into a stale state).
    private func teardown() {
        if let stream {
            pa_stream_set_state_callback(stream, nil, nil)
            pa_stream_set_read_callback(stream, nil, nil)
            pa_stream_set_write_callback(stream, nil, nil)
            pa_stream_set_underflow_callback(stream, nil, nil)
            if pa_stream_get_state(stream) == PA_STREAM_READY || pa_stream_get_state(stream) == PA_STREAM_CREATING {
                pa_stream_disconnect(stream)
            }
            pa_stream_unref(stream)
            self.stream = nil
        }
        if let context {
            pa_context_set_state_callback(context, nil, nil)
            pa_context_disconnect(context)
            pa_context_unref(context)
            self.context = nil
        }
        control.statistics.withLock { $0.connected = false }
    }

    private func noteError(_ message: String) {
        control.statistics.withLock { $0.lastError = message }
    }

    private func sleepUnlessStopping(milliseconds: Int) {
        var left = milliseconds
        while left > 0, !isStopping {
            usleep(UInt32(min(left, 10) * 1000))
            left -= 10
        }
    }
}
