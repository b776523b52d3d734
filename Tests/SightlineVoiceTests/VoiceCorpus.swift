import Foundation
import SightlineCore
import SightlineTesting
import SightlineVoice

/// A recording assembled from synthesised phrases with room tone between them, remembering where
/// each phrase is, so that decisions can be matched to what was said.
struct VoiceCorpus {
    struct Part {
        let text: String
        let voice: String
        let start: Double
        let end: Double
    }

    private(set) var samples: [Int16] = []
    private(set) var parts: [Part] = []

    var seconds: Double { Double(samples.count) / 16000 }

    mutating func pause(_ seconds: Double) {
        samples += SpeechSynthesizer.roomTone(seconds: seconds, seed: UInt64(samples.count + 1))
    }

    mutating func say(_ text: String, voice: String, tempo: Double = 1.0, pauseAfter: Double = 1.2) throws {
        let speech = try SpeechSynthesizer.speak(text, voice: voice, tempo: tempo)
        // flite pads its output with silence; the part is where the sound is.
        let loud = speech.indices.filter { abs(Int(speech[$0])) > 200 }
        let first = loud.first ?? 0, last = loud.last ?? speech.count
        let offset = Double(samples.count) / 16000
        parts.append(Part(text: text, voice: voice, start: offset + Double(first) / 16000, end: offset + Double(last) / 16000))
        samples += SpeechSynthesizer.inRoom(speech, seed: UInt64(samples.count + 7))
        pause(pauseAfter)
    }

    /// The part a decision's phrase overlaps, if any.
    func part(of decision: UtteranceDecision) -> Part? {
        parts.first { decision.startSeconds < $0.end + 0.1 && decision.endSeconds > $0.start - 0.1 }
    }
}

enum VoiceFixture {
    static let configuration = DaemonConfiguration.defaults.voice

    static func decide(_ corpus: VoiceCorpus, vocabulary: VoiceVocabulary = configuration.vocabulary,
                       thresholds: VoiceThresholds = configuration.thresholds) async throws -> [UtteranceDecision] {
        try await CommandRecognizer.decide(samples: corpus.samples, modelDirectory: configuration.modelDirectory,
                                           vocabulary: vocabulary, thresholds: thresholds)
    }

    /// Unrelated speech a technician might say, with near misses of every command.
    static let unrelatedSentences = [
        "we had a zoom meeting yesterday afternoon", "let us take a break after this part",
        "please call me back when you are ready", "the privacy policy is on the website",
        "start the engine and let it warm up", "I recorded the pressure values on the sheet",
        "note the serial number on the label", "mark the cable before you unplug it",
        "the expert said the bearing is worn", "can you hand me the torque wrench",
        "the filter needs to be replaced every month", "turn the valve a quarter to the left",
        "this pump was installed last spring", "the picture on the screen is blurry",
        "check the oil level before starting", "we are waiting for the spare parts",
        "the voltage reads two hundred and thirty", "loosen the four bolts on the cover",
        "the machine stopped during the night shift", "open the panel on the right side",
        "the customer wants a report by friday", "there is a leak near the second joint",
        "put the old seal in the bin", "how long will the repair take",
        "the fan makes a strange noise", "it was fine until the update",
        "I think the sensor is broken", "write down the time of the failure",
        "the belt looks a bit loose", "we should finish before lunch",
        "send the photo to the office", "the stream of water is too weak",
        "begin with the lower screws", "the end of the shaft is scratched",
        "say hello to the team for me", "privacy is important for our workers",
        "the zoom lens is dirty", "he will resume work tomorrow",
        "hang the jacket on the hook", "again the light is blinking red",
    ]
}
