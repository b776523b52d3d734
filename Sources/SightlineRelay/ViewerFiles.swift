import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOPosix

/// The viewer's static files: `GET /v/SESSION` is its `index.html`, `GET /viewer/FILE` the
/// rest. Read from disk on every request (they are small, and `no-store` keeps browsers from
/// running a stale viewer against a newer relay).
struct ViewerFiles: Sendable {
    /// The page may load scripts, styles and images only from the relay and talk only to the
    /// relay (`'self'` covers ws:/wss: to the same host in CSP 3). No inline script: whoever
    /// manages to inject markup still cannot run code next to the media keys.
    static let contentSecurityPolicy = [
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
        "img-src 'self' blob: data:", "media-src 'self' blob:", "worker-src 'self'", "object-src 'none'",
        "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
    ].joined(separator: "; ")

    static let maximumFileSize = 16 << 20

    let directory: String

    /// Where SwiftPM put the `Viewer` resource: in `sightline_SightlineRelay.resources` next
    /// to the executable. Looked up by hand rather than through `Bundle.module`, whose
    /// accessor stops the process when the bundle is missing; a missing viewer must be a
    /// configuration error the operator can fix with `--viewer-dir`.
    static func bundledDirectory() -> String? {
        let bundleName = "sightline_SightlineRelay.resources"
        var roots = [Bundle.main.bundleURL]
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            roots.append(executable.deletingLastPathComponent())
        }
        for root in roots {
            let candidate = root.appendingPathComponent(bundleName).appendingPathComponent("Viewer").path
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), isDirectory.boolValue {
                return candidate
            }
        }
        return nil
    }

    static func contentType(for name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "html", "htm": "text/html; charset=utf-8"
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "json", "map": "application/json"
        case "webmanifest": "application/manifest+json"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "jpg", "jpeg": "image/jpeg"
        case "ico": "image/x-icon"
        case "wasm": "application/wasm"
        case "woff2": "font/woff2"
        case "txt": "text/plain; charset=utf-8"
        default: "application/octet-stream"
        }
    }

    /// Path components a request may use: no `..`, no hidden files, nothing a shell or a
    /// file system would read specially.
    static func isSafeComponent(_ component: Substring) -> Bool {
        guard let first = component.unicodeScalars.first, first != ".", component.utf8.count <= 128 else { return false }
        return component.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v/:session") { _, _ in
            try await response(for: ["index.html"])
        }
        router.get("/viewer/**") { request, _ in
            let path = request.uri.path.dropFirst("/viewer/".count)
            let components = path.split(separator: "/", omittingEmptySubsequences: false)
            guard !components.isEmpty, components.allSatisfy(Self.isSafeComponent) else { throw HTTPError(.notFound) }
            return try await response(for: components.map(String.init))
        }
    }

    private func response(for components: [String]) async throws -> Response {
        let path = ([directory] + components).joined(separator: "/")
        let data = try await NIOThreadPool.singleton.runIfActive { () -> Data? in
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { return nil }
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            guard size <= Self.maximumFileSize else { return nil }
            return try? Data(contentsOf: URL(fileURLWithPath: path))
        }
        guard let data else { throw HTTPError(.notFound) }
        var headers = HTTPFields()
        headers[.contentType] = Self.contentType(for: components.last ?? "")
        headers[.cacheControl] = "no-store"
        headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        // The session id is in the page's path; it must not leak to other sites. The viewer
        // needs the microphone for the expert's voice and nothing else.
        for (name, value) in [("Referrer-Policy", "no-referrer"), ("Permissions-Policy", "camera=(), geolocation=(), microphone=(self)")] {
            if let name = HTTPField.Name(name) { headers[name] = value }
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
