import Crypto
import Foundation
import SightlineTesting
import Testing
@testable import SightlineCore

/// A case's chain, checkpoints and blobs held in memory, built the way the archive builds them.
struct MemoryCase {
    let key: Curve25519.Signing.PrivateKey
    var projection: CaseProjection
    var entries: [StoredJournalEntry] = []
    var checkpoints: [JournalCheckpoint] = []
    var blobs: [[UInt8]: [UInt8]] = [:]

    init(id: String, key: Curve25519.Signing.PrivateKey, details: CaseDetails = CaseDetails(reference: "WO-1")) throws {
        self.key = key
        let first = JournalEntry(caseID: id, sequence: 0, previousHash: JournalEntry.genesisHash, recordedAt: 1_000, event: .opened(details))
        projection = try CaseProjection(first: first)
        entries.append(StoredJournalEntry(first))
        checkpoints.append(try JournalCheckpoint(signing: first, hash: first.hash, at: 1_000, key: key))
    }

    mutating func append(_ event: CaseEvent, at time: EpochMilliseconds, blob: [UInt8]? = nil) throws {
        let entry = try projection.nextEntry(event, at: time)
        try projection.apply(entry)
        entries.append(StoredJournalEntry(entry))
        if let blob { blobs[Array(SHA256.hash(data: blob))] = blob }
        checkpoints.append(try JournalCheckpoint(signing: entry, hash: entry.hash, at: time, key: key))
    }

    func verify() -> Result<CaseProjection, BrokenLink> {
        JournalVerifier.verify(caseID: projection.caseID, entries: entries, checkpoints: checkpoints, trustedKey: key.publicKey) { reference in
            guard let bytes = blobs[reference.sha256] else { return "missing" }
            guard Array(SHA256.hash(data: bytes)) == reference.sha256, UInt64(bytes.count) == reference.size else {
                return "content does not match its address"
            }
            return nil
        }
    }
}

@Suite struct CaseJournalTests {
    let key = Curve25519.Signing.PrivateKey()

    func photo(_ id: String, _ bytes: [UInt8], at time: EpochMilliseconds = 2_000) -> CaseEvent {
        .evidenceAdded(EvidenceItem(id: id, kind: .photo, capturedAt: time, mediaType: "image/jpeg",
                                    blob: BlobReference(sha256: Array(SHA256.hash(data: bytes)), size: UInt64(bytes.count))))
    }

    /// Pins the byte layout docs/ARCHIVE.md describes: if this changes, every stored hash does.
    @Test func canonicalBytesOfAClosingEntryMatchTheDocumentedLayout() throws {
        let entry = JournalEntry(caseID: "c1", sequence: 2, previousHash: [UInt8](repeating: 0xAB, count: 32), recordedAt: -1,
                                 event: .closed(reason: "done"))
        let expected = "01" + "00000008" + "0000000000000001"
            + "02" + "00000002" + "6331"
            + "03" + "00000008" + "0000000000000002"
            + "04" + "00000020" + String(repeating: "ab", count: 32)
            + "05" + "00000008" + "ffffffffffffffff"
            + "06" + "0000000b" + Array("case.closed".utf8).hexString
            + "07" + "00000009" + "01" + "00000004" + Array("done".utf8).hexString
        #expect(entry.canonicalBytes.hexString == expected)
        #expect(try JournalEntry(canonical: entry.canonicalBytes) == entry)
        #expect(entry.hash == Array(SHA256.hash(data: try #require([UInt8](hex: expected)))))
    }

