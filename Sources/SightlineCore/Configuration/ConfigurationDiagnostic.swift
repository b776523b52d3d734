/// One problem found in a configuration file, in the `FILE:LINE: KEY: message` form that editors
/// and operators know from compilers.
public struct ConfigurationDiagnostic: Error, Equatable, Sendable, CustomStringConvertible {
    public let file: String
    /// 1-based line, when the problem has a place in the file.
    public let line: Int?
    /// Dotted key the problem is about, when there is one.
    public let key: String?
    public let message: String

    public init(file: String, line: Int?, key: String?, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        var place = file
        if let line { place += ":\(line)" }
        if let key { return "\(place): \(key): \(message)" }
        return "\(place): \(message)"
    }
}

/// All problems of one file: a configuration is either entirely valid or rejected as a whole.
public struct ConfigurationRejected: Error, Sendable, CustomStringConvertible {
    public let diagnostics: [ConfigurationDiagnostic]

    public init(_ diagnostics: [ConfigurationDiagnostic]) {
        self.diagnostics = diagnostics
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}
