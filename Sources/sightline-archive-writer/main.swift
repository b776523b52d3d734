import Foundation
import SightlineArchive
import SightlineCore
import SightlineSystem

/// Test helper for the crash tests: files evidence into the archive at DIRECTORY as fast as it
/// can, forever, and writes `ack CASE ITEM SHA256` to stdout (one write(2) per line, unbuffered)
/// after each item is acknowledged. A test SIGKILLs it at random moments and then checks that
/// every acknowledged item survived and verifies.
///
///     sightline-archive-writer DIRECTORY [SEED]
let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: sightline-archive-writer DIRECTORY [SEED]\n".utf8))
    exit(64)
}
let directory = arguments[1]

/// xorshift64*: reproducible content without the cost of the system CSPRNG.
struct ContentGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}
var random = ContentGenerator(state: max(1, arguments.count > 2 ? UInt64(arguments[2]) ?? 1 : UInt64(getpid())))

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

do {
    let identity = try DeviceIdentityStore(stateDirectory: directory).loadOrCreate()
    let archiveKey = try ArchiveKeyStore(keyFilePath: (directory as NSString).appendingPathComponent("archive.key"), credentialsDirectory: nil)
        .loadOrCreate()
    // Small chunks so that a kill lands inside multi-chunk blobs often.
    let archive = try EvidenceArchive(directory: (directory as NSString).appendingPathComponent("archive"), archiveKey: archiveKey,
                                      signingKey: identity, chunkSize: 16 * 1024)
    var caseID = try archive.openCase(CaseDetails(reference: "WO-\(random.next() % 10_000)", asset: "pump"))
    say("case \(caseID)")
    var count = 0
    while true {
        count += 1
        if count % 25 == 0 {
            try archive.close(caseID)
            caseID = try archive.openCase(CaseDetails(reference: "WO-\(random.next() % 10_000)"))
            say("case \(caseID)")
        }
        let item: EvidenceItem
        if random.next() % 4 == 0 {
            item = try archive.file(EvidenceDraft(kind: .textNote, capturedAt: EvidenceArchive.systemClock(), text: "note \(count)"), into: caseID)
        } else {
            let size = Int(random.next() % 120_000)
            var bytes = [UInt8](repeating: 0, count: size)
            for index in stride(from: 0, to: size, by: 8) {
                withUnsafeBytes(of: random.next()) { word in
                    for offset in 0..<min(8, size - index) { bytes[index + offset] = word[offset] }
                }
            }
            item = try archive.file(EvidenceDraft(kind: .photo, capturedAt: EvidenceArchive.systemClock(), mediaType: "image/jpeg"),
                                    content: .bytes(bytes), into: caseID)
        }
        say("ack \(caseID) \(item.id) \(item.blob?.hex ?? "-")")
    }
} catch {
    FileHandle.standardError.write(Data("sightline-archive-writer: \(error)\n".utf8))
    exit(1)
}
