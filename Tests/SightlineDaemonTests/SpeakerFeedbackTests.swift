import SightlineCore
@testable import SightlineDaemon
import Testing

@Suite("Action feedback on the speaker")
struct SpeakerFeedbackTests {
    @Test("Recording starts and stops with sounds of their own; other outcomes map to accepted, pending, cancelled, rejected")
    func earconMapping() {
        #expect(SpeakerFeedback.earcon(for: .done, action: .startRecording) == .recordingStarted)
        #expect(SpeakerFeedback.earcon(for: .done, action: .stopRecording) == .recordingStopped)
        #expect(SpeakerFeedback.earcon(for: .done, action: .takePhoto) == .accepted)
        #expect(SpeakerFeedback.earcon(for: .pending, action: .endCall) == .pending)
        #expect(SpeakerFeedback.earcon(for: .cancelled, action: .endCall) == .cancelled)
        #expect(SpeakerFeedback.earcon(for: .failed, action: .startRecording) == .rejected)
    }
}
