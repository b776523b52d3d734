/// A V4L2 control (zoom, focus, exposure, brightness, power-line frequency …) as the operator
/// sees it. `key` is the control's name in snake_case, e.g. "zoom_absolute".
public struct CameraControl: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case integer, boolean, menu, button, integer64, other
    }

    public let id: UInt32
    public let key: String
    public let name: String
    public let kind: Kind
    public let minimum: Int64
    public let maximum: Int64
    public let step: UInt64
    public let defaultValue: Int64
    public let value: Int64?
    /// Menu entries by index, for menu controls.
    public let menu: [String]?
    public let inactive: Bool
    public let readOnly: Bool

    public init(id: UInt32, key: String, name: String, kind: Kind, minimum: Int64, maximum: Int64, step: UInt64,
                defaultValue: Int64, value: Int64?, menu: [String]?, inactive: Bool, readOnly: Bool) {
        self.id = id
        self.key = key
        self.name = name
        self.kind = kind
        self.minimum = minimum
        self.maximum = maximum
        self.step = step
        self.defaultValue = defaultValue
        self.value = value
        self.menu = menu
        self.inactive = inactive
        self.readOnly = readOnly
    }

    /// "Zoom, Absolute" → "zoom_absolute".
    public static func key(forName name: String) -> String {
        var key = ""
        var pendingSeparator = false
        for scalar in name.lowercased().unicodeScalars {
            if ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) {
                if pendingSeparator, !key.isEmpty { key.append("_") }
                key.unicodeScalars.append(scalar)
                pendingSeparator = false
            } else {
                pendingSeparator = true
            }
        }
        return key
    }

    /// Checks `value` against the control's range and step before it goes to the driver.
    public func validate(_ value: Int64) -> String? {
        if readOnly { return "is read-only" }
        guard (minimum...maximum).contains(value) else { return "\(value) is outside \(minimum)…\(maximum)" }
        if step > 1, (value - minimum) % Int64(clamping: step) != 0 {
            return "\(value) is not on the control's step of \(step) from \(minimum)"
        }
        return nil
    }
}
