import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SightlineCore
import SightlineSystem

/// Runs the integrators' hooks (`hooks.run`) off the recognition and capture paths: reports go
/// into a bounded queue (a full queue drops and counts), one worker runs them in order. Programs
/// run on a thread of their own with a timeout that kills their process group, optionally as an
/// unprivileged user through setpriv; webhooks are posted with AsyncHTTPClient, retried with
/// doubling backoff. Every failure is logged with the hook's bounded output and counted in the
/// status; none reaches the action that caused it.
final class HookRunner: Service, Sendable {
    struct Job: Sendable {
        let hook: HookSpec
        let payload: HookPayload
    }

    private let configuration: DaemonConfiguration.HookConfiguration
    private let board: VoiceStatusBoard
    private let logger: Logger
    private let jobs: AsyncStream<Job>
    private let queue: AsyncStream<Job>.Continuation
    private let setprivPath: String
    /// First backoff of a failed webhook; doubles with every retry.
    private let firstBackoff: Duration

    init(configuration: DaemonConfiguration.HookConfiguration, board: VoiceStatusBoard, logger: Logger,
         setprivPath: String = "/usr/bin/setpriv", firstBackoff: Duration = .seconds(1)) {
        self.configuration = configuration
        self.board = board
        self.logger = logger
        self.setprivPath = setprivPath
        self.firstBackoff = firstBackoff
        let stream = AsyncStream.makeStream(of: Job.self, bufferingPolicy: .bufferingOldest(configuration.queue))
        jobs = stream.stream
        queue = stream.continuation
    }

    var isEmpty: Bool { configuration.hooks.isEmpty }

    /// Queues every hook of the report's action; never waits.
    func submit(_ payload: HookPayload) {
        for hook in configuration.hooks where hook.action.rawValue == payload.action {
            if case .dropped = queue.yield(Job(hook: hook, payload: payload)) {
                let reason = "hook queue full (hooks.queue: \(configuration.queue)); \(hook.label) skipped for \(payload.action)"
                logger.error("hook dropped", metadata: ["hook": "\(hook.label)", "action": "\(payload.action)", "queue": "\(configuration.queue)"])
                board.recordHookDropped(reason)
            }
        }
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            for await job in jobs { await execute(job) }
        } onGracefulShutdown: { [queue] in
            queue.finish()
        }
    }

    /// Runs one hook and records its outcome; returns the failure, if any (for tests).
    @discardableResult
    func execute(_ job: Job) async -> String? {
        let failure: String?
        switch job.hook.target {
        case .command(let path): failure = await runProgram(path, job.payload)
        case .webhook(let url): failure = await post(url, job.payload)
        }
        board.recordHook(failure: failure.map { "\(job.hook.label) for \(job.payload.action): \($0)" })
        return failure
    }

    private func runProgram(_ path: String, _ payload: HookPayload) async -> String? {
        var arguments = [path]
        if let user = configuration.user {
            guard let account = Self.account(user) else {
                let failure = "hooks.user \(user) does not exist; create it (useradd --system \(user)) or set hooks.user to \"\""
                logger.error("hook not run", metadata: ["hook": "\(path)", "problem": "\(failure)"])
                return failure
            }
            arguments = [setprivPath, "--reuid=\(account.uid)", "--regid=\(account.gid)", "--clear-groups", "--"] + arguments
        }
        var environment = payload.environment
        environment["PATH"] = "/usr/local/bin:/usr/bin:/bin"
        environment["LANG"] = "C.UTF-8"
        environment["HOME"] = "/"
        let timeout = Duration.milliseconds(configuration.timeoutMilliseconds)
        let input = payload.json
        let command = arguments, variables = environment
        let result: Result<ChildProcess.Outcome, SystemError> = await withCheckedContinuation { done in
            Thread {
                done.resume(returning: Result { () throws(SystemError) in
                    try ChildProcess.run(command, environment: variables, stdin: input, timeout: timeout)
                })
            }.start()
        }
        let metadata: Logger.Metadata = ["hook": "\(path)", "action": "\(payload.action)"]
        switch result {
        case .failure(let error):
            let failure = "could not start: \(error); check that \(path) exists and is executable"
            logger.error("hook failed", metadata: metadata.merging(["problem": "\(failure)"]) { $1 })
            return failure
        case .success(let outcome):
            var details = metadata
            details["stdout"] = "\(outcome.stdout)"
            details["stderr"] = "\(outcome.stderr)"
            if outcome.truncated { details["truncated"] = "true" }
            if outcome.succeeded {
                logger.info("hook ran", metadata: details)
                return nil
            }
            let failure = outcome.timedOut
                ? "timed out after \(configuration.timeoutMilliseconds) ms (hooks.timeout_ms); its process group was killed"
                : outcome.signal.map { "killed by signal \($0)" } ?? "exited with status \(outcome.status ?? -1)"
            details["problem"] = "\(failure)"
            logger.error("hook failed", metadata: details)
            return failure
        }
    }

    private func post(_ url: String, _ payload: HookPayload) async -> String? {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "sightlined/\(SightlineVersion.current)")
        request.body = .bytes(ByteBuffer(bytes: payload.json))
        var backoff = firstBackoff
        var failure = ""
        for attempt in 0...configuration.retries {
            if attempt > 0 {
                try? await Task.sleep(for: backoff)
                backoff *= 2
            }
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(Int64(configuration.timeoutMilliseconds)))
                var body = ""
                for try await chunk in response.body where body.utf8.count < 1024 {
                    body += String(buffer: chunk)
                }
                if (200..<300).contains(response.status.code) {
                    logger.info("webhook delivered", metadata: ["url": "\(url)", "action": "\(payload.action)", "status": "\(response.status.code)"])
                    return nil
                }
                failure = "HTTP \(response.status.code): \(body.prefix(1024))"
                // A client error will not change on retry.
                if (400..<500).contains(response.status.code), response.status.code != 408, response.status.code != 429 { break }
            } catch {
                failure = "\(error)"
            }
            logger.warning("webhook attempt failed", metadata: [
                "url": "\(url)", "action": "\(payload.action)", "attempt": "\(attempt + 1)", "problem": "\(failure)",
            ])
        }
        let summary = "\(failure) (after \(configuration.retries + 1) attempts)"
        logger.error("webhook failed", metadata: ["url": "\(url)", "action": "\(payload.action)", "problem": "\(summary)"])
        return summary
    }

    private static func account(_ name: String) -> (uid: UInt32, gid: UInt32)? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return (entry.pw_uid, entry.pw_gid)
    }
}
