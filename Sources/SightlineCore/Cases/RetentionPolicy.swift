import Foundation

/// How long one kind of record must (and may) be kept (docs/RETENTION.md).
public struct RetentionClass: Sendable, Equatable, Codable {
    public enum Period: Sendable, Equatable, Codable {
        case years(Int)
        case days(Int)
    }

    public var name: String
    public var period: Period
    /// German commercial and tax law count from the end of the calendar year in which the
    /// record was made (§ 257 (5) HGB, § 147 (4) AO), not from the day itself.
    public var fromEndOfYear: Bool
    /// The legal basis, for the tombstone and the documentation.
    public var basis: String
    /// Whether the law obliges the keeping (commercial and tax records) rather than merely
    /// allowing it. Only an obligation overrides a person's erasure request (Art. 17 (3) (b)
    /// GDPR); items of a class without one are erased on request at once.
    public var keepingDuty: Bool

    public init(name: String, period: Period, fromEndOfYear: Bool, basis: String, keepingDuty: Bool = true) {
        self.name = name
        self.period = period
        self.fromEndOfYear = fromEndOfYear
        self.basis = basis
        self.keepingDuty = keepingDuty
    }

    /// The first moment at which a record filed at `filedAt` may be purged. Calendar years are
    /// taken in UTC: the year ends at 01:00 German time, so the period errs on the long side.
    public func expiry(filedAt: EpochMilliseconds) -> EpochMilliseconds {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? .gmt
        func milliseconds(_ date: Date) -> EpochMilliseconds { EpochMilliseconds((date.timeIntervalSince1970 * 1000).rounded()) }
        let filed = Date(timeIntervalSince1970: Double(filedAt) / 1000)
        var start = filedAt
        if fromEndOfYear, let nextYear = calendar.date(from: DateComponents(year: calendar.component(.year, from: filed) + 1, month: 1, day: 1)) {
            start = milliseconds(nextYear)
        }
        switch period {
        case .days(let days):
            return start + EpochMilliseconds(days) * 86_400_000
        case .years(let years):
            let from = Date(timeIntervalSince1970: Double(start) / 1000)
            return milliseconds(calendar.date(byAdding: .year, value: years, to: from) ?? from)
        }
    }

    public var summary: String {
        let length = switch period {
        case .years(let years): "\(years) years"
        case .days(let days): "\(days) days"
        }
        return "\(name): \(length)\(fromEndOfYear ? " from the end of the calendar year" : " from filing") (\(basis))"
    }
}

/// The retention classes in force and which class each kind of evidence gets by default.
public struct RetentionPolicy: Sendable, Equatable {
    public var classes: [RetentionClass]
    public var defaultClass: [EvidenceKind: String]

    public init(classes: [RetentionClass], defaultClass: [EvidenceKind: String]) {
        self.classes = classes
        self.defaultClass = defaultClass
    }

    public func retentionClass(named name: String) -> RetentionClass? { classes.first { $0.name == name } }

    /// The issue's defaults: service documentation as commercial letters (6 years), invoices
    /// and booking vouchers 8 years, books 10 years, personal audio 30 days.
    public static let defaults = RetentionPolicy(
        classes: [
            RetentionClass(name: "commercial-letter", period: .years(6), fromEndOfYear: true,
                           basis: "§ 257 (1) no. 2-3, (4), (5) HGB; § 147 (1) no. 2-3, (3), (4) AO"),
            RetentionClass(name: "booking-voucher", period: .years(8), fromEndOfYear: true,
                           basis: "§ 147 (1) no. 4, (3), (4) AO as amended in 2024; § 257 (1) no. 4, (4) HGB"),
            RetentionClass(name: "books", period: .years(10), fromEndOfYear: true,
                           basis: "§ 257 (1) no. 1, (4), (5) HGB; § 147 (1) no. 1, (3), (4) AO"),
            RetentionClass(name: "personal-audio", period: .days(30), fromEndOfYear: false,
                           basis: "Art. 5 (1) (c), (e) GDPR: storage limitation; no duty to keep", keepingDuty: false),
        ],
        defaultClass: [
            .photo: "commercial-letter", .videoRecording: "commercial-letter", .expertSnapshot: "commercial-letter",
            .callRecord: "commercial-letter", .textNote: "commercial-letter", .audioNote: "personal-audio", .voiceCommand: "personal-audio",
        ])
}
