import Foundation
import SightlineCore

/// The human-readable report inside an export: case data, participants and consents, call
/// records, photos, and the whole timeline with each entry's hash. Self-contained HTML (no
/// scripts, no external resources) that opens from the unpacked ZIP.
enum CaseReport {
    static func html(projection: CaseProjection, entries: [JournalEntry], evidence: [String: String], fingerprint: String) -> String {
        let details = projection.details
        var out = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self'; style-src 'unsafe-inline'">
            <title>Case \(escape(details.reference))</title>
            <style>body{font:14px/1.4 sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;width:100%}
            td,th{border:1px solid #ccc;padding:.3em;text-align:left;vertical-align:top}code{font-size:12px}
            figure{display:inline-block;margin:.5em}img{max-width:18em;max-height:14em}</style></head><body>
            <h1>Service case \(escape(details.reference))</h1>
            <table>
            <tr><th>Title</th><td>\(escape(details.title ?? ""))</td></tr>
            <tr><th>Asset</th><td>\(escape(details.asset ?? ""))</td></tr>
            <tr><th>Site</th><td>\(escape(details.site ?? ""))</td></tr>
            <tr><th>State</th><td>\(projection.state.rawValue)</td></tr>
            <tr><th>Opened</th><td>\(time(projection.openedAt))</td></tr>
            <tr><th>Case id</th><td><code>\(escape(projection.caseID))</code></td></tr>
            <tr><th>Journal</th><td>\(projection.entryCount) entries, head <code>\(projection.headHash.hexString)</code></td></tr>
            <tr><th>Device key</th><td><code>\(escape(fingerprint))</code></td></tr>
            </table>

            """
        out += "<h2>Participants</h2>\n<table><tr><th>Id</th><th>Name</th><th>Role</th></tr>\n"
        for participant in projection.participants {
            out += "<tr><td>\(escape(participant.id))</td><td>\(escape(participant.name))</td><td>\(participant.role.rawValue)</td></tr>\n"
        }
        out += "</table>\n<h2>Consents</h2>\n<table><tr><th>Participant</th><th>Scope</th><th>Granted</th><th>When</th><th>Call</th></tr>\n"
        for consent in projection.consents {
            out += "<tr><td>\(escape(consent.participantID))</td><td>\(consent.scope.rawValue)</td><td>\(consent.granted ? "yes" : "no")</td>"
                + "<td>\(time(consent.givenAt))</td><td>\(escape(consent.callID ?? ""))</td></tr>\n"
        }
        out += "</table>\n<h2>Calls</h2>\n<table><tr><th>Call</th><th>Start</th><th>End</th><th>Participants</th><th>Encryption</th></tr>\n"
        for (_, item) in projection.items {
            guard let call = item.call else { continue }
            out += "<tr><td>\(escape(call.callID))</td><td>\(time(call.startedAt))</td><td>\(call.endedAt.map(time) ?? "")</td>"
                + "<td>\(escape(call.participantIDs.joined(separator: ", ")))</td><td>\(escape(call.encryption))</td></tr>\n"
        }
        out += "</table>\n<h2>Photos</h2>\n"
        for (_, item) in projection.items where item.kind == .photo || item.kind == .expertSnapshot {
            guard let name = evidence[item.id] else { continue }
            out += "<figure><img src=\"\(escape(name))\" alt=\"\(escape(item.id))\"><figcaption>\(time(item.capturedAt))"
                + "\(item.text.map { " — " + escape($0) } ?? "")</figcaption></figure>\n"
        }
        out += "<h2>Timeline</h2>\n<table><tr><th>#</th><th>Recorded</th><th>Event</th><th>Hash</th></tr>\n"
        for entry in entries {
            out += "<tr><td>\(entry.sequence)</td><td>\(time(entry.recordedAt))</td><td>\(describe(entry.event, evidence: evidence))</td>"
                + "<td><code>\(entry.hash.hexString.prefix(16))…</code></td></tr>\n"
        }
        out += """
            </table>
            <p>Every file of this export is listed with its SHA-256 in <code>manifest.json</code>, which the device signed
            (<code>manifest.json.sig</code>, Ed25519, key in <code>device-public-key.pem</code>). The journal in
            <code>journal/</code> is a hash chain with signed checkpoints; the format is described in ARCHIVE.md.</p>
            </body></html>

            """
        return out
    }

    static func describe(_ event: CaseEvent, evidence: [String: String]) -> String {
        switch event {
        case .opened(let details): return "case opened: \(escape(details.reference))"
        case .closed(let reason): return "case closed" + (reason.map { ": " + escape($0) } ?? "")
        case .reopened(let reason): return "case reopened" + (reason.map { ": " + escape($0) } ?? "")
        case .participantAdded(let participant): return "participant \(escape(participant.name)) (\(participant.role.rawValue))"
        case .consentRecorded(let consent):
            return "consent of \(escape(consent.participantID)) to \(consent.scope.rawValue): \(consent.granted ? "granted" : "refused")"
        case .evidenceAdded(let item):
            var text = "\(item.kind.rawValue) <code>\(escape(item.id))</code>"
            if let name = evidence[item.id] { text += " — <a href=\"\(escape(name))\">\(escape(name))</a>" }
            if let note = item.text { text += " — \(escape(note))" }
            if let corrected = item.corrects { text += " (corrects <code>\(escape(corrected))</code>)" }
            if let origin = item.refiledFrom { text += " (re-filed from case <code>\(escape(origin.caseID))</code>)" }
            if let retention = item.retentionClass { text += " [\(escape(retention))]" }
            return text
        case .evidenceRefiled(let itemID, let toCase):
            return "item <code>\(escape(itemID))</code> re-filed to case <code>\(escape(toCase))</code>"
        case .legalHoldSet(let reason): return "legal hold: \(escape(reason))"
        case .legalHoldReleased(let reason): return "legal hold released" + (reason.map { ": " + escape($0) } ?? "")
        case .evidencePurged(let tombstone):
            return "item <code>\(escape(tombstone.itemID))</code> purged (\(escape(tombstone.retentionClass)), content "
                + "<code>\(tombstone.blobSHA256?.hexString.prefix(16) ?? "none")…</code>: \(escape(tombstone.reason))"
        case .evidenceErased(let erasure):
            return "item <code>\(escape(erasure.itemID))</code> erased at the request of <code>\(escape(erasure.personID))</code>, content "
                + "<code>\(erasure.blobSHA256?.hexString.prefix(16) ?? "none")…</code>: \(escape(erasure.reason))"
        case .evidenceRestricted(let restriction):
            return "item <code>\(escape(restriction.itemID))</code> restricted at the request of <code>\(escape(restriction.personID))</code> "
                + "until \(time(restriction.until)): \(escape(restriction.reason))"
        }
    }

    static func time(_ milliseconds: EpochMilliseconds) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
