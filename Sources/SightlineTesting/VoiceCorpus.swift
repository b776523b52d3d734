import Foundation
import SightlineCore

/// A recording assembled from synthesised phrases with room tone between them, remembering where
/// each phrase is, so that decisions can be matched to what was said. The voice tests and
/// `bench/run voice` build their corpora with it.
public struct VoiceCorpus: Sendable {
    public struct Part: Sendable {
        public let text: String
        public let voice: String
        /// Where the phrase's sound starts and ends in the recording, in seconds.
        public let start: Double
        public let end: Double
    }

    public private(set) var samples: [Int16] = []
    public private(set) var parts: [Part] = []

    public init() {}

    public var seconds: Double { Double(samples.count) / 16000 }

    public mutating func pause(_ seconds: Double) {
        samples += SpeechSynthesizer.roomTone(seconds: seconds, seed: UInt64(samples.count + 1))
    }

    public mutating func say(_ text: String, voice: String, tempo: Double = 1.0, pauseAfter: Double = 1.2) throws {
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
    public func part(of decision: UtteranceDecision) -> Part? {
        parts.first { decision.startSeconds < $0.end + 0.1 && decision.endSeconds > $0.start - 0.1 }
    }

    /// Accepted decisions that named the action of the phrase spoken where they lie (`right`),
    /// and the other accepted ones (`wrong`: a wrong action, or a command where none was said).
    public func score(_ decisions: [UtteranceDecision], vocabulary: VoiceVocabulary) -> (right: Int, wrong: Int) {
        var right = 0, wrong = 0
        for decision in decisions where decision.accepted {
            if let part = part(of: decision), vocabulary.action(forHypothesis: part.text) == decision.action { right += 1 } else { wrong += 1 }
        }
        return (right, wrong)
    }

    /// Every phrase of `vocabulary` in every flite voice at `tempo`, with `noise` mixed over the
    /// whole recording at `snr` dB when given (a hall is never quiet between commands).
    public static func commands(_ vocabulary: VoiceVocabulary, tempo: Double = 1.0, snr: Double? = nil, seed: UInt64 = 3) throws -> VoiceCorpus {
        var corpus = VoiceCorpus()
        corpus.pause(0.8)
        for voice in SpeechSynthesizer.voices {
            for phrase in vocabulary.phrases { try corpus.say(vocabulary.spoken(phrase), voice: voice, tempo: tempo) }
        }
        if let snr { corpus.addNoise(snr: snr, seed: seed) }
        return corpus
    }

    /// The unrelated sentences (near misses of every command included), `passes` times over, each
    /// pass in different flite voices: 4 passes say every sentence in every voice.
    public static func unrelatedSpeech(passes: Int = 4, snr: Double? = nil, seed: UInt64 = 5) throws -> VoiceCorpus {
        let voices = SpeechSynthesizer.voices
        var corpus = VoiceCorpus()
        corpus.pause(0.8)
        for pass in 0..<passes {
            for (index, sentence) in unrelatedSentences.enumerated() {
                try corpus.say(sentence, voice: voices[(index + pass) % voices.count], pauseAfter: 0.9)
            }
        }
        if let snr { corpus.addNoise(snr: snr, seed: seed) }
        return corpus
    }

    /// Short near misses of the commands (`nearMissSentences`) in every flite voice: the hardest
    /// negatives, sharing most of a phrase's words or sounds with it.
    public static func nearMisses(snr: Double? = nil, seed: UInt64 = 7) throws -> VoiceCorpus {
        var corpus = VoiceCorpus()
        corpus.pause(0.8)
        for voice in SpeechSynthesizer.voices {
            for sentence in nearMissSentences {
                try corpus.say(sentence, voice: voice, pauseAfter: 0.9)
            }
        }
        if let snr { corpus.addNoise(snr: snr, seed: seed) }
        return corpus
    }

    /// Mixes white noise over the whole recording at `snr` dB (over the speech's power).
    public mutating func addNoise(snr: Double, seed: UInt64) {
        samples = SpeechSynthesizer.mix(samples, noise: SpeechSynthesizer.noise(seconds: 7.3, amplitude: 10000, seed: seed), snr: snr)
    }
}

extension VoiceCorpus {
    /// Unrelated speech a technician might say, with near misses of every command.
    public static let unrelatedSentences = [
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

extension VoiceCorpus {
    /// Short sentences that share words or sounds with a built-in command without being one.
    public static let nearMissSentences = [
        "finish the report", "zoom closer please", "mark my words", "privacy matters",
        "take a seat", "picture perfect", "begin the test", "the recording works",
        "finish it later", "add a comment", "a voice message", "end of story",
        "the end of the line", "call the office", "ask the expert", "hang up your coat",
        "pick up the call", "mark the spot", "this step is done", "please hold on",
        "resume the test", "streaming is slow", "zoom in a bit", "zoom out slowly",
        "a wider view", "say it again", "do that again", "take a look",
        "make a picture", "recording studio", "call it a day", "hang on a minute",
        "mark this down", "privacy first", "resume playing", "a zoom call now",
        "say that louder", "out of order", "note this number", "begin working",
    ]
}
