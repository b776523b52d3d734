import Foundation
import SightlineSystem

/// Prints the HTML case report to PDF with headless Chromium (`--print-to-pdf`), the one
/// renderer that lays out the report exactly as a browser shows it. A device usually has none;
/// the export then says in its manifest why `report.pdf` is missing.
public struct ReportRenderer: Sendable {
    public let executable: String
    /// Chromium is killed after this long; a report is one page of text and a few images.
    public var timeout: Duration = .seconds(60)

    public init(executable: String) {
        self.executable = executable
    }

    /// The first Chromium found on `PATH`, or nil.
    public static func find(path: String? = ProcessInfo.processInfo.environment["PATH"]) -> ReportRenderer? {
        for directory in (path ?? "/usr/bin:/bin").split(separator: ":") {
            for name in ["chromium", "chromium-browser", "google-chrome"] {
                let candidate = "\(directory)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return ReportRenderer(executable: candidate) }
            }
        }
        return nil
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Renders `html` (whose relative links resolve inside its directory) to `pdf`. Chromium
    /// gets a profile inside `scratch` so it never touches the service's home.
    func render(html: String, to pdf: String, scratch: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-pdf-header-footer",
            "--user-data-dir=\((scratch as NSString).appendingPathComponent("profile"))", "--print-to-pdf=\(pdf)",
            URL(fileURLWithPath: html).absoluteString,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = scratch
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw Failure(description: "\(executable) could not be started: \(error)")
        }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw Failure(description: "\(executable) did not finish the PDF within \(timeout)")
        }
        guard process.terminationStatus == 0, let head = FileHandle(forReadingAtPath: pdf).flatMap({ try? $0.read(upToCount: 5) }),
              head == Data("%PDF-".utf8)
        else {
            throw Failure(description: "\(executable) exited with \(process.terminationStatus) without writing a PDF")
        }
    }
}