    @Test func everyEventKindRoundTrips() throws {
        let call = CallSummary(callID: "call-7", startedAt: 10, endedAt: 99, participantIDs: ["p1", "p2"], encryption: "sframe-aes128gcm")
        let events: [CaseEvent] = [
            .opened(CaseDetails(reference: "WO-42", asset: "pump 3", site: "Halle 2", title: "Leck", unassigned: false)),
            .opened(CaseDetails(reference: "unassigned", unassigned: true)),
            .closed(reason: nil), .reopened(reason: "warranty claim"),
            .participantAdded(Participant(id: "p1", name: "Jörg Müller", role: .technician)),
            .consentRecorded(ConsentRecord(participantID: "p1", scope: .recording, granted: true, givenAt: 5, callID: "call-7")),
            .consentRecorded(ConsentRecord(participantID: "p1", scope: .dataProcessing, granted: false, givenAt: 6)),
            photo("i1", [1, 2, 3]),
            .evidenceAdded(EvidenceItem(id: "i2", kind: .callRecord, capturedAt: 10, call: call, authorID: "p1")),
            .evidenceAdded(EvidenceItem(id: "i3", kind: .textNote, capturedAt: 11, text: "korrigiert", corrects: "i1",
                                        refiledFrom: RefileOrigin(caseID: "c0", entryHash: [UInt8](repeating: 7, count: 32)))),
            .evidenceRefiled(itemID: "i1", toCase: "c9"),
        ]
        for event in events {
            let entry = JournalEntry(caseID: "c1", sequence: 3, previousHash: JournalEntry.genesisHash, recordedAt: 1, event: event)
            #expect(try JournalEntry(canonical: entry.canonicalBytes) == entry)
        }
    }

