import Foundation
import Logging
import SightlineArchive
import SightlineCore

/// Where every action report goes: the status counters, the open case's journal (spoken commands
/// become `voice-command` items, so the case shows what was asked and what happened), the
/// command journal for results that come after the command was answered, and the hooks.
struct ActionLedger: Sendable {
    let board: VoiceStatusBoard
    let cases: CaseService
    let journal: VoiceJournal?
    let hooks: HookRunner
    let device: HookPayload.Device
    let logger: Logger

    func record(_ report: ActionReport, command: RecognizedCommand?, deferred: Bool) async {
        board.recordAction(report, phrase: command?.phrase)
        logger.notice("action", metadata: [
            "action": "\(report.action.rawValue)", "source": "\(report.source.rawValue)", "outcome": "\(report.outcome.rawValue)",
            "result": "\(report.result)", "case": "\(report.caseId ?? "")",
        ])
        if let command {
            await fileCommandEvent(report, command: command)
            if deferred, let journal {
                do {
                    try await journal.append(VoiceJournalEntry(time: Date(), command: command, result: report.result))
                } catch {
                    logger.error("voice journal not written", metadata: ["error": "\(error)"])
                }
            }
        }
        if report.outcome != .pending {
            hooks.submit(HookPayload(report: report, phrase: command?.phrase, device: device, time: Date()))
        }
    }

    /// The command as a `voice-command` item in the active case: phrase, scores and outcome.
    private func fileCommandEvent(_ report: ActionReport, command: RecognizedCommand) async {
        let event = VoiceCommandEvent(phrase: command.phrase, action: report.action.rawValue, score: command.score, margin: command.margin,
                                      outcome: report.outcome.rawValue, result: report.result, itemId: report.itemId)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        guard let data = try? encoder.encode(event) else { return }
        let text = String(decoding: data, as: UTF8.self)
        do {
            _ = try await cases.perform { archive in
                let caseID = try report.caseId ?? archive.activeCaseID()
                return try archive.file(EvidenceDraft(kind: .voiceCommand, capturedAt: EvidenceArchive.systemClock(), text: text), into: caseID)
            }
        } catch {
            logger.error("voice command not filed in the case journal", metadata: ["error": "\(DaemonActionPerformer.reason(error))"])
        }
    }
}

/// The text of a `voice-command` item.
struct VoiceCommandEvent: Codable, Sendable {
    let phrase: String
    let action: String
    let score: Int
    let margin: Int
    let outcome: String
    let result: String
    /// The item the action made, when it made one.
    let itemId: String?
}
