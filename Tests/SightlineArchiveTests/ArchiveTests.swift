import Crypto
import Foundation
import GRDB
import SightlineCore
import SightlineSystem
import SightlineTesting
import Synchronization
import Testing
import ZIPFoundation
@testable import SightlineArchive

func mode(of path: String) -> UInt32 {
    var info = stat()
    guard stat(path, &info) == 0 else { return 0 }
    return UInt32(info.st_mode) & 0o777
}

func randomBytes(_ count: Int, _ random: inout some RandomNumberGenerator) -> [UInt8] {
    (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
}

/// An archive in a scratch directory with its own keys.
struct ScratchArchive {
    let directory: TemporaryDirectory
    let archive: EvidenceArchive
    let identity = Curve25519.Signing.PrivateKey()
    let archiveKey = SymmetricKey(size: .bits256)

    init(chunkSize: Int = 4096) throws {
        directory = try TemporaryDirectory(prefix: "sightline-archive")
        archive = try EvidenceArchive(directory: directory.file("archive"), archiveKey: archiveKey, signingKey: identity, chunkSize: chunkSize)
    }

    /// Two cases with participants, consent, photos, a call record, a correction and a re-filed item.
    func populate(_ random: inout some RandomNumberGenerator) throws -> [String] {
        let first = try archive.openCase(CaseDetails(reference: "WO-1001", asset: "Pumpe P-3", site: "Werk Nord", title: "Dichtung undicht"),
                                         participants: [Participant(id: "tech", name: "Ana Tech", role: .technician)])
        try archive.addParticipant(Participant(id: "exp", name: "Eli Expert", role: .expert), to: first)
        try archive.recordConsent(ConsentRecord(participantID: "tech", scope: .recording, granted: true, givenAt: 5, callID: "call-1"), in: first)
        let photo = try archive.file(EvidenceDraft(kind: .photo, capturedAt: 10, mediaType: "image/jpeg"),
                                     content: .bytes(randomBytes(10_000, &random)), into: first)
        try archive.file(EvidenceDraft(kind: .callRecord, capturedAt: 20,
                                       call: CallSummary(callID: "call-1", startedAt: 20, endedAt: 80, participantIDs: ["tech", "exp"],
                                                         encryption: "sframe-aes128gcm")), into: first)
        try archive.file(EvidenceDraft(kind: .textNote, capturedAt: 30, text: "Dichtung getauscht", corrects: photo.id), into: first)
        let unassigned = try archive.unassignedCaseID()
        let stray = try archive.file(EvidenceDraft(kind: .audioNote, capturedAt: 40, mediaType: "audio/ogg"),
                                     content: .bytes(randomBytes(5_000, &random)), into: unassigned)
        try archive.refile(itemID: stray.id, from: unassigned, to: first)
        try archive.close(first)
        return [first, unassigned]
    }
}

@Suite struct EvidenceArchiveTests {
    @Test func filesAreDurablePrivateAndReadBack() throws {
        let scratch = try ScratchArchive(chunkSize: 1000)
        var random = SeededGenerator(seed: 7)
        let caseID = try scratch.archive.openCase(CaseDetails(reference: "WO-7"))
        // A streamed file of several chunks, one exactly at a chunk boundary, and an empty one.
        let recording = randomBytes(25_000, &random)
        let path = scratch.directory.file("recording.bin")
        try Data(recording).write(to: URL(fileURLWithPath: path))
        let video = try scratch.archive.file(EvidenceDraft(kind: .videoRecording, capturedAt: 1, mediaType: "video/mp4"),
                                             content: .file(path: path), into: caseID)
        let exact = try scratch.archive.file(EvidenceDraft(kind: .photo, capturedAt: 2), content: .bytes(randomBytes(3000, &random)), into: caseID)
        let empty = try scratch.archive.file(EvidenceDraft(kind: .audioNote, capturedAt: 3), content: .bytes([]), into: caseID)
        #expect(video.blob == BlobReference(sha256: Array(SHA256.hash(data: recording)), size: 25_000))
        var back: [UInt8] = []
        var largestChunk = 0
        try scratch.archive.readBlob(of: caseID, try #require(video.blob)) { chunk in
            back += chunk
            largestChunk = max(largestChunk, chunk.count)
        }
        #expect(back == recording)
        #expect(largestChunk == 1000)
        let blobFile = scratch.archive.blobPath(caseID: caseID, sha256: try #require(video.blob).hex)
        var onDisk = try [UInt8](Data(contentsOf: URL(fileURLWithPath: blobFile)))
        #expect(UInt64(onDisk.count) == ChunkedBlobFormat.sealedSize(plaintextSize: 25_000, chunkSize: 1000))
        // Encrypted: the plaintext does not appear in the file.
        #expect(Data(onDisk).range(of: Data(recording.prefix(64))) == nil)
        #expect(exact.blob?.size == 3000 && empty.blob?.size == 0)
        #expect(mode(of: blobFile) == 0o600)
        #expect(mode(of: scratch.directory.file("archive/archive.sqlite")) == 0o600)
        #expect(mode(of: scratch.directory.file("archive/archive.sqlite-wal")) == 0o600)
        for directory in ["archive", "archive/blobs", "archive/tmp", "archive/blobs/\(caseID)"] {
            #expect(mode(of: scratch.directory.file(directory)) == 0o700, "\(directory)")
        }
        #expect(try scratch.archive.verify(caseID).get().items.count == 3)
        // Dropping the last chunk (a cut at a chunk boundary) is caught by the final flag.
        onDisk.removeLast(1000 + ChunkedBlobFormat.chunkOverhead)
        try Data(onDisk).write(to: URL(fileURLWithPath: blobFile))
        guard case .failure(let link) = scratch.archive.verify(caseID) else { Issue.record("a truncated blob verified"); return }
        #expect(link.sequence == 1)
        #expect(link.description.contains(try #require(video.blob).hex))
    }

    @Test func caseRulesAndRefilingHoldInTheArchive() throws {
        let scratch = try ScratchArchive()
        var random = SeededGenerator(seed: 3)
        let ids = try scratch.populate(&random)
        let first = try scratch.archive.projection(ids[0])
        #expect(first.state == .closed)
        #expect(first.items.count == 4)
        let moved = try #require(first.items.last?.item)
        #expect(moved.kind == .audioNote && moved.refiledFrom?.caseID == ids[1])
        #expect(try scratch.archive.projection(ids[1]).refiled[moved.id] == ids[0])
        // The copy in the target case decrypts under the target's own key.
        var size = 0
        try scratch.archive.readBlob(of: ids[0], try #require(moved.blob)) { size += $0.count }
        #expect(size == 5_000)
        #expect(throws: ArchiveError.self) { try scratch.archive.file(EvidenceDraft(kind: .textNote, capturedAt: 1, text: "late"), into: ids[0]) }
        try scratch.archive.reopen(ids[0], reason: "Gewährleistung")
        try scratch.archive.file(EvidenceDraft(kind: .textNote, capturedAt: 1, text: "late"), into: ids[0])
        #expect(throws: ArchiveError.self) { try scratch.archive.file(EvidenceDraft(kind: .textNote, capturedAt: 1), into: "no-such-case") }
        for result in try scratch.archive.verifyAll() { #expect(throws: Never.self) { try result.get() } }
        // A second archive over the same directory (a restart) sees the same, verified.
        let reopened = try EvidenceArchive(directory: scratch.directory.file("archive"), archiveKey: scratch.archiveKey, signingKey: scratch.identity)
        #expect(try reopened.projection(ids[0]) == scratch.archive.projection(ids[0]))
        // A different archive key cannot open the cases.
        let stranger = try EvidenceArchive(directory: scratch.directory.file("archive"), archiveKey: SymmetricKey(size: .bits256), signingKey: scratch.identity)
        guard case .failure(let link) = stranger.verify(ids[0]) else { Issue.record("verified under a foreign key"); return }
        #expect(link.reason.contains("data key cannot be unwrapped"))
    }

    /// Flips one byte (or one bit of an integer) in a random column of a random row of every
    /// table, or in a random blob: `verifyAll` must report a broken case each time; undone,
    /// everything verifies again.
    @Test func everySingleByteChangeToARowOrBlobIsDetected() throws {
        let scratch = try ScratchArchive(chunkSize: 2048)
        var random = SeededGenerator(seed: 11)
        _ = try scratch.populate(&random)
        let tables = ["cases", "journal_entries", "checkpoints", "participants", "consents", "items"]
        let blobRoot = scratch.directory.file("archive/blobs")
        let blobFiles = try FileManager.default.subpathsOfDirectory(atPath: blobRoot).map { "\(blobRoot)/\($0)" }.filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: $0, isDirectory: &isDirectory) && !isDirectory.boolValue
        }
        #expect(blobFiles.count == 3)
        var detected = 0
        for round in 0..<150 {
            if round % 5 == 4 {
                let file = try #require(blobFiles.randomElement(using: &random))
                let original = try Data(contentsOf: URL(fileURLWithPath: file))
                var changed = original
                changed[Int.random(in: 0..<changed.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
                try changed.write(to: URL(fileURLWithPath: file))
                #expect(try scratch.archive.verifyAll().contains { (try? $0.get()) == nil }, "round \(round): blob \(file)")
                try original.write(to: URL(fileURLWithPath: file))
            } else {
                let table = try #require(tables.randomElement(using: &random))
                let changed = try scratch.archive.withDatabase { db -> (column: String, rowid: Int64, original: DatabaseValue)? in
                    let rows = try Row.fetchAll(db, sql: "SELECT rowid AS _rowid, * FROM \(table)")
                    guard let row = rows.randomElement(using: &random) else { return nil }
                    let columns = Array(row.columnNames.dropFirst())
                    let column = try #require(columns.randomElement(using: &random))
                    let rowid: Int64 = row["_rowid"]
                    let original: DatabaseValue = row[column]
                    let mutated: DatabaseValue
                    switch original.storage {
                    case .blob(let data):
                        var bytes = data
                        bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
                        mutated = bytes.databaseValue
                    case .string(let text):
                        var bytes = Array(text.utf8)
                        if bytes.isEmpty { bytes = [0x78] } else {
                            let index = Int.random(in: 0..<bytes.count, using: &random)
                            bytes[index] = bytes[index] == 0x41 ? 0x42 : 0x41
                        }
                        mutated = String(decoding: bytes, as: UTF8.self).databaseValue
                    case .int64(let value):
                        mutated = (value ^ Int64(1 << Int.random(in: 0..<8, using: &random))).databaseValue
                    case .double(let value):
                        mutated = (value + 1).databaseValue
                    case .null:
                        mutated = "x".databaseValue
                    }
                    do {
                        try db.execute(sql: "UPDATE \(table) SET \(column) = ? WHERE rowid = ?", arguments: [mutated, rowid])
                    } catch {
                        return nil  // the change collides with a key: SQLite itself refuses it
                    }
                    return (column, rowid, original)
                }
                guard let changed else { continue }
                #expect(try scratch.archive.verifyAll().contains { (try? $0.get()) == nil }, "round \(round): \(table).\(changed.column)")
                try scratch.archive.withDatabase { db in
                    try db.execute(sql: "UPDATE \(table) SET \(changed.column) = ? WHERE rowid = ?", arguments: [changed.original, changed.rowid])
                }
            }
            detected += 1
            for result in try scratch.archive.verifyAll() { #expect(throws: Never.self, "round \(round) after undo") { try result.get() } }
        }
        #expect(detected > 120)
    }

    @Test func archiveKeyComesFromCredentialOrPrivateFile() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-key")
        let keyPath = directory.file("state/archive.key")
        let created = try ArchiveKeyStore(keyFilePath: keyPath, credentialsDirectory: nil).loadOrCreate()
        #expect(mode(of: keyPath) == 0o600)
        #expect(mode(of: directory.file("state")) == 0o700)
        let again = try ArchiveKeyStore(keyFilePath: keyPath, credentialsDirectory: nil).loadOrCreate()
        #expect(created == again)
        chmod(keyPath, 0o644)
        #expect(throws: ArchiveKeyStore.Failure.self) { try ArchiveKeyStore(keyFilePath: keyPath, credentialsDirectory: nil).loadOrCreate() }
        // A systemd credential (here as hex) wins over the key file.
        let credentials = directory.file("credentials")
        mkdir(credentials, 0o700)
        let credentialKey = SymmetricKey(size: .bits256)
        try credentialKey.withUnsafeBytes { Array($0).hexString }.write(toFile: "\(credentials)/\(ArchiveKeyStore.credentialName)", atomically: true, encoding: .utf8)
        let store = ArchiveKeyStore(keyFilePath: keyPath, credentialsDirectory: credentials)
        #expect(try store.loadOrCreate() == credentialKey)
        #expect(store.source().hasPrefix("credential"))
        try "short".write(toFile: "\(credentials)/\(ArchiveKeyStore.credentialName)", atomically: true, encoding: .utf8)
        #expect(throws: ArchiveKeyStore.Failure.self) { try store.loadOrCreate() }
    }

    /// SIGKILLs a process that files evidence continuously, 100 times at random moments: every
    /// item it acknowledged is present and verifies, and every file under `blobs/` is a whole
    /// blob whose plaintext hashes to its name.
    @Test func acknowledgedEvidenceSurvivesRepeatedSIGKILL() async throws {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-kill")
        var random = SeededGenerator(seed: 99)
        let started = Date()
        let outcome = try await ArchiveWriterKills.run(directory: directory, cycles: 100, random: &random)
        #expect(outcome.selfExits.isEmpty, "the writer exited on its own: \(outcome.selfExits)")
        let acknowledged = outcome.acknowledged
        let killSeconds = Date().timeIntervalSince(started)
        #expect(acknowledged.count > 100, "too few items acknowledged to mean anything")
        let identity = try DeviceIdentityStore(stateDirectory: directory.path).loadOrCreate()
        let archiveKey = try ArchiveKeyStore(keyFilePath: directory.file("archive.key"), credentialsDirectory: nil).loadOrCreate()
        // Before reopening (which clears tmp/): whatever is under blobs/ must be complete.
        let blobRoot = directory.file("archive/blobs")
        let archive = try EvidenceArchive(directory: directory.file("archive"), archiveKey: archiveKey, signingKey: identity)
        var blobCount = 0
        for caseID in try FileManager.default.contentsOfDirectory(atPath: blobRoot) {
            // A kill between creating a case's blob directory and committing the case leaves it empty.
            let names = try FileManager.default.contentsOfDirectory(atPath: "\(blobRoot)/\(caseID)")
            guard !names.isEmpty else { continue }
            let key = try archive.dataKey(for: caseID)
            for name in names {
                var hasher = SHA256()
                var size: UInt64 = 0
                let reference = BlobReference(sha256: try #require([UInt8](hex: name)), size: 0)
                try archive.openBlob(caseID: caseID, reference, key: key) { chunk in
                    hasher.update(data: chunk)
                    size += UInt64(chunk.count)
                }
                #expect(Array(hasher.finalize()).hexString == name, "partial or foreign blob \(caseID)/\(name)")
                blobCount += 1
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.file("archive/tmp")).isEmpty)
        let results = try archive.verifyAll()
        for result in results { #expect(throws: Never.self) { try result.get() } }
        var projections: [String: CaseProjection] = [:]
        for case .success(let projection) in results { projections[projection.caseID] = projection }
        let missing = acknowledged.filter { projections[$0.caseID]?.item($0.itemID) == nil }
        #expect(missing.isEmpty, "lost acknowledged items: \(missing.prefix(5))")
        print("kill9: 100 cycles in \(String(format: "%.1f", killSeconds)) s, \(acknowledged.count) acknowledged, "
              + "\(missing.count) lost, \(results.count) cases, \(blobCount) blobs")
    }
}

@Suite struct CaseExportTests {
    static let checker = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/verify-case-export").path

    /// Copies a ZIP, changing one byte of one file's content.
    func tampered(_ source: String, entry name: String, to destination: String) throws {
        let original = try Archive(url: URL(fileURLWithPath: source), accessMode: .read)
        let copy = try Archive(url: URL(fileURLWithPath: destination), accessMode: .create)
        for entry in original {
            var data = Data()
            _ = try original.extract(entry) { data.append($0) }
            if entry.path == name { data[data.count / 2] ^= 0x01 }
            let bytes = data
            try copy.addEntry(with: entry.path, type: .file, uncompressedSize: Int64(bytes.count)) { position, size in
                bytes.subdata(in: Int(position)..<min(bytes.count, Int(position) + size))
            }
        }
    }

    @Test func exportVerifiesWithTheIndependentChecker() throws {
        let scratch = try ScratchArchive(chunkSize: 3000)
        var random = SeededGenerator(seed: 5)
        let ids = try scratch.populate(&random)
        let out = scratch.directory.file("case.zip")
        let summary = try scratch.archive.export(ids[0], to: out)
        #expect(mode(of: out) == 0o600)
        #expect(summary.evidenceBytes == 15_000)
        let fingerprint = DeviceIdentityEncoding.fingerprint(of: scratch.identity.publicKey)
        let result = try CommandLineTool.run("/usr/bin/python3", [Self.checker, out, "--fingerprint", fingerprint])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.hasPrefix("OK case \(ids[0]): 9 entries"))
        // The unassigned case, with its re-filed item, exports and checks too.
        let second = scratch.directory.file("unassigned.zip")
        _ = try scratch.archive.export(ids[1], to: second)
        #expect(try CommandLineTool.run("/usr/bin/python3", [Self.checker, second]).status == 0)
        // A stranger's fingerprint is refused.
        let other = DeviceIdentityEncoding.fingerprint(of: Curve25519.Signing.PrivateKey().publicKey)
        #expect(try CommandLineTool.run("/usr/bin/python3", [Self.checker, out, "--fingerprint", other]).status == 1)
        // OpenSSL checks the detached signature as docs/ARCHIVE.md says.
        let unpacked = scratch.directory.file("unpacked")
        try FileManager.default.createDirectory(atPath: unpacked, withIntermediateDirectories: true)
        try FileManager.default.unzipItem(at: URL(fileURLWithPath: out), to: URL(fileURLWithPath: unpacked))
        let openssl = try CommandLineTool.run("/usr/bin/openssl", [
            "pkeyutl", "-verify", "-pubin", "-inkey", "\(unpacked)/device-public-key.pem", "-rawin",
            "-in", "\(unpacked)/manifest.json", "-sigfile", "\(unpacked)/manifest.json.sig",
        ])
        #expect(openssl.status == 0, "\(openssl.stdout)\(openssl.stderr)")
        let html = try String(contentsOfFile: "\(unpacked)/report.html", encoding: .utf8)
        #expect(html.contains("WO-1001") && html.contains("sframe-aes128gcm") && html.contains("<img src=\"evidence/"))
        #expect(html.contains("Dichtung getauscht"))
        // One changed byte in any file, evidence or journal, is caught.
        for name in try Archive(url: URL(fileURLWithPath: out), accessMode: .read).map(\.path) {
            let bad = scratch.directory.file("bad-\(name.replacingOccurrences(of: "/", with: "_")).zip")
            try tampered(out, entry: name, to: bad)
            let check = try CommandLineTool.run("/usr/bin/python3", [Self.checker, bad])
            #expect(check.status == 1 && check.stdout.hasPrefix("FAILED"), "\(name): \(check.stdout)")
        }
    }

    @Test func aCaseThatDoesNotVerifyIsNotExported() throws {
        let scratch = try ScratchArchive()
        var random = SeededGenerator(seed: 6)
        let ids = try scratch.populate(&random)
        try scratch.archive.withDatabase { db in
            try db.execute(sql: "UPDATE items SET text = 'Dichtung nicht getauscht' WHERE case_id = ? AND text IS NOT NULL", arguments: [ids[0]])
        }
        let out = scratch.directory.file("case.zip")
        #expect(throws: ArchiveError.self) { try scratch.archive.export(ids[0], to: out) }
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.directory.path).filter { $0.contains(".part-") }.isEmpty)
    }
}

@Suite struct ArchiveResourceTests {
    /// A 256 MB recording is filed, verified and exported one chunk at a time: the helper's
    /// peak resident memory stays far below the recording's size (the issue's bound: 100 MB).
    @Test func aLargeRecordingNeedsBoundedMemory() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-ingest")
        var random = SeededGenerator(seed: 1)
        let block = Data(randomBytes(1 << 20, &random))
        let recording = directory.file("recording.bin")
        FileManager.default.createFile(atPath: recording, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: recording))
        for _ in 0..<256 { try handle.write(contentsOf: block) }
        try handle.close()
        let result = try CommandLineTool.run("sightline-archive-writer", ["--ingest", directory.path, recording])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Double])
        #expect(try #require(report["rss_mb_peak"]) < 100, "\(result.stdout)")
        #expect(try #require(report["rss_mb_peak"]) > 1)
        print("archive ingest: \(result.stdout)", terminator: "")
    }

    /// The photo-rate measurement files distinct photos that all verify afterwards.
    @Test func photoRateMeasurementFilesEveryPhoto() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-photos")
        let result = try CommandLineTool.run("sightline-archive-writer", ["--photos", directory.path, "40", "100000"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Double])
        #expect(report["photos"] == 40 && (report["ingest_mb_s"] ?? 0) > 0)
        let verify = try CommandLineTool.run("sightline-archive-writer", ["--verify", directory.path])
        #expect(verify.status == 0 && verify.stdout.hasPrefix("intact 1 "), "\(verify.stdout)")
        let blobs = try FileManager.default.contentsOfDirectory(atPath: directory.file("archive/blobs")).flatMap {
            try FileManager.default.contentsOfDirectory(atPath: directory.file("archive/blobs/\($0)"))
        }
        #expect(blobs.count == 40)
    }

    /// On a small tmpfs (in a private mount namespace) the writer fills the disk: it stops with
    /// the archive's disk-full message, everything it acknowledged verifies, and once the file
    /// system grows it files again (and survives a SIGKILL doing so).
    @Test func aFullDiskIsRefusedCleanlyAndRecovers() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-full")
        let mountPoint = directory.file("mnt")
        mkdir(mountPoint, 0o700)
        let script = """
            set -u
            dir=$1 out=$2 writer=$3
            mount -t tmpfs -o size=4m,mode=0700 tmpfs "$dir" || exit 77
            "$writer" "$dir" 1 > "$out/acks1" 2> "$out/err1"; echo $? > "$out/status1"
            "$writer" --verify "$dir" "$out/acks1" > "$out/verify1"
            mount -o remount,size=32m "$dir"
            timeout -s KILL 2 "$writer" "$dir" 2 > "$out/acks2" 2> "$out/err2"
            "$writer" --verify "$dir" "$out/acks1" "$out/acks2" > "$out/verify2"
            """
        let run = try CommandLineTool.run("/usr/bin/unshare", ["--mount", "sh", "-c", script, "sh", mountPoint, directory.path,
                                                                BuiltProducts.path(of: "sightline-archive-writer")])
        if run.status == 77 || run.stderr.contains("unshare failed") || run.stderr.contains("Operation not permitted") {
            print("skipped the full-disk test: this environment cannot mount a tmpfs in a private namespace (\(run.stderr))")
            return
        }
        func read(_ name: String) -> String { (try? String(contentsOfFile: directory.file(name), encoding: .utf8)) ?? "" }
        #expect(read("status1").trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        #expect(read("err1").contains("disk is full"), "\(read("err1"))")
        let firstAcks = read("acks1").split(separator: "\n").filter { $0.hasPrefix("ack ") }.count
        let secondAcks = read("acks2").split(separator: "\n").filter { $0.hasPrefix("ack ") }.count
        #expect(firstAcks > 5)
        #expect(read("verify1").hasPrefix("intact"), "\(read("verify1"))")
        #expect(secondAcks > 5, "no recovery after the file system grew: \(read("err2"))")
        #expect(read("verify2").hasPrefix("intact"), "\(read("verify2"))")
        print("disk full: \(firstAcks) items before ENOSPC, \(secondAcks) after growing the file system; \(read("verify2"))", terminator: "")
    }
}

