import Crypto
import Foundation
import SightlineCore
import SightlineSystem
import ZIPFoundation

/// What `export` wrote.
public struct CaseExportSummary: Sendable, Codable {
    public var path: String
    public var files: Int
    public var evidenceBytes: UInt64
    public var manifestSHA256: String
}

/// manifest.json (docs/ARCHIVE.md, "Export"): every other file of the ZIP with its SHA-256,
/// signed as a whole by the device key in manifest.json.sig.
struct ExportManifest: Codable {
    struct File: Codable {
        var path: String
        var sha256: String
        var size: UInt64
        var itemID: String?

        enum CodingKeys: String, CodingKey {
            case path, sha256, size
            case itemID = "item_id"
        }
    }

    struct Journal: Codable {
        var entries: UInt64
        var headHash: String

        enum CodingKeys: String, CodingKey {
            case entries
            case headHash = "head_hash"
        }
    }

    var format = "sightline-case-export"
    var version = 1
    var caseID: String
    var reference: String
    var exportedAt: EpochMilliseconds
    var devicePublicKey: String
    var deviceFingerprint: String
    var journal: Journal
    var files: [File]
    /// Why an optional file (report.pdf) is missing; absent when nothing is.
    var notes: [String]?

    enum CodingKeys: String, CodingKey {
        case format, version, reference, journal, files, notes
        case caseID = "case_id"
        case exportedAt = "exported_at"
        case devicePublicKey = "device_public_key"
        case deviceFingerprint = "device_fingerprint"
    }
}