    @Test func strictDecodingRefusesNonCanonicalBytes() throws {
        let entry = JournalEntry(caseID: "c1", sequence: 0, previousHash: JournalEntry.genesisHash, recordedAt: 1, event: .closed(reason: nil))
        var bytes = entry.canonicalBytes
        #expect(throws: CanonicalDecodingError.self) { try JournalEntry(canonical: Array(bytes.dropLast())) }
        var unknown = CanonicalWriter()
        unknown.text(0x01, "x")
        unknown.text(0x09, "surprise")
        #expect(throws: CanonicalDecodingError.self) {
            var reader = try CanonicalReader(unknown.bytes)
            _ = try reader.text(0x01)
            try reader.finish()
        }
        // The same field twice, tags out of order, and a boolean other than 0/1.
        #expect(throws: CanonicalDecodingError.self) {
            var reader = try CanonicalReader([1, 0, 0, 0, 1, 0x41, 1, 0, 0, 0, 1, 0x42])
            _ = try reader.text(1)
        }
        #expect(throws: CanonicalDecodingError.self) { _ = try CanonicalReader([2, 0, 0, 0, 0, 1, 0, 0, 0, 0]) }
        #expect(throws: CanonicalDecodingError.self) {
            var reader = try CanonicalReader([1, 0, 0, 0, 1, 2])
            _ = try reader.flag(1)
        }
        // A sequence number of 7 bytes instead of 8.
        bytes = [1, 0, 0, 0, 7] + [0, 0, 0, 0, 0, 0, 1]
        #expect(throws: CanonicalDecodingError.self) { try JournalEntry(canonical: bytes) }
    }

    @Test func caseRulesFollowTheStateMachine() throws {
        var memory = try MemoryCase(id: "c1", key: key)
        try memory.append(.participantAdded(Participant(id: "p1", name: "A", role: .technician)), at: 1_100)
        #expect(throws: CaseProjection.Rejection.self) {
            try memory.append(.consentRecorded(ConsentRecord(participantID: "nobody", scope: .video, granted: true, givenAt: 1)), at: 1_200)
        }
        try memory.append(photo("i1", [9]), at: 1_300, blob: [9])
        #expect(throws: CaseProjection.Rejection.self) { try memory.append(photo("i1", [8]), at: 1_400, blob: [8]) }
        #expect(throws: CaseProjection.Rejection.self) {
            try memory.append(.evidenceAdded(EvidenceItem(id: "i2", kind: .textNote, capturedAt: 1, text: "x", corrects: "missing")), at: 1_500)
        }
        #expect(throws: CaseProjection.Rejection.self) {
            try memory.append(.evidenceAdded(EvidenceItem(id: "i2", kind: .photo, capturedAt: 1)), at: 1_500)
        }
        try memory.append(.closed(reason: nil), at: 1_600)
        #expect(throws: CaseProjection.Rejection.self) { try memory.append(photo("i3", [7]), at: 1_700, blob: [7]) }
        #expect(throws: CaseProjection.Rejection.self) { try memory.append(.closed(reason: nil), at: 1_700) }
        try memory.append(.reopened(reason: "claim"), at: 1_800)
        try memory.append(.evidenceAdded(EvidenceItem(id: "i4", kind: .textNote, capturedAt: 1_900, text: "right value", corrects: "i1")), at: 1_900)
        #expect(memory.projection.state == .reopened)
        #expect(memory.projection.items.map(\.item.id) == ["i1", "i4"])
        #expect(try memory.verify().get() == memory.projection)
    }

    @Test func rewritingTheChainWithFreshHashesFailsAtTheCheckpoint() throws {
        var memory = try MemoryCase(id: "c1", key: key)
        try memory.append(.evidenceAdded(EvidenceItem(id: "n1", kind: .textNote, capturedAt: 5, text: "pressure 4 bar")), at: 2_000)
        try memory.append(.closed(reason: nil), at: 3_000)
        // An attacker without the device key edits the note and recomputes every hash after it.
        var forged = memory
        var previous = forged.entries[0].hash
        for index in 1..<forged.entries.count {
            var entry = try JournalEntry(canonical: forged.entries[index].canonical)
            entry.previousHash = previous
            if case .evidenceAdded(var item) = entry.event {
                item.text = "pressure 2 bar"
                entry.event = .evidenceAdded(item)
            }
            forged.entries[index] = StoredJournalEntry(entry)
            previous = entry.hash
        }
        guard case .failure(let link) = forged.verify() else { Issue.record("a rewritten chain verified"); return }
        #expect(link.sequence == 1)
        #expect(link.reason.contains("checkpoint"))
        // Dropping the checkpoints instead leaves the head unsigned.
        forged.checkpoints.removeAll()
        guard case .failure(let unsigned) = forged.verify() else { Issue.record("an unsigned chain verified"); return }
        #expect(unsigned.reason.contains("not covered by a signed checkpoint"))
        // A key other than the device's is refused even with valid signatures.
        let other = try MemoryCase(id: "c1", key: Curve25519.Signing.PrivateKey())
        let result = JournalVerifier.verify(caseID: "c1", entries: other.entries, checkpoints: other.checkpoints, trustedKey: key.publicKey) { _ in nil }
        #expect(throws: BrokenLink.self) { try result.get() }
    }

    /// Builds random cases and flips one random byte in an entry, a stored hash, a blob or a
    /// checkpoint: verification must fail every time, and name the entry at fault.
    @Test func everySingleByteFlipIsDetected() throws {
        for seed in UInt64(1)...300 {
            var random = SeededGenerator(seed: seed)
            var memory = try MemoryCase(id: "case-\(seed)", key: key)
            try memory.append(.participantAdded(Participant(id: "p1", name: "Tech", role: .technician)), at: 1_001)
            for index in 0..<Int.random(in: 1...8, using: &random) {
                let time = EpochMilliseconds(2_000 + index)
                switch Int.random(in: 0..<4, using: &random) {
                case 0:
                    let bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                    try memory.append(photo("i\(index)", bytes, at: time), at: time, blob: bytes)
                case 1:
                    try memory.append(.evidenceAdded(EvidenceItem(id: "i\(index)", kind: .voiceCommand, capturedAt: time, text: "take photo")), at: time)
                case 2:
                    try memory.append(.consentRecorded(ConsentRecord(participantID: "p1", scope: .audio, granted: true, givenAt: time)), at: time)
                default:
                    try memory.append(.evidenceAdded(EvidenceItem(id: "i\(index)", kind: .textNote, capturedAt: time, text: "note \(seed)")), at: time)
                }
            }
            #expect(throws: Never.self) { try memory.verify().get() }
            var corrupted = memory
            let target = Int.random(in: 0..<4, using: &random)
            var expectedSequence: UInt64?
            switch target {
            case 0:
                let index = Int.random(in: 0..<corrupted.entries.count, using: &random)
                let offset = Int.random(in: 0..<corrupted.entries[index].canonical.count, using: &random)
                corrupted.entries[index].canonical[offset] ^= UInt8.random(in: 1...255, using: &random)
                expectedSequence = UInt64(index)
            case 1:
                let index = Int.random(in: 0..<corrupted.entries.count, using: &random)
                corrupted.entries[index].hash[Int.random(in: 0..<32, using: &random)] ^= 0x01
                expectedSequence = UInt64(index)
            case 2:
                let index = Int.random(in: 0..<corrupted.checkpoints.count, using: &random)
                let part = Int.random(in: 0..<2, using: &random)
                if part == 0 {
                    corrupted.checkpoints[index].signature[Int.random(in: 0..<64, using: &random)] ^= 0x80
                } else {
                    corrupted.checkpoints[index].entryHash[Int.random(in: 0..<32, using: &random)] ^= 0x04
                }
                expectedSequence = corrupted.checkpoints[index].sequence
            default:
                guard let address = corrupted.blobs.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }).first,
                      var bytes = corrupted.blobs[address], !bytes.isEmpty
                else { continue }
                bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= 0x10
                corrupted.blobs[address] = bytes
                expectedSequence = corrupted.projection.items.first { $0.item.blob?.sha256 == address }?.sequence
            }
            guard case .failure(let link) = corrupted.verify() else {
                Issue.record("seed \(seed): a flipped byte (target \(target)) was not detected")
                continue
            }
            #expect(link.sequence == expectedSequence, "seed \(seed): \(link)")
        }
    }
}