/// A clock that tests move by hand.
final class MockClock: Sendable {
    private let now = Mutex<EpochMilliseconds>(0)
    func set(_ time: EpochMilliseconds) { now.withLock { $0 = time } }
    func read() -> EpochMilliseconds { now.withLock { $0 } }
}

@Suite struct RetentionArchiveTests {
    static func time(_ text: String) -> EpochMilliseconds {
        EpochMilliseconds((ISO8601DateFormatter().date(from: text)?.timeIntervalSince1970 ?? 0) * 1000)
    }

    @Test func exactlyTheExpiredItemsArePurgedHoldsRespectedChainsIntact() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-retention")
        let clock = MockClock()
        clock.set(Self.time("2025-03-10T12:00:00Z"))
        let identity = Curve25519.Signing.PrivateKey()
        let archive = try EvidenceArchive(directory: directory.file("archive"), archiveKey: SymmetricKey(size: .bits256), signingKey: identity,
                                          clock: { clock.read() })
        var random = SeededGenerator(seed: 8)
        let a = try archive.openCase(CaseDetails(reference: "WO-A"))
        let b = try archive.openCase(CaseDetails(reference: "WO-B"))
        let c = try archive.openCase(CaseDetails(reference: "WO-C"))
        let photo = try archive.file(EvidenceDraft(kind: .photo, capturedAt: 1, mediaType: "image/jpeg"), content: .bytes(randomBytes(900, &random)), into: a)
        let audioA = try archive.file(EvidenceDraft(kind: .audioNote, capturedAt: 2), content: .bytes(randomBytes(700, &random)), into: a)
        let command = try archive.file(EvidenceDraft(kind: .voiceCommand, capturedAt: 3, text: "take photo"), into: a)
        let invoice = try archive.file(EvidenceDraft(kind: .photo, capturedAt: 4, retentionClass: "booking-voucher"),
                                       content: .bytes(randomBytes(800, &random)), into: a)
        let audioB = try archive.file(EvidenceDraft(kind: .audioNote, capturedAt: 5), content: .bytes(randomBytes(600, &random)), into: b)
        try archive.setLegalHold(b, reason: "warranty dispute")
        clock.set(Self.time("2025-03-25T12:00:00Z"))
        let audioC = try archive.file(EvidenceDraft(kind: .audioNote, capturedAt: 6), content: .bytes(randomBytes(500, &random)), into: c)
        #expect(throws: ArchiveError.self) { try archive.file(EvidenceDraft(kind: .textNote, capturedAt: 7, text: "x", retentionClass: "forever"), into: a) }

