import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import SightlineCore
import SightlineSystem
import SightlineVoice

/// The voice-command journal, `STATE/voice/commands.jsonl`: one JSON line per command, mode 0600
/// in a 0700 directory. Bounded: past `maximumBytes` the file moves to `commands.jsonl.1` (the one
/// before is dropped). Appends run on a serial queue of their own, never on the cooperative pool.
final class VoiceJournal: Sendable {
    let path: String
    private let maximumBytes: Int
    private let queue = DispatchQueue(label: "sightline.voice-journal")

    init(stateDirectory: String, maximumBytes: Int = 1 << 20) throws(SystemError) {
        let directory = (stateDirectory as NSString).appendingPathComponent("voice")
        try SecureFiles.ensurePrivateDirectory(directory)
        path = (directory as NSString).appendingPathComponent("commands.jsonl")
        self.maximumBytes = maximumBytes
    }

    func append(_ entry: VoiceJournalEntry) async throws(SystemError) {
        let path = self.path, limit = maximumBytes
        let result: Result<Void, SystemError> = await withCheckedContinuation { done in
            queue.async { done.resume(returning: Self.write(entry.line, to: path, limit: limit)) }
        }
        try result.get()
    }

    private static func write(_ line: Data, to path: String, limit: Int) -> Result<Void, SystemError> {
        var info = stat()
        if stat(path, &info) == 0, Int(info.st_size) + line.count > limit, rename(path, path + ".1") != 0 {
            return .failure(SystemError("rename", path: path, errno: errno))
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return .failure(SystemError("open", path: path, errno: errno)) }
        defer { close(fd) }
        // One write of the whole line: O_APPEND keeps lines whole even if another writer appears.
        let written = line.withUnsafeBytes { buffer in
            var result: Int
            repeat { result = Foundation.write(fd, buffer.baseAddress, buffer.count) } while result < 0 && errno == EINTR
            return result
        }
        guard written == line.count else { return .failure(SystemError("write", path: path, errno: written < 0 ? errno : EIO)) }
        return .success(())
    }
}

/// Listens for voice commands in the 16 kHz mono tap of the microphone, runs each command's
/// action and journals it. Recognition runs on the listener's own thread; the audio pump never
/// waits for it (a full backlog drops audio and says so in the status).
final class VoiceService: Sendable {
    /// What a command does; returns the result for the journal (`done`, or why not).
    typealias Perform = @Sendable (RecognizedCommand) async -> String

    static let name = "voice"
    private let configuration: DaemonConfiguration.VoiceConfiguration
    private let journal: VoiceJournal
    private let state: DaemonState
    private let logger: Logger
    private let perform: Perform
    private let backlogSeconds: Int
    private let board: VoiceStatusBoard?
    /// Sees every chunk the recognizer gets (the voice-note recorder); must not block.
    private let tap: (@Sendable ([Int16]) -> Void)?

    /// - Parameter backlogSeconds: audio that may wait for the recognizer before new audio is dropped.
    init(configuration: DaemonConfiguration.VoiceConfiguration, journal: VoiceJournal, state: DaemonState, logger: Logger,
         backlogSeconds: Int = 5, board: VoiceStatusBoard? = nil, tap: (@Sendable ([Int16]) -> Void)? = nil, perform: @escaping Perform) {
        self.board = board
        self.tap = tap
        self.configuration = configuration
        self.backlogSeconds = backlogSeconds
        self.journal = journal
        self.state = state
        self.logger = logger
        self.perform = perform
    }

    /// Recognizes commands in `audio` (16 kHz mono chunks) until it ends or the task is cancelled.
    func run<Audio: AsyncSequence & Sendable>(audio: Audio) async where Audio.Element == [Int16] {
        await state.set(Self.name, .starting, "loading the speech model")
        let listener: VoiceCommandListener
        do {
            listener = try await VoiceCommandListener.start(
                modelDirectory: configuration.modelDirectory, vocabulary: configuration.vocabulary,
                thresholds: configuration.thresholds, noiseTransformFile: configuration.noiseTransformFile,
                backlogSeconds: backlogSeconds)
        } catch {
            logger.error("voice commands unavailable", metadata: ["error": "\(error)"])
            await state.set(Self.name, .failed, error.description)
            return
        }
        await state.set(Self.name, .running, "listening for \(configuration.vocabulary.phrases.count) phrases")
        board?.setListening(true)
        defer { board?.setListening(false) }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for try await chunk in audio {
                        listener.submit(chunk)
                        self.tap?(chunk)
                    }
                } catch {
                    self.logger.warning("voice audio ended with an error", metadata: ["error": "\(error)"])
                }
                let statistics = await listener.finish()
                if let failure = statistics.failure {
                    self.logger.error("voice recognizer stopped", metadata: ["error": "\(failure)"])
                    await self.state.set(Self.name, .failed, failure.description)
                } else {
                    await self.state.set(Self.name, .stopped, "audio ended; \(statistics.droppedSamples / 16) ms of audio dropped")
                }
            }
            group.addTask {
                for await decision in listener.decisions {
                    if let command = decision.command { await self.handle(command) } else { self.logRejection(decision) }
                }
            }
        }
    }

    /// At debug level, because in a hall most utterances are talk; what an integrator reads
    /// when a command was said and nothing happened (`sightctl voice test --all` shows the same).
    private func logRejection(_ decision: UtteranceDecision) {
        logger.debug("voice utterance rejected", metadata: [
            "heard": "\(decision.phrase)", "reason": "\(decision.rejection?.rawValue ?? "")", "margin": "\(decision.margin)",
            "speech_ms": "\(Int(decision.speechSeconds * 1000))",
        ])
    }

    private func handle(_ command: RecognizedCommand) async {
        logger.info("voice command", metadata: [
            "phrase": "\(command.phrase)", "action": "\(command.action.rawValue)", "margin": "\(command.margin)",
        ])
        let result = await perform(command)
        do {
            try await journal.append(VoiceJournalEntry(time: Date(), command: command, result: result))
        } catch {
            logger.error("voice journal not written", metadata: ["error": "\(error)"])
            await state.set(Self.name, .degraded, "the command journal cannot be written: \(error)")
        }
    }
}

/// Runs `VoiceService` in the daemon's service group on the microphone's voice tap; a graceful
/// shutdown ends the tap's stream, which ends recognition. A recognizer that cannot start (no
/// model) stays failed in the status until shutdown instead of ending the service group.
struct VoiceListeningService: Service {
    let voice: VoiceService
    let audio: AsyncStream<[Int16]>
    let feed: AsyncStream<[Int16]>.Continuation

    func run() async throws {
        await withGracefulShutdownHandler {
            await voice.run(audio: audio)
        } onGracefulShutdown: {
            feed.finish()
        }
        try? await gracefulShutdown()
    }
}
