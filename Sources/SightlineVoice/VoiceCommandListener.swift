import Dispatch
import Foundation
import SightlineCore
import Synchronization

/// Runs a `CommandRecognizer` on a dedicated thread fed from a bounded queue of 16 kHz mono
/// chunks, and hands every utterance's decision out as an `AsyncStream`. Capture never waits for
/// recognition: when more than `backlogSeconds` of audio waits, new chunks are dropped and counted.
public final class VoiceCommandListener: Sendable {
    /// Every utterance's decision, accepted or not; `commands` filters the accepted ones.
    public let decisions: AsyncStream<UtteranceDecision>
    private let continuation: AsyncStream<UtteranceDecision>.Continuation
    private let state: Mutex<QueueState>
    private let wake = DispatchSemaphore(value: 0)
    private let backlogSamples: Int

    struct QueueState {
        var chunks: [[Int16]] = []
        var queuedSamples = 0
        var droppedSamples = 0
        var finishing = false
        var finished = false
        var failure: VoiceRecognizerError?
    }

    public struct Statistics: Sendable, Equatable {
        public var droppedSamples: Int
        public var failure: VoiceRecognizerError?
    }

    private init(backlogSeconds: Int) {
        (decisions, continuation) = AsyncStream.makeStream(of: UtteranceDecision.self, bufferingPolicy: .bufferingNewest(256))
        state = Mutex(QueueState())
        backlogSamples = max(1, backlogSeconds) * CommandRecognizer.sampleRate
    }

    /// Loads the model on the listener's own thread and returns once it is listening.
    public static func start(modelDirectory: String, vocabulary: VoiceVocabulary, thresholds: VoiceThresholds,
                             noiseTransformFile: String? = nil,
                             backlogSeconds: Int = 5) async throws(VoiceRecognizerError) -> VoiceCommandListener {
        let listener = VoiceCommandListener(backlogSeconds: backlogSeconds)
        let started: Result<Void, VoiceRecognizerError> = await withCheckedContinuation { ready in
            let thread = Thread {
                let recognizer: CommandRecognizer
                do {
                    recognizer = try CommandRecognizer(modelDirectory: modelDirectory, vocabulary: vocabulary, thresholds: thresholds,
                                                       noiseTransformFile: noiseTransformFile)
                } catch let error as VoiceRecognizerError {
                    ready.resume(returning: .failure(error))
                    return
                } catch {
                    preconditionFailure("CommandRecognizer throws only VoiceRecognizerError")
                }
                ready.resume(returning: .success(()))
                listener.run(recognizer)
            }
            thread.name = "voice commands"
            thread.start()
        }
        try started.get()
        return listener
    }

    /// The accepted commands only.
    public var commands: AsyncCompactMapSequence<AsyncStream<UtteranceDecision>, RecognizedCommand> {
        decisions.compactMap(\.command)
    }

    /// Queues a chunk of 16 kHz mono samples; never blocks.
    public func submit(_ samples: [Int16]) {
        let accepted = state.withLock { state in
            guard !state.finishing, state.queuedSamples + samples.count <= backlogSamples else {
                state.droppedSamples += samples.count
                return false
            }
            state.chunks.append(samples)
            state.queuedSamples += samples.count
            return true
        }
        if accepted { wake.signal() }
    }

    public var statistics: Statistics {
        state.withLock { Statistics(droppedSamples: $0.droppedSamples, failure: $0.failure) }
    }

    /// Decodes what is queued, judges the utterance still open, finishes `decisions` and waits for
    /// the thread to end.
    public func finish() async -> Statistics {
        state.withLock { $0.finishing = true }
        wake.signal()
        while !state.withLock({ $0.finished }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        return statistics
    }

    private func run(_ recognizer: consuming CommandRecognizer) {
        defer {
            continuation.finish()
            state.withLock { $0.finished = true }
        }
        while true {
            wake.wait()
            let (chunks, finishing) = state.withLock { state in
                defer {
                    state.chunks.removeAll(keepingCapacity: true)
                    state.queuedSamples = 0
                }
                return (state.chunks, state.finishing)
            }
            do throws(VoiceRecognizerError) {
                for chunk in chunks {
                    for decision in try recognizer.process(chunk) { continuation.yield(decision) }
                }
                if finishing {
                    for decision in try recognizer.finish() { continuation.yield(decision) }
                    return
                }
            } catch {
                state.withLock { $0.failure = error }
                return
            }
        }
    }
}

extension CommandRecognizer {
    /// Decides every utterance of a whole recording on a dedicated thread: what
    /// `sightctl voice test` runs, with the same recognizer and thresholds as the daemon.
    public static func decide(samples: [Int16], modelDirectory: String, vocabulary: VoiceVocabulary, thresholds: VoiceThresholds,
                              noiseTransformFile: String? = nil) async throws(VoiceRecognizerError) -> [UtteranceDecision] {
        try await decide(samples: samples, modelDirectory: modelDirectory, vocabulary: vocabulary, thresholds: thresholds,
                         noiseTransformFile: noiseTransformFile, keepingHeardAudio: false).decisions
    }

    /// `decide`, also returning the audio as the decoders heard it (after noise suppression) when
    /// `keepingHeardAudio`: `sightctl voice test --write-heard`.
    public static func decide(samples: [Int16], modelDirectory: String, vocabulary: VoiceVocabulary, thresholds: VoiceThresholds,
                              noiseTransformFile: String? = nil, keepingHeardAudio: Bool) async throws(VoiceRecognizerError) -> (decisions: [UtteranceDecision], heard: [Int16]?) {
        let result: Result<([UtteranceDecision], [Int16]?), VoiceRecognizerError> = await withCheckedContinuation { done in
            let thread = Thread {
                do throws(VoiceRecognizerError) {
                    var recognizer = try CommandRecognizer(modelDirectory: modelDirectory, vocabulary: vocabulary, thresholds: thresholds,
                                                           noiseTransformFile: noiseTransformFile)
                    if keepingHeardAudio { recognizer.heardAudio = [] }
                    var decisions = try recognizer.process(samples)
                    decisions += try recognizer.finish()
                    done.resume(returning: .success((decisions, recognizer.heardAudio)))
                } catch {
                    done.resume(returning: .failure(error))
                }
            }
            thread.name = "voice test"
            thread.start()
        }
        return try result.get()
    }
}