        func purge(at time: String) throws -> Set<String> {
            clock.set(Self.time(time))
            let purged = try archive.purgeExpired()
            for result in try archive.verifyAll() { #expect(throws: Never.self, "\(time)") { try result.get() } }
            return Set(purged.map(\.tombstone.itemID))
        }
        #expect(try purge(at: "2025-04-09T11:59:59Z").isEmpty)
        #expect(try purge(at: "2025-04-09T12:00:00Z") == [audioA.id, command.id])
        #expect(!FileManager.default.fileExists(atPath: archive.blobPath(caseID: a, sha256: try #require(audioA.blob).hex)))
        #expect(FileManager.default.fileExists(atPath: archive.blobPath(caseID: a, sha256: try #require(photo.blob).hex)))
        #expect(try purge(at: "2025-04-24T12:00:00Z") == [audioC.id])
        #expect(try purge(at: "2031-12-31T23:59:59Z").isEmpty)
        #expect(try purge(at: "2032-01-01T00:00:00Z") == [photo.id])
        #expect(try purge(at: "2033-06-01T00:00:00Z").isEmpty)  // the hold still covers case B
        try archive.releaseLegalHold(b, reason: "settled")
        #expect(try purge(at: "2033-06-01T00:00:01Z") == [audioB.id])
        #expect(try purge(at: "2034-01-01T00:00:00Z") == [invoice.id])

        let tombstones = try archive.projection(a).purged
        #expect(Set(tombstones.keys) == [audioA.id, command.id, photo.id, invoice.id])
        let tombstone = try #require(tombstones[photo.id]?.tombstone)
        #expect(tombstone.blobSHA256 == photo.blob?.sha256 && tombstone.expiredAt == Self.time("2032-01-01T00:00:00Z"))
        #expect(tombstone.reason.contains("commercial-letter: 6 years from the end of the calendar year"))
        // The export of a case whose evidence was purged still checks: the journal says why files are missing.
        let out = directory.file("a.zip")
        _ = try archive.export(a, to: out)
        let check = try CommandLineTool.run("/usr/bin/python3", [CaseExportTests.checker, out])
        #expect(check.status == 0, "\(check.stdout)")
        #expect(check.stdout.contains("0 evidence files"))
    }
}

