import SightlineCore
import Synchronization

/// What a backend's per-stream engine (its device thread and handles) offers to the public
/// stream types; capture and playback differ only in which end of `queue` the engine serves.
protocol StreamEngine: AnyObject, Sendable {
    var format: AudioFormat { get }
    var queue: AudioFrameQueue { get }
    var control: StreamControl { get }
    func drain(timeout: Duration) async -> Bool
    func stop() async
}

/// A capture stream of any backend.
final class BackendCapture: AudioCapture {
    private let engine: any StreamEngine
    init(engine: any StreamEngine) { self.engine = engine }
    var format: AudioFormat { engine.format }
    var frames: AudioFrameQueue { engine.queue }
    var statistics: AudioStreamStatistics { engine.control.statistics.withLock { $0 } }
    func setMuted(_ muted: Bool) { engine.control.setMuted(muted) }
    func stop() async { await engine.stop() }
}

/// A playback stream of any backend.
final class BackendPlayback: AudioPlayback {
    private let engine: any StreamEngine
    init(engine: any StreamEngine) { self.engine = engine }
    var format: AudioFormat { engine.format }
    var statistics: AudioStreamStatistics { engine.control.statistics.withLock { $0 } }
    func play(_ frame: AudioFrame) async -> Bool { await engine.queue.send(frame) }
    func push(_ frame: AudioFrame, timeout: Duration) -> Bool { engine.queue.push(frame, timeout: timeout) }
    func drain(timeout: Duration) async -> Bool { await engine.drain(timeout: timeout) }
    func stop() async { await engine.stop() }
}

/// The state a stream's callers and its device thread share: counters, privacy mute, and the
/// stop handshake (a request, then the thread saying it has released everything).
final class StreamControl: Sendable {
    let statistics = Mutex(AudioStreamStatistics())
    private let stopping = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    private let muted = Atomic<Bool>(false)

    var isStopping: Bool { stopping.load(ordering: .acquiring) }
    var isMuted: Bool { muted.load(ordering: .acquiring) }

    func setMuted(_ value: Bool) {
        muted.store(value, ordering: .releasing)
        statistics.withLock { $0.muted = value }
    }

    /// True for the first caller only, who then wakes the thread.
    func requestStop() -> Bool { !stopping.exchange(true, ordering: .acquiringAndReleasing) }

    /// Called by the device thread as its last act.
    func markFinished() { finished.store(true, ordering: .releasing) }

    func waitUntilFinished() async {
        while !finished.load(ordering: .acquiring) {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }
}
