import Crypto
import Foundation
import SightlineCore
import SightlineTesting
import Testing
import ZIPFoundation
@testable import SightlineArchive

@Suite struct ReportPDFTests {
    /// Headless Chromium prints the report, photos included, into report.pdf; the manifest
    /// lists it like every other file and the independent checker accepts the export. Without a
    /// renderer the manifest says why report.pdf is missing.
    @Test(.enabled(if: ReportRenderer.find() != nil, "no Chromium on PATH: install Debian's chromium (scripts/install-deps test)"))
    func reportIsPrintedToPDFWhereARendererExists() throws {
        let directory = try TemporaryDirectory(prefix: "sightline-archive-pdf")
        let identity = Curve25519.Signing.PrivateKey()
        let key = SymmetricKey(size: .bits256)
        let renderer = try #require(ReportRenderer.find())
        let archive = try EvidenceArchive(directory: directory.file("archive"), archiveKey: key, signingKey: identity, reportRenderer: renderer)
        var random = SeededGenerator(seed: 41)
        let scratch = ScratchArchiveContent(archive: archive)
        let caseID = try scratch.caseWithPhoto(&random)

        let out = directory.file("case.zip")
        _ = try archive.export(caseID, to: out)
        let zip = try Archive(url: URL(fileURLWithPath: out), accessMode: .read)
        let entry = try #require(zip["report.pdf"], "no report.pdf in the export")
        var pdf = Data()
        _ = try zip.extract(entry) { pdf.append($0) }
        #expect(pdf.prefix(5) == Data("%PDF-".utf8))
        #expect(pdf.range(of: Data("/Subtype /Image".utf8)) != nil, "the photo is not in the PDF")
        let manifest = try #require(try JSONSerialization.jsonObject(with: try scratch.read(zip, "manifest.json")) as? [String: Any])
        let files = try #require(manifest["files"] as? [[String: Any]])
        #expect(files.first { $0["path"] as? String == "report.pdf" }?["sha256"] as? String == SHA256.hash(data: pdf).hexString)
        #expect(manifest["notes"] == nil)
        let check = try CommandLineTool.run("/usr/bin/python3", [CaseExportTests.checker, out])
        #expect(check.status == 0, "\(check.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.file("archive/tmp")).isEmpty, "the scratch copy stayed")

        let plain = try EvidenceArchive(directory: directory.file("archive"), archiveKey: key, signingKey: identity)
        let bare = directory.file("bare.zip")
        _ = try plain.export(caseID, to: bare)
        let bareZip = try Archive(url: URL(fileURLWithPath: bare), accessMode: .read)
        #expect(bareZip["report.pdf"] == nil)
        let notes = (try JSONSerialization.jsonObject(with: try scratch.read(bareZip, "manifest.json")) as? [String: Any])?["notes"] as? [String]
        #expect(notes?.first?.contains("no renderer") == true, "\(String(describing: notes))")
    }
}

/// A case with a participant and a real image for the report to show.
struct ScratchArchiveContent {
    let archive: EvidenceArchive

    func caseWithPhoto(_ random: inout some RandomNumberGenerator) throws -> String {
        let caseID = try archive.openCase(CaseDetails(reference: "WO-PDF", asset: "Pumpe P-3"),
                                          participants: [Participant(id: "tech", name: "Ana Tech", role: .technician)])
        try archive.file(EvidenceDraft(kind: .photo, capturedAt: 1, mediaType: "image/bmp", authorID: "tech"),
                         content: .bytes(Self.bitmap(width: 160, height: 120, &random)), into: caseID)
        try archive.file(EvidenceDraft(kind: .textNote, capturedAt: 2, text: "Dichtung getauscht"), into: caseID)
        return caseID
    }

    func read(_ zip: Archive, _ name: String) throws -> Data {
        var data = Data()
        guard let entry = zip[name] else { throw TestFailure("\(name) missing") }
        _ = try zip.extract(entry) { data.append($0) }
        return data
    }

    /// A 24-bit BMP of random colours: an image Chromium shows that needs no encoder library.
    static func bitmap(width: Int, height: Int, _ random: inout some RandomNumberGenerator) -> [UInt8] {
        let row = (width * 3 + 3) & ~3
        func le32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xFF) } }
        var out: [UInt8] = Array("BM".utf8) + le32(54 + row * height) + le32(0) + le32(54)
        out += le32(40) + le32(width) + le32(height) + [1, 0, 24, 0] + le32(0) + le32(row * height) + le32(2835) + le32(2835) + le32(0) + le32(0)
        for _ in 0..<height { out += randomBytes(row, &random) }
        return out
    }
}