@Suite struct PersonExportTests {
    @Test func aPersonsExportHoldsTheirRecordsAndNobodyElses() throws {
        let scratch = try ScratchArchive()
        var random = SeededGenerator(seed: 21)
        let ids = try scratch.populate(&random)
        try scratch.archive.reopen(ids[0])
        let theirs = randomBytes(1_500, &random)
        let mine = try scratch.archive.file(EvidenceDraft(kind: .photo, capturedAt: 50, mediaType: "image/jpeg", authorID: "tech"),
                                            content: .bytes(theirs), into: ids[0])
        try scratch.archive.file(EvidenceDraft(kind: .photo, capturedAt: 51, mediaType: "image/jpeg", authorID: "exp"),
                                 content: .bytes(randomBytes(900, &random)), into: ids[0])
        let out = scratch.directory.file("person.zip")
        let summary = try scratch.archive.exportPerson("tech", to: out)
        #expect(summary.evidenceBytes == 1_500)
        #expect(mode(of: out) == 0o600)
        let unpacked = scratch.directory.file("person")
        try FileManager.default.createDirectory(atPath: unpacked, withIntermediateDirectories: true)
        try FileManager.default.unzipItem(at: URL(fileURLWithPath: out), to: URL(fileURLWithPath: unpacked))
        let person = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(unpacked)/person.json"))) as? [String: Any])
        let cases = try #require(person["cases"] as? [[String: Any]])
        #expect(cases.count == 1 && cases.first?["case_id"] as? String == ids[0])
        let items = try #require(cases.first?["items"] as? [[String: Any]])
        let kinds = items.compactMap { ($0["item"] as? [String: Any])?["kind"] as? String }
        #expect(kinds == ["call-record", "photo"], "\(kinds)")
        #expect((cases.first?["consents"] as? [Any])?.count == 1)
        #expect(((cases.first?["participant"] as? [String: Any])?["name"] as? String) == "Ana Tech")
        let evidence = try FileManager.default.contentsOfDirectory(atPath: "\(unpacked)/evidence/\(ids[0])")
        #expect(evidence == ["\(mine.id).jpg"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(unpacked)/evidence/\(ids[0])/\(mine.id).jpg")) == Data(theirs))
        let openssl = try CommandLineTool.run("/usr/bin/openssl", [
            "pkeyutl", "-verify", "-pubin", "-inkey", "\(unpacked)/device-public-key.pem", "-rawin",
            "-in", "\(unpacked)/manifest.json", "-sigfile", "\(unpacked)/manifest.json.sig",
        ])
        #expect(openssl.status == 0, "\(openssl.stdout)\(openssl.stderr)")
        #expect(throws: ArchiveError.self) { try scratch.archive.exportPerson("nobody", to: scratch.directory.file("nobody.zip")) }
    }
}
