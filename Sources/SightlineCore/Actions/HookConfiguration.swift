import Foundation

/// One integrator hook from `hooks.run`: `ACTION=/path/to/executable` runs a program,
/// `ACTION=https://…` posts to a webhook. Both receive the same JSON (`HookPayload`).
public struct HookSpec: Sendable, Equatable, Hashable {
    public enum Target: Sendable, Equatable, Hashable {
        case command(path: String)
        case webhook(url: String)
    }

    public let action: VoiceAction
    public let target: Target

    public init(action: VoiceAction, target: Target) {
        self.action = action
        self.target = target
    }

    /// Reads `ACTION=TARGET`; the action name ends at the first `=`, so URLs may carry queries.
    public init(entry: String) throws(HookSpecError) {
        guard let equals = entry.firstIndex(of: "=") else { throw .notAnEntry(entry) }
        let name = entry[..<equals].trimmingCharacters(in: .whitespaces)
        let target = entry[entry.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        guard let action = VoiceAction(rawValue: name) else { throw .unknownAction(name) }
        if target.hasPrefix("/") {
            guard !target.contains("\0"), target.count < 4096 else { throw .badTarget(target) }
            self.init(action: action, target: .command(path: target))
        } else if let url = URLComponents(string: target), url.scheme == "https" || url.scheme == "http",
                  let host = url.host, !host.isEmpty {
            self.init(action: action, target: .webhook(url: target))
        } else {
            throw .badTarget(target)
        }
    }

    /// Every entry of `hooks.run`, in order.
    public static func parse(_ entries: [String]) throws(HookSpecError) -> [HookSpec] {
        var hooks: [HookSpec] = []
        for entry in entries { hooks.append(try HookSpec(entry: entry)) }
        return hooks
    }

    /// What logs and journals call the hook: the program's path or the webhook's URL.
    public var label: String {
        switch target {
        case .command(let path): path
        case .webhook(let url): url
        }
    }
}

public enum HookSpecError: Error, Equatable, Sendable, CustomStringConvertible {
    case notAnEntry(String)
    case unknownAction(String)
    case badTarget(String)

    public var description: String {
        switch self {
        case .notAnEntry(let entry): "\"\(entry)\" is not ACTION=TARGET, like \"take_photo=/usr/local/bin/upload-photo\""
        case .unknownAction(let name): "\"\(name)\" is not an action; actions: \(VoiceAction.names)"
        case .badTarget(let target): "\"\(target)\" is neither an absolute path to an executable nor an http:// or https:// URL"
        }
    }
}

/// The JSON a hook receives on stdin (programs) or as the POST body (webhooks). Field names are
/// a contract with integrators: add fields, never rename them.
public struct HookPayload: Sendable, Codable, Equatable {
    /// The action's configuration name, e.g. `take_photo`.
    public var action: String
    public var source: String
    public var outcome: String
    public var result: String
    /// The case the evidence went into, when the action made any.
    public var caseId: String?
    public var itemId: String?
    /// Absolute paths of files the action wrote.
    public var artefacts: [String]
    /// The recognised phrase, for spoken commands.
    public var phrase: String?
    public var device: Device
    /// UTC, ISO 8601 with milliseconds.
    public var time: String

    public struct Device: Sendable, Codable, Equatable {
        /// The device identity's fingerprint, as registered with the organisation.
        public var fingerprint: String
        public var hostname: String

        public init(fingerprint: String, hostname: String) {
            self.fingerprint = fingerprint
            self.hostname = hostname
        }
    }

    public init(report: ActionReport, phrase: String?, device: Device, time: Date) {
        action = report.action.rawValue
        source = report.source.rawValue
        outcome = report.outcome.rawValue
        result = report.result
        caseId = report.caseId
        itemId = report.itemId
        artefacts = report.artefacts
        self.phrase = phrase
        self.device = device
        self.time = time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// The payload as JSON (snake_case keys, sorted), the same bytes for programs and webhooks.
    public var json: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        // Strings, numbers and arrays of strings always encode.
        return (try? encoder.encode(self)) ?? Data("{}".utf8)
    }

    /// The documented environment of a hook program, in addition to PATH, LANG and HOME.
    public var environment: [String: String] {
        var variables = [
            "SIGHTLINE_ACTION": action,
            "SIGHTLINE_SOURCE": source,
            "SIGHTLINE_OUTCOME": outcome,
            "SIGHTLINE_DEVICE": device.fingerprint,
            "SIGHTLINE_TIME": time,
        ]
        if let caseId { variables["SIGHTLINE_CASE"] = caseId }
        if let itemId { variables["SIGHTLINE_ITEM"] = itemId }
        if let first = artefacts.first { variables["SIGHTLINE_ARTEFACT"] = first }
        return variables
    }
}
