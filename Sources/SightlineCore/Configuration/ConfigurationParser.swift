import Foundation
import Yams

/// A validated configuration value, typed by its key's `ConfigValueKind`.
public enum ConfigValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case list([String])
}

/// Reads a YAML configuration file into validated values, keeping each key's line so every
/// message can point at it. Validation is all-or-nothing: one bad key rejects the file.
public struct ConfigurationParser: Sendable {
    public let schema: [ConfigKey]
    /// Former keys, each with the message that says what replaced it.
    public let retired: [String: String]

    public init(schema: [ConfigKey], retired: [String: String] = [:]) {
        self.schema = schema
        self.retired = retired
    }

    /// Validates `text` and returns the values it sets (keys left out keep their defaults).
    /// - Throws: `ConfigurationRejected` naming every bad key with its line.
    public func parse(_ text: String, file: String) throws(ConfigurationRejected) -> [String: ConfigValue] {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigurationRejected([Self.diagnostic(forYAMLError: error, file: file)])
        }
        guard let root else { return [:] }  // An empty file means all defaults.
        guard case .mapping(let mapping) = root else {
            throw ConfigurationRejected([
                ConfigurationDiagnostic(file: file, line: root.mark?.line, key: nil,
                                        message: "the file must be a mapping of keys to values, like `log_level: info`")
            ])
        }

        var values: [String: ConfigValue] = [:]
        var problems: [ConfigurationDiagnostic] = []
        let sections = Set(schema.compactMap { $0.path.split(separator: ".").count > 1 ? String($0.path.split(separator: ".")[0]) : nil })

        func visit(_ mapping: Node.Mapping, prefix: String) {
            var seen: Set<String> = []
            for (keyNode, valueNode) in mapping {
                let line = keyNode.mark?.line
                guard let name = keyNode.string else {
                    problems.append(ConfigurationDiagnostic(file: file, line: line, key: nil, message: "keys must be plain names"))
                    continue
                }
                let path = prefix.isEmpty ? name : "\(prefix).\(name)"
                guard seen.insert(name).inserted else {
                    problems.append(ConfigurationDiagnostic(file: file, line: line, key: path, message: "is set twice; keep one"))
                    continue
                }
                if prefix.isEmpty, sections.contains(name) {
                    guard case .mapping(let child) = valueNode else {
                        problems.append(ConfigurationDiagnostic(
                            file: file, line: line, key: path,
                            message: "is a section; write its keys indented below it (\(keysIn(section: name)))"))
                        continue
                    }
                    visit(child, prefix: name)
                    continue
                }
                if let replacement = retired[path] {
                    problems.append(ConfigurationDiagnostic(file: file, line: line, key: path, message: replacement))
                    continue
                }
                guard let key = schema.first(where: { $0.path == path }) else {
                    problems.append(ConfigurationDiagnostic(
                        file: file, line: line, key: path, message: unknownKeyMessage(path: path, prefix: prefix)))
                    continue
                }
                switch Self.validate(valueNode, as: key.kind) {
                case .success(let value): values[path] = value
                case .failure(let reason):
                    problems.append(ConfigurationDiagnostic(
                        file: file, line: reason.line ?? valueNode.mark?.line ?? line, key: path,
                        message: "\(reason); allowed: \(key.kind.allowed)"))
                }
            }
        }

