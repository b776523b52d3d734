import Foundation
import Logging
import SightlineArchive
import SightlineCore
import Synchronization

/// Records voice notes from the same 16 kHz tap the recognizer hears: `start` arms it, every
/// chunk passes through `feed` (cheap; the audio path never waits on the archive), and the note
/// ends at silence, at its maximum length or on "end of note". The note is written as a 16 kHz
/// mono WAV, filed as an `audio-note` item in the active case, and its effect handed to the
/// dispatcher's `later`.
final class VoiceNoteRecorder: Sendable {
    private struct Recording {
        var samples: [Int16] = []
        var end: NoteEnd
        let later: @Sendable (ActionEffect) async -> Void
    }

    private let recording = Mutex<Recording?>(nil)
    private let silenceMilliseconds: Int
    private let maximumSeconds: Int
    private let cases: CaseService
    private let evidence: EvidenceDirectory
    private let logger: Logger

    init(silenceMilliseconds: Int, maximumSeconds: Int, cases: CaseService, evidence: EvidenceDirectory, logger: Logger) {
        self.silenceMilliseconds = silenceMilliseconds
        self.maximumSeconds = maximumSeconds
        self.cases = cases
        self.evidence = evidence
        self.logger = logger
    }

    var isRecording: Bool { recording.withLock { $0 != nil } }

    /// Arms a note; false when one is already being recorded.
    func start(later: @escaping @Sendable (ActionEffect) async -> Void) -> Bool {
        recording.withLock { current in
            guard current == nil else { return false }
            current = Recording(end: NoteEnd(silenceMilliseconds: silenceMilliseconds, maximumMilliseconds: maximumSeconds * 1000), later: later)
            return true
        }
    }

    /// One chunk of the tap; ends the note when `NoteEnd` says so.
    func feed(_ chunk: [Int16]) {
        let finished: (Recording, NoteEnd.Decision)? = recording.withLock { current in
            guard var note = current else { return nil }
            note.samples += chunk
            let decision = note.end.feed(chunk)
            if decision == .recording {
                current = note
                return nil
            }
            current = nil
            return (note, decision)
        }
        if let finished {
            Task { await self.file(finished.0, reason: finished.1) }
        }
    }

    /// "End of note": files what was recorded so far; false when no note was being recorded.
    func stop() async -> Bool {
        guard let note = recording.withLock({ current in defer { current = nil }; return current }) else { return false }
        await file(note, reason: .silence)
        return true
    }

    private func file(_ note: Recording, reason: NoteEnd.Decision) async {
        guard note.end.heardSpeech else {
            await note.later(.unavailable("no speech after the note started", spoken: "No note heard."))
            return
        }
        let wav = WAVFile.encode(samples: note.samples, sampleRate: VoiceTap.format.sampleRate, channels: 1)
        let seconds = Double(note.samples.count) / Double(VoiceTap.format.sampleRate)
        let bytes = Array(wav)
        do {
            let (caseID, item) = try await cases.perform { archive in
                let caseID = try archive.activeCaseID()
                let draft = EvidenceDraft(kind: .audioNote, capturedAt: EvidenceArchive.systemClock(), mediaType: "audio/wav")
                return (caseID, try archive.file(draft, content: .bytes(bytes), into: caseID))
            }
            logger.info("voice note filed", metadata: ["case": "\(caseID)", "item": "\(item.id)", "seconds": "\(seconds)"])
            let spoken = reason == .maximumLength ? "Note saved at its maximum length." : "Note saved."
            // Only in the archive, encrypted: a plaintext copy would outlive its retention.
            await note.later(.done(spoken, caseId: caseID, itemId: item.id))
        } catch {
            let reason = DaemonActionPerformer.reason(error)
            logger.error("voice note not filed", metadata: ["error": "\(reason)"])
            // Not lost: kept as a 0600 file for an operator to file later, if the disk takes it.
            let kept = try? evidence.store(bytes, kind: "note", extension: "wav", sequence: UInt32(truncatingIfNeeded: note.samples.count))
            await note.later(ActionEffect(outcome: .failed, result: "failed: \(reason)\(kept.map { "; the note is kept in \($0)" } ?? "")",
                                          spoken: "The note could not be saved.", artefacts: kept.map { [$0] } ?? []))
        }
    }
}