@Suite struct ChunkedBlobFormatTests {
    func seal(_ plaintext: [UInt8], key: SymmetricKey, chunkSize: Int) throws -> ([UInt8], BlobReference) {
        var sealer = ChunkedBlobSealer(key: key, chunkSize: chunkSize)
        var file = sealer.header
        // Fed in odd pieces: chunking must not depend on how the caller splits its writes.
        var rest = plaintext[...]
        while !rest.isEmpty {
            let piece = rest.prefix(7)
            try sealer.append(piece) { file += $0 }
            rest = rest.dropFirst(piece.count)
        }
        let reference = try sealer.finish { file += $0 }
        return (file, reference)
    }

    func open(_ file: [UInt8], key: SymmetricKey) throws -> [UInt8] {
        var offset = 0
        var out: [UInt8] = []
        try ChunkedBlobOpener.open(key: key, sealedSize: UInt64(file.count), read: { count in
            defer { offset += count }
            return Array(file[offset..<(offset + count)])
        }, plaintext: { out += $0 })
        return out
    }

    @Test func roundTripsAtEveryBoundaryAndRefusesAnyChange() throws {
        let key = SymmetricKey(size: .bits256)
        var random = SeededGenerator(seed: 42)
        for size in [0, 1, 15, 16, 17, 32, 33, 100] {
            let plaintext = (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
            let (file, reference) = try seal(plaintext, key: key, chunkSize: 16)
            #expect(UInt64(file.count) == ChunkedBlobFormat.sealedSize(plaintextSize: UInt64(size), chunkSize: 16), "size \(size)")
            #expect(reference == BlobReference(sha256: Array(SHA256.hash(data: plaintext)), size: UInt64(size)))
            #expect(try open(file, key: key) == plaintext)
            #expect(throws: (any Error).self) { try open(file, key: SymmetricKey(size: .bits256)) }
            for _ in 0..<20 {
                var changed = file
                changed[Int.random(in: 0..<changed.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
                #expect(throws: (any Error).self, "size \(size)") { try open(changed, key: key) }
            }
            // Cutting off whole chunks (the last, or all but the header) fails too.
            if size > 16 { #expect(throws: (any Error).self) { try open(Array(file.dropLast(16 + 28)), key: key) } }
        }
    }
}

@Suite struct RetentionTests {
    static func time(_ text: String) throws -> EpochMilliseconds {
        let date = try #require(ISO8601DateFormatter().date(from: text))
        return EpochMilliseconds(date.timeIntervalSince1970 * 1000)
    }

    @Test func periodsRunFromTheEndOfTheCalendarYearWhereTheLawSaysSo() throws {
        let filed = try Self.time("2025-03-10T12:00:00Z")
        let policy = RetentionPolicy.defaults
        #expect(policy.retentionClass(named: "commercial-letter")?.expiry(filedAt: filed) == (try Self.time("2032-01-01T00:00:00Z")))
        #expect(policy.retentionClass(named: "booking-voucher")?.expiry(filedAt: filed) == (try Self.time("2034-01-01T00:00:00Z")))
        #expect(policy.retentionClass(named: "books")?.expiry(filedAt: filed) == (try Self.time("2036-01-01T00:00:00Z")))
        #expect(policy.retentionClass(named: "personal-audio")?.expiry(filedAt: filed) == (try Self.time("2025-04-09T12:00:00Z")))
        // Filed in the last second of a year, the period still starts with the next year.
        let lateFiled = try Self.time("2025-12-31T23:59:59Z")
        #expect(policy.retentionClass(named: "commercial-letter")?.expiry(filedAt: lateFiled) == (try Self.time("2032-01-01T00:00:00Z")))
        for kind in EvidenceKind.allCases { #expect(policy.defaultClass[kind].flatMap(policy.retentionClass(named:)) != nil, "\(kind)") }
    }

    @Test func periodsComeFromTheConfiguration() throws {
        #expect(DaemonConfiguration.defaults.retention == .defaults)
        #expect(DaemonConfiguration.defaults.purgeIntervalHours == 24)
        let configuration = try DaemonConfiguration.parse("retention:\n  personal_audio_days: 7\n  books_years: 12\n", file: "t.yaml")
        #expect(configuration.retention.retentionClass(named: "personal-audio")?.period == .days(7))
        #expect(configuration.retention.retentionClass(named: "books")?.period == .years(12))
        #expect(configuration.retention.retentionClass(named: "commercial-letter")?.period == .years(6))
        #expect(throws: ConfigurationRejected.self) { try DaemonConfiguration.parse("retention:\n  personal_audio_days: 0\n", file: "t.yaml") }
        #expect(throws: ConfigurationRejected.self) { try DaemonConfiguration.parse("retention:\n  forever: true\n", file: "t.yaml") }
    }

    @Test func purgesFollowTheRules() throws {
        let key = Curve25519.Signing.PrivateKey()
        var memory = try MemoryCase(id: "c1", key: key)
        let audio = EvidenceItem(id: "a1", kind: .audioNote, capturedAt: 1, blob: BlobReference(sha256: Array(SHA256.hash(data: [1])), size: 1),
                                 retentionClass: "personal-audio")
        try memory.append(.evidenceAdded(audio), at: 1_000, blob: [1])
        let tombstone = Tombstone(itemID: "a1", blobSHA256: audio.blob?.sha256, retentionClass: "personal-audio", expiredAt: 5_000, reason: "expired")
        #expect(throws: CaseProjection.Rejection.self) { try memory.append(.evidencePurged(tombstone), at: 4_999) }
        var wrong = tombstone
        wrong.retentionClass = "books"
        #expect(throws: CaseProjection.Rejection.self) { try memory.append(.evidencePurged(wrong), at: 6_000) }
        try memory.append(.legalHoldSet(reason: "warranty dispute"), at: 5_500)
        #expect(throws: CaseProjection.Rejection.self) { try memory.append(.evidencePurged(tombstone), at: 6_000) }
        try memory.append(.legalHoldReleased(reason: nil), at: 6_500)
        try memory.append(.evidencePurged(tombstone), at: 7_000)
        #expect(throws: CaseProjection.Rejection.self) { try memory.append(.evidencePurged(tombstone), at: 8_000) }
        // The purged blob is gone, and the chain still verifies.
        memory.blobs.removeAll()
        let projection = try memory.verify().get()
        #expect(projection.purged["a1"]?.tombstone == tombstone)
        #expect(try JournalEntry(canonical: memory.entries[4].canonical).event == .evidencePurged(tombstone))
    }
}
