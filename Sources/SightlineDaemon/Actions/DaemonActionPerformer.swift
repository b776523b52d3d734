import Foundation
import Hummingbird
import Logging
import SightlineArchive
import SightlineCore

/// The built-in actions on the daemon's real services: snapshots and the archive for evidence,
/// the call service, the video and voice-note recorders, the microphone's mute and the camera's
/// V4L2 zoom control.
struct DaemonActionPerformer: ActionPerformer {
    let camera: CameraService
    let calls: CallService
    let cases: CaseService
    let audio: AudioService
    /// Nil when voice is off: notes are recorded from the recognizer's tap.
    let notes: VoiceNoteRecorder?
    let video: VideoRecorder
    let logger: Logger

    func perform(_ action: VoiceAction, later: @escaping @Sendable (ActionEffect) async -> Void) async -> ActionEffect {
        switch action {
        case .takePhoto: return await takePhoto()
        case .callExpert: return await callExpert()
        case .endCall: return await endCall()
        case .markStep: return await markStep()
        case .privacyOn:
            // Camera and microphone both: nothing reaches a call, a recording or a snapshot.
            // Muting the microphone at the source also silences voice commands, so privacy
            // ends from a button or sightctl.
            camera.setPrivate(true)
            audio.setMuted(true)
            return .done("Privacy on. Camera and microphone are paused; turn privacy off with a button or sightctl.")
        case .privacyOff:
            camera.setPrivate(false)
            audio.setMuted(false)
            return .done("Privacy off. Camera and microphone are live.")
        case .zoomIn: return zoom(in: true)
        case .zoomOut: return zoom(in: false)
        case .startRecording: return video.start()
        case .stopRecording: return await video.stop()
        case .addVoiceNote: return startNote(later: later)
        case .endNote:
            guard let notes, await notes.stop() else {
                return .unavailable("no voice note is being recorded", spoken: "No note is being recorded.")
            }
            return .done("Ending the note.")
        case .repeatLast:
            // The dispatcher answers repeat_last itself; reaching here is harmless.
            return .done("Nothing to repeat yet.")
        }
    }

    private func takePhoto() async -> ActionEffect {
        do {
            let info = try await camera.takeSnapshot().info
            // A filed photo exists only encrypted in the archive; only the fallback copy is a file.
            guard let caseID = info.caseId else {
                return ActionEffect(outcome: .failed, result: "failed: photo saved at \(info.path ?? "?") but not filed in a case (see the daemon's log)",
                                    spoken: "Photo saved, but not filed in the case.", artefacts: info.path.map { [$0] } ?? [])
            }
            return .done("Photo taken.", caseId: caseID, itemId: info.itemId)
        } catch {
            return .failed(Self.reason(error), spoken: "No photo: the camera has no picture.")
        }
    }

    private func startNote(later: @escaping @Sendable (ActionEffect) async -> Void) -> ActionEffect {
        guard let notes else {
            return .unavailable("voice notes need the microphone's voice tap (voice.enabled: true)", spoken: "Voice notes are off on this device.")
        }
        guard notes.start(later: later) else {
            return .unavailable("a voice note is already being recorded", spoken: "A note is already being recorded.")
        }
        // Pending: the note's item and file come with the report when it ends; hooks wait for that.
        return ActionEffect(outcome: .pending, result: "pending: recording until silence or end_note",
                            spoken: "Recording a note. Pause or say end of note to finish.")
    }

    private func callExpert() async -> ActionEffect {
        do {
            let status = try await calls.startCall()
            return ActionEffect(outcome: .done, result: "done: call \(status.session ?? "") \(status.state)",
                                spoken: "Calling the expert.")
        } catch {
            return .failed(Self.reason(error), spoken: "The call could not be started.")
        }
    }

    private func endCall() async -> ActionEffect {
        guard calls.endCall() else { return .unavailable("no call is running", spoken: "There is no call to end.") }
        await calls.callRecordsFiled()
        return .done("Call ended.")
    }

    private func markStep() async -> ActionEffect {
        let time = Date().formatted(.iso8601.time(includingFractionalSeconds: false))
        do {
            let (caseID, item) = try await cases.perform { archive in
                let caseID = try archive.activeCaseID()
                let draft = EvidenceDraft(kind: .textNote, capturedAt: EvidenceArchive.systemClock(), text: "Step marked by voice at \(time) UTC")
                return (caseID, try archive.file(draft, into: caseID))
            }
            return .done("Step marked.", caseId: caseID, itemId: item.id)
        } catch {
            return .failed(Self.reason(error), spoken: "The step could not be marked.")
        }
    }

    /// One tenth of the zoom range per command, so ten commands go from widest to closest.
    private func zoom(in closer: Bool) -> ActionEffect {
        let controls: [CameraControl]
        do {
            controls = try camera.controls()
        } catch {
            return .unavailable(Self.reason(error), spoken: "This camera has no zoom.")
        }
        guard let zoom = controls.first(where: { $0.key == "zoom_absolute" }), !zoom.readOnly, !zoom.inactive else {
            return .unavailable("the camera has no zoom_absolute control", spoken: "This camera has no zoom.")
        }
        let target = ZoomStep.next(from: zoom.value ?? zoom.defaultValue, minimum: zoom.minimum, maximum: zoom.maximum,
                                   step: zoom.step, closer: closer)
        do {
            let value = try camera.setControl(zoom.key, to: target)
            let edge = value == (closer ? zoom.maximum : zoom.minimum)
            return ActionEffect(outcome: .done, result: "done: zoom_absolute \(value)",
                                spoken: edge ? (closer ? "Zoomed in fully." : "Zoomed out fully.") : (closer ? "Zoomed in." : "Zoomed out."))
        } catch {
            return .failed(Self.reason(error), spoken: "The zoom did not change.")
        }
    }

    /// The advice an error carries, without HTTP framing.
    static func reason(_ error: any Error) -> String {
        if let http = error as? HTTPError, let body = http.body { return body }
        return "\(error)"
    }
}

/// The next zoom value: a tenth of the range (at least the control's step), on the step grid,
/// clamped to the range.
enum ZoomStep {
    static func next(from value: Int64, minimum: Int64, maximum: Int64, step: UInt64, closer: Bool) -> Int64 {
        let grid = max(Int64(clamping: step), 1)
        let tenth = max((maximum - minimum) / 10 / grid * grid, grid)
        let moved = closer ? value + tenth : value - tenth
        let clamped = min(max(moved, minimum), maximum)
        return minimum + (clamped - minimum) / grid * grid
    }
}