        visit(mapping, prefix: "")
        if !problems.isEmpty { throw ConfigurationRejected(problems) }
        return values
    }

    private func keysIn(section: String) -> String {
        schema.filter { $0.path.hasPrefix(section + ".") }.map(\.path).joined(separator: ", ")
    }

    private func unknownKeyMessage(path: String, prefix: String) -> String {
        let candidates = prefix.isEmpty ? schema.map(\.path) : schema.map(\.path).filter { $0.hasPrefix(prefix + ".") }
        // A near miss (a typo) or an abbreviation of a real key.
        let suggestion = candidates.first { $0.hasPrefix(path) }
            ?? candidates.min { Self.editDistance($0, path) < Self.editDistance($1, path) }
        var message = "is not a known key"
        if let suggestion, Self.editDistance(suggestion, path) <= 3 || suggestion.hasPrefix(path) {
            message += "; did you mean \(suggestion)?"
        }
        let scope = prefix.isEmpty ? "top-level keys and sections" : "keys in section \(prefix)"
        let allowed = prefix.isEmpty
            ? Set(schema.map { String($0.path.split(separator: ".")[0]) }).sorted().joined(separator: ", ")
            : keysIn(section: prefix)
        return message + " (\(scope): \(allowed))"
    }

    static func validate(_ node: Node, as kind: ConfigValueKind) -> Result<ConfigValue, ValidationFailure> {
        if case .stringList = kind {
            guard case .sequence(let sequence) = node else {
                return .failure(ValidationFailure("expected a list like [a, b]"))
            }
            var items: [String] = []
            for item in sequence {
                guard case .scalar(let scalar) = item, !scalar.string.isEmpty else {
                    return .failure(ValidationFailure("\(Self.show(item)) is not a non-empty string"))
                }
                items.append(scalar.string)
            }
            return .success(.list(items))
        }
        if case .voicePhrases = kind {
            guard case .sequence(let sequence) = node else {
                return .failure(ValidationFailure("expected a list like [\"take a picture=take_photo\"]"))
            }
            var entries: [String] = []
            for item in sequence {
                guard case .scalar(let scalar) = item else {
                    return .failure(ValidationFailure("\(Self.show(item)) is not a PHRASE=ACTION string"))
                }
                entries.append(scalar.string)
            }
            do {
                _ = try VoiceVocabulary(entries: entries)
            } catch {
                return .failure(ValidationFailure(error.description))
            }
            return .success(.list(entries))
        }
        if case .hooks = kind {
            guard case .sequence(let sequence) = node else {
                return .failure(ValidationFailure("expected a list like [\"take_photo=/usr/local/bin/upload-photo\"]"))
            }
            var entries: [String] = []
            for item in sequence {
                guard case .scalar(let scalar) = item else {
                    return .failure(ValidationFailure("\(Self.show(item)) is not an ACTION=TARGET string"))
                }
                do {
                    _ = try HookSpec(entry: scalar.string)
                } catch {
                    // With many hooks, the entry's own line is what the operator needs.
                    return .failure(ValidationFailure(error.description, line: item.mark?.line))
                }
                entries.append(scalar.string)
            }
            return .success(.list(entries))
        }
        if case .choiceList(let choices) = kind {
            guard case .sequence(let sequence) = node else {
                return .failure(ValidationFailure("expected a list like [a, b]"))
            }
            var items: [String] = []
            for item in sequence {
                guard case .scalar(let scalar) = item, choices.contains(scalar.string) else {
                    return .failure(ValidationFailure("\(Self.show(item)) is not allowed in this list"))
                }
                guard !items.contains(scalar.string) else {
                    return .failure(ValidationFailure("\(scalar.string) is listed twice"))
                }
                items.append(scalar.string)
            }
            guard !items.isEmpty else { return .failure(ValidationFailure("the list is empty")) }
            return .success(.list(items))
        }
        guard case .scalar(let scalar) = node else {
            return .failure(ValidationFailure("expected a single value, found a \(node.isMapping ? "mapping" : "list")"))
        }
        let text = scalar.string
        let isPlain = scalar.style == .plain
        switch kind {
        case .string:
            guard !text.isEmpty else { return .failure(ValidationFailure("must not be empty")) }
            return .success(.string(text))
        case .absolutePath:
            guard text.hasPrefix("/"), !text.contains("\0"), text.count < 4096 else {
                return .failure(ValidationFailure("\(Self.show(node)) is not an absolute path"))
            }
            return .success(.string(text))
        case .integer(let range):
            guard isPlain, let number = Int(text) else {
                return .failure(ValidationFailure("\(Self.show(node)) is not a whole number"))
            }
            guard range.contains(number) else {
                return .failure(ValidationFailure("\(number) is out of range"))
            }
            return .success(.integer(number))
        case .boolean:
            guard isPlain, text == "true" || text == "false" else {
                return .failure(ValidationFailure("\(Self.show(node)) is not a boolean"))
            }
            return .success(.boolean(text == "true"))
        case .choice(let choices):
            guard choices.contains(text) else {
                return .failure(ValidationFailure("\(Self.show(node)) is not a valid choice"))
            }
            return .success(.string(text))
        case .loopbackListenAddress:
            guard let address = ListenAddress(text) else {
                return .failure(ValidationFailure("\(Self.show(node)) is not HOST:PORT"))
            }
            guard address.isLoopback else {
                return .failure(ValidationFailure("\(address.host) is not a loopback address"))
            }
            return .success(.string(text))
        case .groupName:
            guard GroupName.isValid(text) else {
                return .failure(ValidationFailure("\(Self.show(node)) is not a valid group name"))
            }
            return .success(.string(text))
        case .cameraDevice:
            guard text == "auto" || text == "test-pattern" || (text.hasPrefix("/dev/") && !text.contains("..")) else {
                return .failure(ValidationFailure("\(Self.show(node)) is not a camera"))
            }
            return .success(.string(text))
        case .relayURL:
            return validateServerURL(node, text, secure: "wss", plain: "ws")
        case .optionalAccount:
            guard text.isEmpty || GroupName.isValid(text) else {
                return .failure(ValidationFailure("\(Self.show(node)) is not a valid user name"))
            }
            return .success(.string(text))
        case .optionalArchiveURL:
            return text.isEmpty ? .success(.string(text)) : validateServerURL(node, text, secure: "https", plain: "http")
        case .wakePhrase:
            let words = text.lowercased().split(whereSeparator: \.isWhitespace)
            guard let bad = words.first(where: { !VoicePhrase.isGrammarWord(String($0)) }) else { return .success(.string(text)) }
            return .failure(ValidationFailure("\"\(bad)\" is not a word of letters"))
        case .optionalAbsolutePath:
            guard text.isEmpty || (text.hasPrefix("/") && !text.contains("\0") && text.count < 4096) else {
                return .failure(ValidationFailure("\(Self.show(node)) is not an absolute path"))
            }
            return .success(.string(text))
        case .choiceList, .stringList, .voicePhrases, .hooks:
            preconditionFailure("handled above")
        }
    }

    /// A server the device sends its token to: `secure://HOST[:PORT]`, or `plain://` only with a loopback host.
    private static func validateServerURL(_ node: Node, _ text: String, secure: String, plain: String) -> Result<ConfigValue, ValidationFailure> {
        guard let url = URLComponents(string: text), let host = url.host, !host.isEmpty,
              url.scheme == secure || url.scheme == plain, url.query == nil, url.fragment == nil
        else {
            return .failure(ValidationFailure("\(Self.show(node)) is not a \(plain):// or \(secure):// URL"))
        }
        if url.scheme == plain, !ListenAddress.isLoopbackHost(host) {
            return .failure(ValidationFailure("\(plain):// sends the device token in the clear; use \(secure):// for \(host)"))
        }
        return .success(.string(text))
    }

    /// A key's documented default, parsed and validated like a value from the file.
    public static func defaultValue(of key: ConfigKey) -> Result<ConfigValue, ValidationFailure> {
        do {
            guard let node = try Yams.compose(yaml: key.defaultValue) else {
                return .failure(ValidationFailure("empty default"))
            }
            return validate(node, as: key.kind)
        } catch {
            return .failure(ValidationFailure("default is not YAML: \(error)"))
        }
    }

    private static func show(_ node: Node) -> String {
        if case .scalar(let scalar) = node { return "\"\(scalar.string)\"" }
        return node.isMapping ? "a mapping" : "a list"
    }

    private static func diagnostic(forYAMLError error: any Error, file: String) -> ConfigurationDiagnostic {
        if let yaml = error as? YamlError {
            switch yaml {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
                 .composer(_, let problem, let mark, _):
                return ConfigurationDiagnostic(file: file, line: mark.line, key: nil, message: "not valid YAML: \(problem)")
            case .duplicatedKeysInMapping(let duplicates, let context):
                return ConfigurationDiagnostic(
                    file: file, line: context.mark.line, key: duplicates.first,
                    message: "is set twice; keep one")
            default:
                break
            }
        }
        return ConfigurationDiagnostic(file: file, line: nil, key: nil, message: "not valid YAML: \(error)")
    }

    /// Levenshtein distance, for "did you mean" suggestions on misspelt keys.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}

public struct ValidationFailure: Error, Sendable {
    public let reason: String
    /// The line of the offending list item, when it is not the key's value line.
    public let line: Int?
    init(_ reason: String, line: Int? = nil) {
        self.reason = reason
        self.line = line
    }
}

extension ValidationFailure: CustomStringConvertible {
    public var description: String { reason }
}

extension Node {
    var isMapping: Bool {
        if case .mapping = self { return true }
        return false
    }
}
