import Foundation
import SightlineArchive
@testable import SightlineSync
import SightlineTesting
import Testing

@Suite("The background sync loop")
struct ArchiveSyncLoopTests {
    @Test("Back-off after failures: 5 s, doubling, capped at the interval; the interval after success")
    func backOff() async throws {
        let device = try DeviceArchive()
        let loop = ArchiveSyncLoop(client: device.client("http://127.0.0.1:9"), interval: .seconds(60))
        #expect(await loop.delay(afterFailures: 0) == .seconds(60))
        #expect(await loop.delay(afterFailures: 1) == .seconds(5))
        #expect(await loop.delay(afterFailures: 2) == .seconds(10))
        #expect(await loop.delay(afterFailures: 4) == .seconds(40))
        #expect(await loop.delay(afterFailures: 5) == .seconds(60))
        #expect(await loop.delay(afterFailures: 50) == .seconds(60))
    }

    @Test("Passes asked for at once all succeed and upload each blob once; the server holds everything once", arguments: TestStore.allCases)
    func passesDoNotOverlap(store: TestStore) async throws {
        guard store.isAvailable() else { return }
        let server = try await ArchiveServerHarness.start(store: store)
        defer { Task { await server.stop() } }
        let device = try DeviceArchive(chunkSize: 64 * 1024)
        let caseID = try device.fileCase(photos: 6, size: 400_000)
        let loop = ArchiveSyncLoop(client: device.client(server.url, chunkBytes: 64 * 1024), interval: .seconds(60))
        let results = await withTaskGroup(of: Result<ArchiveSyncPass, ArchiveSyncError>.self) { group in
            for _ in 0..<4 { group.addTask { await loop.syncNow() } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let passes = try results.map { try $0.get() }
        #expect(passes.map(\.blobs).reduce(0, +) == 6)
        let status = await loop.status
        #expect(status.consecutiveFailures == 0 && status.lastError == nil)
        try await expectServerHolds(caseID, of: device, storage: server.storage)
    }

    @Test("Cancelling the caller (a daemon shutting down) stops the pass mid-upload; the next pass finishes it")
    func cancellationStopsThePass() async throws {
        let server = try await ArchiveServerHarness.start()
        defer { Task { await server.stop() } }
        let device = try DeviceArchive()
        let caseID = try device.fileCase(photos: 1, size: 16 << 20)
        let sha = try device.archive.projection(caseID).items.first?.item.blob?.hex ?? ""
        let loop = ArchiveSyncLoop(client: device.client(server.url, chunkBytes: 64 * 1024), interval: .seconds(60))
        let caller = Task { await loop.syncNow() }
        let deadline = ContinuousClock.now + .seconds(60)
        while try await server.storage.receivedBytes(caseID, sha) < 1 << 20 {
            guard ContinuousClock.now < deadline else { throw TestFailure("the upload did not reach 1 MiB within a minute") }
            try await Task.sleep(for: .milliseconds(5))
        }
        caller.cancel()
        let cancelled = await caller.value
        #expect(throws: ArchiveSyncError.self) { try cancelled.get() }
        #expect(try await server.storage.blob(caseID, sha) == nil)
        #expect(try await server.storage.receivedBytes(caseID, sha) < 16 << 20)

        let finished = try await loop.syncNow().get()
        #expect(finished.blobs == 1 && finished.entries == 2)
        try await expectServerHolds(caseID, of: device, storage: server.storage)
    }
}
