import Foundation
import SightlineSystem

/// Where evidence files land until the case archive exists: `<state>/evidence/<case>/`,
/// directories 0700, files 0600, written atomically so a crash never leaves half a photo.
struct EvidenceDirectory: Sendable {
    let root: String
    var caseID = "unassigned"

    init(stateDirectory: String) {
        root = (stateDirectory as NSString).appendingPathComponent("evidence")
    }

    /// Stores `bytes` as `<kind>-<UTC time>-<sequence>.<extension>` and returns the path.
    func store(_ bytes: [UInt8], kind: String, extension fileExtension: String, sequence: UInt32) throws -> String {
        let directory = (root as NSString).appendingPathComponent(caseID)
        try SecureFiles.ensurePrivateDirectory(directory)
        let time = Date().formatted(.iso8601.year().month().day().dateSeparator(.omitted).time(includingFractionalSeconds: true)
            .timeSeparator(.omitted)).replacingOccurrences(of: ".", with: "")
        let path = (directory as NSString).appendingPathComponent("\(kind)-\(time)-\(sequence).\(fileExtension)")
        try SecureFiles.writeAtomically(Data(bytes), to: path)
        return path
    }
}
