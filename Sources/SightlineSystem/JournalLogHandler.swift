import Foundation
import Logging
import Synchronization

/// Logs one line per event to stderr. Under systemd (stderr connected to the journal, as
/// `JOURNAL_STREAM` tells) each line starts with the `<N>` priority prefix of `sd-daemon(3)`
/// and carries no timestamp, so journald files it with the right severity; in a terminal it
/// starts with an ISO 8601 time instead. swift-log ships no handler that does this.
public struct JournalLogHandler: LogHandler {
    private let level: LogLevelSetting
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let toJournal: Bool

    public var logLevel: Logger.Level {
        get { level.current }
        set { level.set(newValue) }
    }

    public init(label: String, level: LogLevelSetting) {
        self.label = label
        self.level = level
        self.toJournal = Self.stderrIsJournal()
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.quoted("\($0.value)"))" }
        let text = ([event.message.description] + fields).joined(separator: " ")
            .replacingOccurrences(of: "\n", with: "\\n")
        let line: String
        if toJournal {
            line = "<\(Self.syslogPriority(event.level))>\(label): \(text)\n"
        } else {
            let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
            line = "\(time) \(event.level) \(label): \(text)\n"
        }
        FileHandle.standardError.write(Data(line.utf8))
    }

    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    private static func quoted(_ value: String) -> String {
        value.contains(" ") || value.isEmpty ? "\"\(value.replacingOccurrences(of: "\"", with: "\\\""))\"" : value
    }

    /// `JOURNAL_STREAM` holds "DEVICE:INODE" of the journal stream; it only counts when stderr
    /// is still that stream (a child may inherit the variable with stderr redirected).
    private static func stderrIsJournal() -> Bool {
        guard let stream = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] else { return false }
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return false }
        return stream == "\(info.st_dev):\(info.st_ino)"
    }
}

/// The daemon's log level, shared by every logger so SIGHUP can change it at run time.
public final class LogLevelSetting: Sendable {
    private let level: Mutex<Logger.Level>

    public init(_ level: Logger.Level) {
        self.level = Mutex(level)
    }

    public var current: Logger.Level { level.withLock { $0 } }
    public func set(_ newLevel: Logger.Level) { level.withLock { $0 = newLevel } }
}
