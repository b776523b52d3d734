import Foundation
import SightlineArchive
import SightlineCore

/// Runs sync passes in the background, one at a time: every `interval` after a pass that
/// succeeded, and after a failure again in `minimumBackoff`, doubling up to `interval`, so a
/// device that is offline for a day neither hammers the network nor waits a whole interval
/// once it is back. `syncNow` runs a pass at once (after any pass already running).
public actor ArchiveSyncLoop {
    public let client: ArchiveSyncClient
    private let interval: Duration
    private let minimumBackoff: Duration
    private let observe: @Sendable (Result<ArchiveSyncPass, ArchiveSyncError>) -> Void
    /// The pass or fetch-back now running; the next waits for it.
    private var running: Task<Void, Never>?
    public private(set) var status: ArchiveSyncStatus

    public init(client: ArchiveSyncClient, interval: Duration, minimumBackoff: Duration = .seconds(5),
                observe: @escaping @Sendable (Result<ArchiveSyncPass, ArchiveSyncError>) -> Void = { _ in }) {
        self.client = client
        self.interval = interval
        self.minimumBackoff = min(minimumBackoff, interval)
        self.observe = observe
        status = ArchiveSyncStatus(url: client.target.url)
    }

    /// Waits after a pass: the interval after success, else the back-off for this many failures.
    func delay(afterFailures failures: Int) -> Duration {
        guard failures > 0 else { return interval }
        var wait = minimumBackoff
        for _ in 1..<failures where wait < interval { wait *= 2 }
        return min(wait, interval)
    }

    /// Runs passes until the task is cancelled; the first one at once.
    public func run() async {
        while !Task.isCancelled {
            _ = await syncNow()
            do {
                try await Task.sleep(for: delay(afterFailures: status.consecutiveFailures))
            } catch {
                return
            }
        }
    }

    /// One pass now, after the one already running (whose result may predate new evidence).
    public func syncNow() async -> Result<ArchiveSyncPass, ArchiveSyncError> {
        let client = self.client
        let result = await exclusively { () async -> Result<ArchiveSyncPass, ArchiveSyncError> in
            do throws(ArchiveSyncError) {
                return .success(try await client.syncAll())
            } catch {
                return .failure(error)
            }
        }
        let now = EvidenceArchive.systemClock()
        status.lastAttemptAt = now
        switch result {
        case .success:
            status.lastSuccessAt = now
            status.lastError = nil
            status.consecutiveFailures = 0
        case .failure(let error):
            status.lastError = error.description
            status.consecutiveFailures += 1
        }
        observe(result)
        return result
    }

    /// Puts the content of `caseIDs` that was removed after sync back on the device
    /// (`ArchiveSyncClient.fetchBack`), then runs `body` (an export) before any pass can remove
    /// it again.
    public func withContentOnDevice<T: Sendable>(of caseIDs: [String], _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let client = self.client
        return try await exclusively { () async -> Result<T, any Error> in
            do {
                _ = try await client.fetchBack(caseIDs)
                return .success(try await body())
            } catch {
                return .failure(error)
            }
        }.get()
    }

    /// Runs `work` when no pass or fetch-back is running, and keeps others waiting until it ends.
    private func exclusively<T: Sendable>(_ work: @escaping @Sendable () async -> T) async -> T {
        // Callers that waited for the same task must not then start two at once: each waits
        // until nothing is running when it gets the actor back.
        while let previous = running {
            await previous.value
            if running == previous { running = nil }
        }
        let task = Task { await work() }
        let done = Task { _ = await task.value }
        running = done
        // A caller that goes away (the daemon shutting down) takes its work with it: what the
        // server confirmed is marked already, the rest goes next time.
        let result = await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
        if running == done { running = nil }
        return result
    }
}