extension EvidenceArchive {
    /// Writes a verified case as a ZIP: report.html, evidence/ (decrypted, streamed one chunk at
    /// a time), journal/, device-public-key.pem, manifest.json and its detached Ed25519
    /// signature. A case that does not verify is not exported: the report would vouch for it.
    ///
    /// - Parameter includeRestricted: also export the content of items restricted after an
    ///   erasure request (Art. 18 (2) GDPR: for legal claims or the tax authority); without
    ///   it their content is left out and the journal says why.
    public func export(_ caseID: String, to path: String, includeRestricted: Bool = false) throws(ArchiveError) -> CaseExportSummary {
        let projection: CaseProjection
        switch verify(caseID) {
        case .success(let verified): projection = verified
        case .failure(let link): throw .rejected(caseID: caseID, reason: "it does not verify (\(link)); export refused")
        }
        let stored = try journal(caseID)
        let key = try dataKey(for: caseID)
        return try writeSignedExport(to: path) { writer in
            var evidenceNames: [String: String] = [:]
            let removedAfterSync = try syncedBlobs(caseID).filter(\.value.removed)
            for (_, item) in projection.items
            where !projection.contentRemoved(item.id) && (includeRestricted || projection.restricted[item.id] == nil) {
                guard let blob = item.blob else { continue }
                guard removedAfterSync[blob.hex] == nil else {
                    throw ArchiveError.rejected(caseID: caseID, reason: "the content of item \(item.id) was removed from this device after the "
                                                + "organisation's archive confirmed it (sync.delete_after_sync); the daemon fetches it back on export "
                                                + "while sync is configured (sync.url, sync.token_file)")
                }
                let name = "evidence/\(item.id)\(Self.fileExtension(item.mediaType))"
                try writer.addBlob(name, reader: try BlobReader(path: blobPath(caseID: caseID, sha256: blob.hex), key: key), blob: blob,
                                   itemID: item.id, caseID: caseID)
                evidenceNames[item.id] = name
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let entryLines = try stored.entries.map {
                String(decoding: try encoder.encode(JournalEntryJSON($0)), as: UTF8.self)
            }
            try writer.addText("journal/entries.jsonl", Array((entryLines.joined(separator: "\n") + "\n").utf8))
            let checkpointLines = try stored.checkpoints.map {
                String(decoding: try encoder.encode(JournalCheckpointJSON($0)), as: UTF8.self)
            }
            try writer.addText("journal/checkpoints.jsonl", Array((checkpointLines.joined(separator: "\n") + "\n").utf8))
            try writer.addText("device-public-key.pem", Array(Self.publicKeyPEM(devicePublicKey).utf8))
            let entries = try stored.entries.map { try JournalEntry(canonical: $0.canonical) }
            let report = Array(CaseReport.html(projection: projection, entries: entries, evidence: evidenceNames,
                                               fingerprint: DeviceIdentityEncoding.fingerprint(of: devicePublicKey)).utf8)
            try writer.addText("report.html", report)
            var notes: [String] = []
            if let reportRenderer {
                let images = projection.items.filter { evidenceNames[$0.item.id] != nil && $0.item.mediaType?.hasPrefix("image/") == true }
                    .compactMap { entry in entry.item.blob.map { (name: evidenceNames[entry.item.id] ?? "", blob: $0) } }
                if let failure = try renderPDF(report, images: images, caseID: caseID, key: key, renderer: reportRenderer, into: writer) {
                    notes.append("report.pdf left out: \(failure)")
                }
            } else {
                notes.append("report.pdf left out: no renderer (headless Chromium) on this device")
            }
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            let manifest = ExportManifest(
                caseID: caseID, reference: projection.details.reference, exportedAt: Self.systemClock(),
                devicePublicKey: devicePublicKey.rawRepresentation.base64EncodedString(),
                deviceFingerprint: DeviceIdentityEncoding.fingerprint(of: devicePublicKey),
                journal: .init(entries: projection.entryCount, headHash: projection.headHash.hexString), files: writer.files,
                notes: notes.isEmpty ? nil : notes)
            return Array(try encoder.encode(manifest)) + [0x0A]
        }
    }

    /// Prints the report to report.pdf in the ZIP. The renderer needs the report's images as
    /// files, so they are decrypted into a private scratch directory under `tmp/` (0700, removed
    /// at once, and by the next start after a crash). Returns why no PDF was made, if it failed.
    private func renderPDF(_ report: [UInt8], images: [(name: String, blob: BlobReference)], caseID: String, key: SymmetricKey,
                           renderer: ReportRenderer, into writer: SignedExportWriter) throws -> String? {
        let scratch = Self.path(directory, "tmp/report-\(UUID().uuidString)")
        try SecureFiles.ensurePrivateDirectory(scratch)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try SecureFiles.ensurePrivateDirectory((scratch as NSString).appendingPathComponent("evidence"))
        let html = (scratch as NSString).appendingPathComponent("report.html")
        try SecureFiles.writeAtomically(Data(report), to: html)
        for image in images {
            let writer = try DurableFileWriter(temporaryPath: (scratch as NSString).appendingPathComponent(image.name + ".part"))
            try openBlob(caseID: caseID, image.blob, key: key, plaintext: writer.write)
            try writer.commit(to: (scratch as NSString).appendingPathComponent(image.name))
        }
        let pdf = (scratch as NSString).appendingPathComponent("report.pdf")
        do {
            try renderer.render(html: html, to: pdf, scratch: scratch)
        } catch {
            return "\(error)"
        }
        try writer.addFile("report.pdf", path: pdf)
        return nil
    }

    /// Creates the ZIP, lets `fill` add its files and return the manifest's bytes, signs the
    /// manifest and puts the ZIP in place; on any failure the partial file is removed.
    func writeSignedExport(to path: String, _ fill: (SignedExportWriter) throws -> [UInt8]) throws(ArchiveError) -> CaseExportSummary {
        let writer: SignedExportWriter
        do {
            writer = try SignedExportWriter(destination: path)
        } catch {
            throw .storage(SystemError("create export", path: path, errno: (error as? POSIXError)?.code.rawValue ?? EIO))
        }
        do {
            let manifest = try fill(writer)
            try writer.finish(manifest: manifest, signature: Array(try signManifest(manifest)))
            return CaseExportSummary(path: path, files: writer.files.count + 2, evidenceBytes: writer.evidenceBytes,
                                     manifestSHA256: SHA256.hash(data: manifest).hexString)
        } catch {
            writer.abandon()
            throw Self.exportFailure(error, path: path)
        }
    }

    static func exportFailure(_ error: any Error, path: String) -> ArchiveError {
        if let error = error as? ArchiveError { return error }
        if let error = error as? SystemError { return .storage(error) }
        return .storage(SystemError("write export (\(error))", path: path, errno: (error as? POSIXError)?.code.rawValue ?? EIO))
    }

    static func fileExtension(_ mediaType: String?) -> String {
        switch mediaType {
        case "image/jpeg": ".jpg"
        case "image/png": ".png"
        case "image/bmp": ".bmp"
        case "video/mp4": ".mp4"
        case "video/h264": ".h264"
        case "audio/ogg", "audio/opus": ".ogg"
        case "audio/wav", "audio/x-wav": ".wav"
        case "text/plain": ".txt"
        default: ".bin"
        }
    }

    /// SubjectPublicKeyInfo (RFC 8410) in PEM, so `openssl pkeyutl -verify` can check the signature.
    static func publicKeyPEM(_ key: Curve25519.Signing.PublicKey) -> String {
        let der: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00] + Array(key.rawRepresentation)
        return "-----BEGIN PUBLIC KEY-----\n\(Data(der).base64EncodedString())\n-----END PUBLIC KEY-----\n"
    }
}

