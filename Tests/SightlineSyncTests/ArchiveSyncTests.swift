import Crypto
import Foundation
import SightlineArchive
import SightlineArchiveServer
import SightlineCore
import SightlineSync
import SightlineTesting
import Testing

@Suite("Archive sync over loopback")
struct ArchiveSyncTests {
    @Test("A device's cases arrive whole: chain, signatures and sealed blobs verified on the server; a second pass sends nothing",
          arguments: TestStore.allCases)
    func happyPath(store: TestStore) async throws {
        guard store.isAvailable() else { return }
        let server = try await ArchiveServerHarness.start(store: store)
        defer { Task { await server.stop() } }
        let device = try DeviceArchive(chunkSize: 64 * 1024)
        let first = try device.fileCase(photos: 5, size: 300_000)
        let second = try device.fileCase(photos: 2, size: 10, reference: "WO-2")
        try device.archive.close(second, reason: "done")
        let client = device.client(server.url)

        let pass = try await client.syncAll()
        #expect(pass.blobs == 7)
        #expect(pass.entries == 10)
        try await expectServerHolds(first, of: device, storage: server.storage)
        try await expectServerHolds(second, of: device, storage: server.storage)
        let counts = try device.archive.syncCounts()
        #expect(counts.pendingEntries == 0 && counts.pendingBlobs == 0)
        #expect(counts.syncedBlobs == 7)

        let metrics = try await archiveMetrics(server.url)
        #expect(metrics[#"sightline_archive_requests_total{route="blob_commit",status="200"}"#] == 7, "\(metrics)")
        #expect(metrics[#"sightline_archive_requests_total{route="journal_upload",status="200"}"#] == 2, "\(metrics)")
        #expect(metrics["sightline_archive_received_chunk_bytes_total"] ?? 0 > 5 * 300_000, "\(metrics)")

        let again = try await client.syncAll()
        #expect(again == ArchiveSyncPass())
        try device.archive.file(EvidenceDraft(kind: .textNote, capturedAt: 99, text: "later"), into: first)
        let later = try await client.syncAll()
        #expect(later.entries == 1 && later.blobs == 0)
        try await expectServerHolds(first, of: device, storage: server.storage)
        #expect(try device.archive.verifyAll().allSatisfy { if case .success = $0 { true } else { false } })
    }

    @Test("Two archive servers sharing one PostgreSQL database: a case begun on one continues on the other, each blob and entry stored once")
    func serversShareADatabase() async throws {
        guard TestStore.postgres.isAvailable() else { return }
        let database = try PostgresServer()
        try await database.start()
        defer { database.stop() }
        let first = try await ArchiveServerHarness.start(store: .postgres, sharing: database)
        let second = try await ArchiveServerHarness.start(store: .postgres, sharing: database)
        let device = try DeviceArchive(chunkSize: 64 * 1024)
        let caseID = try device.fileCase(photos: 3, size: 200_000)
        let initial = try await device.client(first.url).syncAll()
        #expect(initial.blobs == 3 && initial.entries == 4)
        try device.archive.file(EvidenceDraft(kind: .photo, capturedAt: 50, mediaType: "image/jpeg"), content: .bytes(Array(repeating: 7, count: 90_000)),
                               into: caseID)
        // The second server knows what the first stored: only the new photo and its entry go.
        let later = try await device.client(second.url).syncAll()
        #expect(later.blobs == 1 && later.entries == 1)
        try await expectServerHolds(caseID, of: device, storage: first.storage)
        try await expectServerHolds(caseID, of: device, storage: second.storage)
        #expect(try await first.storage.blobs(of: caseID).count == 4)
        await first.stop()
        await second.stop()
    }

