import Foundation
import Logging
import SightlineCore
import SightlineTesting
import Synchronization
import Testing
@testable import SightlineDaemon

@Suite("Voice service")
struct VoiceServiceTests {
    func state(_ directory: TemporaryDirectory) -> DaemonState {
        DaemonState(configurationLabel: "test", stateDirectory: directory.path,
                    identity: IdentityInfo(algorithm: "Ed25519", fingerprint: "test", publicKey: "", keyPath: ""), stallAfter: .seconds(10))
    }

    @Test("commands in a 16 kHz stream run their action and are journalled, 0600, one JSON line each")
    func streamToJournal() async throws {
        let directory = try TemporaryDirectory()
        var audio = SpeechSynthesizer.roomTone(seconds: 0.6)
        for phrase in ["take a picture", "we should finish before lunch", "mark this step"] {
            audio += SpeechSynthesizer.inRoom(try SpeechSynthesizer.speak(phrase, voice: "slt"), seed: UInt64(audio.count))
                + SpeechSynthesizer.roomTone(seconds: 1.0, seed: UInt64(audio.count + 1))
        }
        let chunks = AsyncStream<[Int16]> { continuation in
            for start in stride(from: 0, to: audio.count, by: 320) {
                continuation.yield(Array(audio[start..<min(start + 320, audio.count)]))
            }
            continuation.finish()
        }
        let performed = Mutex<[VoiceAction]>([])
        let journal = try VoiceJournal(stateDirectory: directory.path)
        let daemonState = state(directory)
        // The whole recording arrives at once, far faster than real time: room for all of it.
        let service = VoiceService(configuration: DaemonConfiguration.defaults.voice, journal: journal, state: daemonState,
                                   logger: Logger(label: "test"), backlogSeconds: 60) { command in
            performed.withLock { $0.append(command.action) }
            return command.action == .takePhoto ? "done" : "failed: no open case"
        }
        await service.run(audio: chunks)

        #expect(performed.withLock { $0 } == [.takePhoto, .markStep])
        let lines = try String(contentsOfFile: journal.path, encoding: .utf8).split(separator: "\n")
        try #require(lines.count == 2, "\(lines)")
        let entries = try lines.map { try JSONDecoder().decode(VoiceJournalEntry.self, from: Data($0.utf8)) }
        #expect(entries.map(\.action) == [.takePhoto, .markStep])
        #expect(entries.map(\.result) == ["done", "failed: no open case"])
        #expect(entries[0].phrase == "take a picture")
        #expect(entries[0].startS > 0.5 && entries[0].endS < entries[1].startS)
        #expect(lines[0].contains("\"start_s\":") && lines[0].contains("\"time\":\"20"))
        let file = try FileManager.default.attributesOfItem(atPath: journal.path)
        #expect((file[.posixPermissions] as? Int) == 0o600)
        let folder = try FileManager.default.attributesOfItem(atPath: (journal.path as NSString).deletingLastPathComponent)
        #expect((folder[.posixPermissions] as? Int) == 0o700)
        let status = await daemonState.status(pid: 1).services.first { $0.name == "voice" }
        #expect(status?.state == .stopped)
        #expect(status?.detail.contains(" 0 ms of audio dropped") == true, "\(status?.detail ?? "")")
    }

    @Test("the journal is bounded: a full file moves aside and a new one starts")
    func journalRotation() async throws {
        let directory = try TemporaryDirectory()
        let journal = try VoiceJournal(stateDirectory: directory.path, maximumBytes: 600)
        let command = RecognizedCommand(phrase: "take a picture", action: .takePhoto, startSeconds: 1, endSeconds: 2,
                                        score: -3000, margin: 100, decidedAtSeconds: 2.3)
        for _ in 0..<10 { try await journal.append(VoiceJournalEntry(time: Date(), command: command, result: "done")) }
        let current = try Data(contentsOf: URL(fileURLWithPath: journal.path))
        let previous = try Data(contentsOf: URL(fileURLWithPath: journal.path + ".1"))
        #expect(current.count <= 600 && previous.count <= 600)
        #expect(current.last == UInt8(ascii: "\n") && previous.last == UInt8(ascii: "\n"))
    }

    @Test("a missing speech model marks the service failed with what to do, and the daemon goes on")
    func missingModel() async throws {
        let directory = try TemporaryDirectory()
        var configuration = DaemonConfiguration.defaults.voice
        configuration.modelDirectory = directory.file("no-model")
        let daemonState = state(directory)
        let service = VoiceService(configuration: configuration, journal: try VoiceJournal(stateDirectory: directory.path),
                                   state: daemonState, logger: Logger(label: "test")) { _ in "done" }
        await service.run(audio: AsyncStream<[Int16]> { $0.finish() })
        let status = await daemonState.status(pid: 1).services.first { $0.name == "voice" }
        #expect(status?.state == .failed)
        #expect(status?.detail.contains("pocketsphinx-en-us") == true)
    }
}