/// A ZIP written under a temporary name beside its destination, listing every file it adds
/// with its SHA-256 for the signed manifest, and renamed into place only when complete and
/// on disk. The one owner of the open ZIP.
final class SignedExportWriter {
    private var zip: Archive?
    private let temporary: String
    private let destination: String
    private(set) var files: [ExportManifest.File] = []
    private(set) var evidenceBytes: UInt64 = 0

    init(destination: String) throws {
        self.destination = destination
        temporary = "\(destination).part-\(getpid())"
        unlink(temporary)
        zip = try Archive(url: URL(fileURLWithPath: temporary), accessMode: .create)
        chmod(temporary, 0o600)
    }

    private func open() throws -> Archive {
        guard let zip else { throw SystemError("write export", path: temporary, errno: EBADF) }
        return zip
    }

    func addText(_ name: String, _ bytes: [UInt8]) throws {
        try open().addEntry(with: name, type: .file, uncompressedSize: Int64(bytes.count), compressionMethod: .deflate) { position, size in
            Data(bytes[Int(position)..<min(bytes.count, Int(position) + size)])
        }
        files.append(.init(path: name, sha256: SHA256.hash(data: bytes).hexString, size: UInt64(bytes.count)))
    }

    /// Streams a file into the ZIP a megabyte at a time.
    func addFile(_ name: String, path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw SystemError("open", path: path, errno: errno) }
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: 0)
        var hasher = SHA256()
        try open().addEntry(with: name, type: .file, uncompressedSize: Int64(size), compressionMethod: .deflate) { _, count in
            let data = try handle.read(upToCount: count) ?? Data()
            hasher.update(data: data)
            return data
        }
        files.append(.init(path: name, sha256: Array(hasher.finalize()).hexString, size: size))
    }

    /// Streams a blob's plaintext into the ZIP one chunk at a time and checks it against its address.
    func addBlob(_ name: String, reader: BlobReader, blob: BlobReference, itemID: String, caseID: String) throws {
        var pending: [UInt8] = []
        var hasher = SHA256()
        try open().addEntry(with: name, type: .file, uncompressedSize: Int64(blob.size), compressionMethod: .none) { _, size in
            while pending.count < size, let chunk = try reader.next() {
                hasher.update(data: chunk)
                pending += chunk
            }
            let out = Data(pending.prefix(size))
            pending.removeFirst(min(size, pending.count))
            return out
        }
        guard Array(hasher.finalize()) == blob.sha256 else {
            throw ArchiveError.blob(caseID: caseID, sha256: blob.hex, reason: "changed while it was being exported")
        }
        files.append(.init(path: name, sha256: blob.hex, size: blob.size, itemID: itemID))
        evidenceBytes += blob.size
    }

    /// Adds manifest.json and its detached signature, closes the ZIP, fsyncs it and renames it
    /// to its destination.
    func finish(manifest: [UInt8], signature: [UInt8]) throws {
        do {
            let zip = try open()
            try zip.addEntry(with: "manifest.json", type: .file, uncompressedSize: Int64(manifest.count), compressionMethod: .deflate) { _, _ in
                Data(manifest)
            }
            try zip.addEntry(with: "manifest.json.sig", type: .file, uncompressedSize: Int64(signature.count)) { _, _ in Data(signature) }
        }
        zip = nil  // the last reference: ZIPFoundation closes the file on release
        let fd = Foundation.open(temporary, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: temporary, errno: errno) }
        let synced = fsync(fd)
        let syncErrno = errno
        closeDescriptor(fd)
        guard synced == 0 else { throw SystemError("fsync", path: temporary, errno: syncErrno) }
        guard rename(temporary, destination) == 0 else { throw SystemError("rename", path: destination, errno: errno) }
        try SecureFiles.syncDirectory((destination as NSString).deletingLastPathComponent)
    }

    func abandon() {
        zip = nil
        unlink(temporary)
    }
}