    @Test("After delete-after-sync, verify accepts the removed blob (or exactly its confirmed sealed file back), catches a different file put back, and still catches an unsynced blob's loss")
    func verifyAfterRemoval() async throws {
        let server = try await ArchiveServerHarness.start()
        defer { Task { await server.stop() } }
        let device = try DeviceArchive()
        let caseID = try device.fileCase(photos: 2, size: 20_000)
        let removed = try device.archive.projection(caseID).items.compactMap(\.item.blob)
        let path = device.archive.sealedBlobPath(caseID: caseID, sha256: removed[0].hex)
        let original = try #require(FileManager.default.contents(atPath: path))
        let pass = try await device.client(server.url, deleteAfterSync: true).syncAll()
        #expect(pass.removedBlobs == 2)
        guard case .success = device.archive.verify(caseID) else { throw TestFailure("a case whose synced blobs were removed does not verify") }
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3])))
        guard case .failure(let link) = device.archive.verify(caseID) else { throw TestFailure("a file back under a removed address went unnoticed") }
        #expect(link.reason.contains("a different file is there"))
        // Exactly the confirmed sealed bytes (a fetch-back cut off before clearing the mark) verify.
        #expect(FileManager.default.createFile(atPath: path, contents: original))
        guard case .success = device.archive.verify(caseID) else { throw TestFailure("the confirmed sealed file back in place does not verify") }
        try FileManager.default.removeItem(atPath: path)

        let later = try device.archive.file(EvidenceDraft(kind: .photo, capturedAt: 9, mediaType: "image/jpeg"), content: .bytes([9, 9, 9]), into: caseID)
        let unsynced = device.archive.sealedBlobPath(caseID: caseID, sha256: later.blob?.hex ?? "")
        try FileManager.default.removeItem(atPath: unsynced)
        guard case .failure = device.archive.verify(caseID) else { throw TestFailure("a lost blob that was never synced went unnoticed") }
    }

    @Test("Content removed after sync is fetched back byte for byte (in pieces), verifies and exports; the next pass removes it again",
          arguments: TestStore.allCases)
    func fetchBack(store: TestStore) async throws {
        guard store.isAvailable() else { return }
        let server = try await ArchiveServerHarness.start(store: store)
        defer { Task { await server.stop() } }
        let device = try DeviceArchive()
        // 6 MB: more than one 4 MiB piece per fetch.
        let caseID = try device.fileCase(photos: 2, size: 6_000_000)
        let blobs = try device.archive.projection(caseID).items.compactMap(\.item.blob)
        let originals = try blobs.map { try #require(FileManager.default.contents(atPath: device.archive.sealedBlobPath(caseID: caseID, sha256: $0.hex))) }
        let client = device.client(server.url, deleteAfterSync: true)
        #expect(try await client.syncAll().removedBlobs == 2)
        let scratch = try TemporaryDirectory(prefix: "sightline-fetch-back")
        #expect(throws: ArchiveError.self) { try device.archive.export(caseID, to: scratch.file("refused.zip")) }

        #expect(try await client.fetchBack([caseID]) == 2)
        for (blob, original) in zip(blobs, originals) {
            #expect(FileManager.default.contents(atPath: device.archive.sealedBlobPath(caseID: caseID, sha256: blob.hex)) == original)
        }
        #expect(try device.archive.syncCounts(caseID).removedBlobs == 0)
        guard case .success = device.archive.verify(caseID) else { throw TestFailure("a case whose content was fetched back does not verify") }
        #expect(try device.archive.export(caseID, to: scratch.file("case.zip")).files > 0)
        #expect(try await client.fetchBack([caseID]) == 0, "nothing is fetched twice")
        #expect(try await client.syncAll().removedBlobs == 2)
    }

    @Test("A fetch-back whose bytes differ from what the archive confirmed at sync lands nothing; the case still verifies")
    func fetchBackRefusesChangedBytes() async throws {
        let server = try await ArchiveServerHarness.start()
        defer { Task { await server.stop() } }
        let device = try DeviceArchive()
        let caseID = try device.fileCase(photos: 1, size: 100_000)
        let client = device.client(server.url, deleteAfterSync: true)
        #expect(try await client.syncAll().removedBlobs == 1)
        let blob = try #require(try device.archive.projection(caseID).items.compactMap(\.item.blob).first)
        let storage = try #require(server.storage as? SQLiteArchiveStorage)
        let onServer = storage.blobPath(caseID, blob.hex)
        var bytes = try #require(FileManager.default.contents(atPath: onServer))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: onServer))

        await #expect(throws: ArchiveSyncError.self) { try await client.fetchBack([caseID]) }
        #expect(!FileManager.default.fileExists(atPath: device.archive.sealedBlobPath(caseID: caseID, sha256: blob.hex)))
        #expect(try device.archive.syncCounts(caseID).removedBlobs == 1)
        guard case .success = device.archive.verify(caseID) else { throw TestFailure("a refused fetch-back broke the case") }
    }

    @Test("Over TLS with the archive's own certificate as sync.ca_file; without it the device does not trust the server")
    func overTLS() async throws {
        let server = try await ArchiveServerHarness.start(tls: true)
        defer { Task { await server.stop() } }
        #expect(server.url.hasPrefix("https://"))
        let device = try DeviceArchive()
        let caseID = try device.fileCase(photos: 2, size: 50_000)

        await #expect(throws: ArchiveSyncError.self) { try await device.client(server.url).syncAll() }
        #expect(try device.archive.syncCounts().syncedEntries == 0)

        let http = try ArchiveSyncClient.httpClient(trusting: server.certificatePath)
        let pass = try await device.client(server.url, http: http).syncAll()
        try await http.shutdown()
        #expect(pass.entries == 3 && pass.blobs == 2)
        try await expectServerHolds(caseID, of: device, storage: server.storage)
        #expect(throws: ArchiveSyncError.self) { try ArchiveSyncClient.httpClient(trusting: server.directory.file("tokens-not-pem")) }
    }
}

@Suite("Archive server refuses tampered uploads")
struct TamperedUploadTests {
    /// A case synced up to (not including) its last entry, and the device's full journal.
    private func partlySynced(store: TestStore = .sqlite) async throws
        -> (ArchiveServerHarness, DeviceArchive, String, (entries: [StoredJournalEntry], checkpoints: [JournalCheckpoint])) {
        let server = try await ArchiveServerHarness.start(store: store)
        let device = try DeviceArchive(chunkSize: 64 * 1024)
        let caseID = try device.fileCase(photos: 2, size: 100_000)
        _ = try await device.client(server.url).syncAll()
        try device.archive.file(EvidenceDraft(kind: .textNote, capturedAt: 5, text: "after sync"), into: caseID)
        return (server, device, caseID, try device.archive.storedJournal(caseID))
    }

    private func upload(_ entries: [StoredJournalEntry], _ checkpoints: [JournalCheckpoint]) throws -> [UInt8] {
        try jsonBytes(SyncJournalUpload(entries: entries.map(JournalEntryJSON.init), checkpoints: checkpoints.map(JournalCheckpointJSON.init)))
    }

    @Test("A flipped byte in a blob chunk: 422, the server holds nothing of it", arguments: TestStore.allCases)
    func flippedChunk(store: TestStore) async throws {
        guard store.isAvailable() else { return }
        let server = try await ArchiveServerHarness.start(store: store)
        defer { Task { await server.stop() } }
        let device = try DeviceArchive()
        let caseID = try device.fileCase(photos: 1, size: 50_000)
        guard let blob = try device.archive.projection(caseID).items.first?.item.blob,
              let sealed = FileManager.default.contents(atPath: device.archive.sealedBlobPath(caseID: caseID, sha256: blob.hex))
        else { throw TestFailure("no blob filed") }
        var chunk = Array(sealed)
        let digest = Array(SHA256.hash(data: chunk)).hexString
        chunk[chunk.count / 2] ^= 0x01
        let url = server.url + ArchiveSyncAPI.blobPath(caseID, blob.hex)
        let answer = try await rawRequest(url + "?offset=0", .PUT, body: chunk, headers: [(ArchiveSyncAPI.chunkDigestHeader, digest)])
        #expect(answer.status == 422)
        #expect(answer.body.contains("does not match its digest"))
        let status = try await rawRequest(url, .GET)
        #expect(status.body.contains("\"received\":0"))

        // Even with a matching chunk digest the commit checks the whole against the device's sealed hash.
        let tampered = try await rawRequest(url + "?offset=0", .PUT, body: chunk, headers: [(ArchiveSyncAPI.chunkDigestHeader, Array(SHA256.hash(data: chunk)).hexString)])
        #expect(tampered.status == 200)
        let commit = try await rawRequest(url + "/commit", .POST, body: try jsonBytes(SyncBlobCommit(plaintextSize: blob.size, sealedSHA256: digest)))
        #expect(commit.status == 422)
        #expect(try await server.storage.blob(caseID, blob.hex) == nil)
        #expect(try await server.storage.receivedBytes(caseID, blob.hex) == 0)

        // The honest device then syncs the case completely.
        _ = try await device.client(server.url).syncAll()
        try await expectServerHolds(caseID, of: device, storage: server.storage)
    }

    @Test("A changed entry, a broken signature and a fork are refused and store nothing", arguments: TestStore.allCases)
    func tamperedJournal(store: TestStore) async throws {
        guard store.isAvailable() else { return }
        let (server, device, caseID, journal) = try await partlySynced(store: store)
        defer { Task { await server.stop() } }
        let held = try await server.storage.journal(caseID).entries.count
        #expect(held == journal.entries.count - 1)
        let url = server.url + ArchiveSyncAPI.journalPath(caseID)
        let last = journal.entries.count - 1

        var changed = journal.entries[last]
        changed.canonical[changed.canonical.count - 3] ^= 0x20
        let entryAnswer = try await rawRequest(url, .POST, body: try upload([changed], [journal.checkpoints[last]]))
        #expect(entryAnswer.status == 422)

        var badSignature = journal.checkpoints[last]
        badSignature.signature[7] ^= 0x01
        let signatureAnswer = try await rawRequest(url, .POST, body: try upload([journal.entries[last]], [badSignature]))
        #expect(signatureAnswer.status == 422)
        #expect(signatureAnswer.body.contains("signature"))

        // A different, correctly signed entry at a sequence the server holds: the chain forks.
        let forked = JournalEntry(caseID: caseID, sequence: UInt64(last - 1), previousHash: journal.entries[last - 2].hash, recordedAt: 1,
                                  event: .closed(reason: "forked"))
        let forkCheckpoint = try JournalCheckpoint(signing: forked, hash: forked.hash, at: 1, key: device.identity)
        let forkAnswer = try await rawRequest(url, .POST, body: try upload([StoredJournalEntry(forked)], [forkCheckpoint]))
        #expect(forkAnswer.status == 409)
        #expect(forkAnswer.body.contains("forks at entry \(last - 1)"))

        // Signed by another key than the one pinned for this device's token.
        let stranger = Curve25519.Signing.PrivateKey()
        let entry = try JournalEntry(canonical: journal.entries[last].canonical)
        let strangerCheckpoint = try JournalCheckpoint(signing: entry, hash: entry.hash, at: 1, key: stranger)
        let strangerAnswer = try await rawRequest(url, .POST, body: try upload([journal.entries[last]], [strangerCheckpoint]))
        #expect(strangerAnswer.status == 403)

        #expect(try await server.storage.journal(caseID).entries.count == held)

        // A refused first upload of another device pins no key and claims no case.
        let newcomer = Curve25519.Signing.PrivateKey()
        let squatted = JournalEntry(caseID: "squatted-case", sequence: 0, previousHash: JournalEntry.genesisHash, recordedAt: 1,
                                    event: .opened(CaseDetails(reference: "X")))
        var squatCheckpoint = try JournalCheckpoint(signing: squatted, hash: squatted.hash, at: 1, key: newcomer)
        squatCheckpoint.signature[0] ^= 0x01
        let squat = try await rawRequest(server.url + ArchiveSyncAPI.journalPath("squatted-case"), .POST, token: ArchiveServerHarness.otherToken,
                                         body: try upload([StoredJournalEntry(squatted)], [squatCheckpoint]))
        #expect(squat.status == 422)
        #expect(try await server.storage.pinnedKey(device: "other") == nil)
        #expect(try await server.storage.owner(of: "squatted-case") == nil)
        _ = try await device.client(server.url).syncAll()
        try await expectServerHolds(caseID, of: device, storage: server.storage)
    }

    @Test("A wrong token gets 401; another device's token may not touch the case")
    func tokens() async throws {
        let (server, _, caseID, _) = try await partlySynced()
        defer { Task { await server.stop() } }
        let url = server.url + ArchiveSyncAPI.journalPath(caseID)
        let wrong = try await rawRequest(url, .GET, token: "device-token-0123456789abcdeX")
        #expect(wrong.status == 401)
        let none = try await rawRequest(url, .GET, token: "")
        #expect(none.status == 401)
        let other = try await rawRequest(url, .GET, token: ArchiveServerHarness.otherToken)
        #expect(other.status == 403)
        let metrics = try await archiveMetrics(server.url)
        #expect(metrics[#"sightline_archive_requests_total{route="journal_status",status="401"}"#] == 2, "\(metrics)")
        #expect(metrics[#"sightline_archive_requests_total{route="journal_status",status="403"}"#] == 1, "\(metrics)")
    }

    @Test("A token wrong in its first byte and one wrong only in its last are refused alike and equally fast")
    func noTimingLeak() async throws {
        let server = try await ArchiveServerHarness.start()
        defer { Task { await server.stop() } }
        let url = server.url + ArchiveSyncAPI.journalPath("c1")
        let right = ArchiveServerHarness.deviceToken
        let early = "X" + right.dropFirst(), late = right.dropLast() + "X"
        var timings: [String: [Double]] = [early: [], String(late): []]
        var bodies = Set<String>()
        // Interleaved, so load on the shared machine hits both alike; medians, so stray stalls do not count.
        for _ in 0..<150 {
            for token in [early, String(late)] {
                let started = ContinuousClock.now
                let answer = try await rawRequest(url, .GET, token: token)
                let elapsed = ContinuousClock.now - started
                #expect(answer.status == 401)
                bodies.insert(answer.body)
                timings[token, default: []].append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
            }
        }
        #expect(bodies.count == 1)
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let a = median(timings[early] ?? []), b = median(timings[String(late)] ?? [])
        // Microseconds: a byte-by-byte comparison alone would not show over HTTP, but any extra
        // work for an almost-right token (a lookup, a second check) would.
        #expect(abs(a - b) < max(1000, 0.3 * min(a, b)), "median \(a) µs vs \(b) µs")
    }
}
