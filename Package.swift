// swift-tools-version:6.2
import PackageDescription

/// C libraries enter through thin system-library targets; everything above them is Swift.
let package = Package(
    name: "sightline",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sightlined", targets: ["sightlined"]),
        .executable(name: "sightctl", targets: ["sightctl"]),
        .executable(name: "sightline-relay", targets: ["sightline-relay"]),
        .executable(name: "sightline-archive", targets: ["sightline-archive"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", exact: "7.10.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation.git", exact: "0.9.20"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // MARK: C system libraries (Debian's -dev packages)
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CLibV4L2", pkgConfig: "libv4l2", providers: [.apt(["libv4l-dev"])]),
        .systemLibrary(name: "CALSA", pkgConfig: "alsa", providers: [.apt(["libasound2-dev"])]),
        .systemLibrary(name: "CPulse", pkgConfig: "libpulse", providers: [.apt(["libpulse-dev"])]),
        .systemLibrary(name: "COpus", pkgConfig: "opus", providers: [.apt(["libopus-dev"])]),
        /// espeak-ng for spoken confirmations on the device's speaker.
        .systemLibrary(name: "CESpeakNG", pkgConfig: "espeak-ng", providers: [.apt(["libespeak-ng-dev"])]),
        .systemLibrary(name: "CUdev", pkgConfig: "libudev", providers: [.apt(["libudev-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "COpenH264", pkgConfig: "openh264", providers: [.apt(["libopenh264-dev"])]),
        /// libyuv ships no pkg-config file; the module map links "yuv" and the headers are in /usr/include.
        .systemLibrary(name: "CYUV", providers: [.apt(["libyuv-dev"])]),
        /// PocketSphinx 5prealpha; its pkg-config file pulls in sphinxbase.
        .systemLibrary(name: "CPocketSphinx", pkgConfig: "pocketsphinx", providers: [.apt(["libpocketsphinx-dev", "libsphinxbase-dev"])]),
        /// speexdsp's preprocessor: the noise suppressor in front of the voice recognizer.
        .systemLibrary(name: "CSpeexDSP", pkgConfig: "speexdsp", providers: [.apt(["libspeexdsp-dev"])]),
        /// Turns V4L2's function-like macros into constants and wraps libv4l2's variadic calls.
        .target(name: "CV4L2", dependencies: ["CLibV4L2"]),
        /// Wraps ALSA's variadic error handler and libopus's variadic ctl calls.
        .target(name: "CAudioShim", dependencies: ["CALSA", "COpus"]),

        // MARK: Pure Swift core: no C imports, no hardware
        .target(
            name: "SightlineCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        // MARK: Adapters over the operating system and C libraries
        .target(
            name: "SightlineSystem",
            dependencies: [
                "SightlineCore", "CSystemd", "CV4L2", "CALSA", "CPulse", "CUdev",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        /// V4L2 camera capture through libv4l2.
        .target(name: "SightlineCamera", dependencies: ["SightlineCore", "CV4L2", "CTurboJPEG"]),

        /// Video encoders behind one protocol: OpenH264, JPEG, passthrough of camera H.264, and a
        /// V4L2 memory-to-memory hardware encoder. Depends on SightlineCamera to reuse its turbojpeg
        /// `JPEGEncoder` and its V4L2 request helper.
        .target(name: "SightlineEncoding", dependencies: ["SightlineCore", "SightlineCamera", "COpenH264", "CTurboJPEG", "CYUV", "CV4L2"]),

        /// Voice commands: a PocketSphinx grammar decoder checked by an all-phone decoder, on its own thread.
        .target(name: "SightlineVoice", dependencies: ["SightlineCore", "CPocketSphinx", "CSpeexDSP"]),
        /// Audio capture and playback through PulseAudio or ALSA, the Opus codec, and spoken feedback (espeak-ng).
        .target(name: "SightlineAudio", dependencies: ["SightlineCore", "CALSA", "CPulse", "COpus", "CAudioShim", "CESpeakNG"]),

        /// Device discovery and hotplug through libudev.
        .target(name: "SightlineDiscovery", dependencies: ["SightlineCore", "SightlineCamera", "CUdev"]),

        /// The evidence archive: case metadata in SQLite (GRDB), encrypted content-addressed blobs,
        /// the per-case journal on disk, verification and the signed export.
        .target(
            name: "SightlineArchive",
            dependencies: [
                "SightlineCore", "SightlineSystem",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ]
        ),

        // MARK: The daemon's services
        .target(
            name: "SightlineDaemon",
            dependencies: [
                "SightlineCore", "SightlineSystem", "SightlineCamera", "SightlineDiscovery", "SightlineEncoding", "SightlineAudio", "SightlineVoice", "SightlineArchive", "SightlineSync",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "SightlineControlClient",
            dependencies: [
                "SightlineCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        /// Device tokens and TLS files, shared by the servers devices dial out to (relay, archive).
        .target(
            name: "SightlineServerAccess",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        /// The organisation's archive server: stores what devices sync (journals, encrypted blobs),
        /// verifying chains and signatures on receipt. Storage behind `ArchiveStorage`: SQLite and
        /// files, or PostgreSQL (postgres-nio) for an archive several servers share.
        .target(
            name: "SightlineArchiveServer",
            dependencies: [
                "SightlineCore", "SightlineSystem", "SightlineServerAccess", "SightlineArchive",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// The device's side of sync: uploads the archive's journals and encrypted blobs to the
        /// organisation's archive server, resuming where it stopped.
        .target(
            name: "SightlineSync",
            dependencies: [
                "SightlineCore", "SightlineArchive",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        /// The relay: WebSocket routing, per-receiver queues, device tokens, the viewer's files.
        .target(
            name: "SightlineRelay",
            dependencies: [
                "SightlineCore", "SightlineSystem", "SightlineServerAccess",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Viewer")]
        ),

        // MARK: Executables: argument parsing and wiring only
        .executableTarget(
            name: "sightlined",
            dependencies: [
                "SightlineDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "sightctl",
            dependencies: [
                "SightlineCore", "SightlineControlClient", "SightlineVoice",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "sightline-relay",
            dependencies: [
                "SightlineRelay", "SightlineServerAccess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .executableTarget(
            name: "sightline-archive",
            dependencies: [
                "SightlineArchiveServer", "SightlineServerAccess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        /// Benchmark driver behind `bench/run SUITE`.
        .executableTarget(
            name: "sightline-bench",
            dependencies: [
                "SightlineCore", "SightlineControlClient", "SightlineEncoding", "SightlineAudio", "SightlineTesting", "SightlineVoice",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),

        /// Test helper: files evidence into an archive as fast as it can and prints each acknowledged
        /// item, so a test can SIGKILL it at random moments and check what survived.
        .executableTarget(name: "sightline-archive-writer", dependencies: ["SightlineArchive", "SightlineCore", "SightlineSync", "SightlineSystem"]),

        // MARK: Tests
        .target(
            name: "SightlineTesting",
            dependencies: [
                "SightlineCore", "SightlineSystem", "SightlineCamera", "COpenH264",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            ]
        ),
        .testTarget(name: "SightlineCoreTests", dependencies: ["SightlineCore", "SightlineTesting"]),
        .testTarget(name: "SightlineCameraTests", dependencies: ["SightlineCamera", "SightlineTesting"]),
        /// A real PulseAudio server started per test, ALSA through a private configuration, real libopus.
        .testTarget(name: "SightlineAudioTests", dependencies: ["SightlineAudio", "SightlineTesting"]),
        /// Encodes through the real libraries and decodes the output again (OpenH264, turbojpeg).
        .testTarget(name: "SightlineEncodingTests", dependencies: ["SightlineEncoding", "SightlineTesting", "CTurboJPEG"]),
        /// Device tests that run inside the kernel lab (the host suite starts it).
        .testTarget(name: "SightlineLabTests", dependencies: ["SightlineCamera", "SightlineAudio", "SightlineDaemon", "SightlineControlClient", "SightlineDiscovery", "SightlineEncoding", "SightlineTesting"]),
        /// The real PocketSphinx decoders on speech that flite synthesises at test time.
        .testTarget(name: "SightlineVoiceTests", dependencies: ["SightlineVoice", "SightlineTesting"]),
        .testTarget(name: "SightlineSystemTests", dependencies: ["SightlineSystem", "SightlineTesting"]),
        /// The archive on real SQLite and files: corruption detection, SIGKILL survival, export checked
        /// by an independent Python checker.
        .testTarget(
            name: "SightlineArchiveTests",
            dependencies: [
                "SightlineArchive", "SightlineTesting",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ]
        ),
        .testTarget(
            name: "SightlineDaemonTests",
            dependencies: [
                "SightlineDaemon", "SightlineAudio", "SightlineControlClient", "SightlineEncoding", "SightlineSystem", "SightlineTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        /// Sync against the real archive server over loopback: in-process, and as a process killed
        /// mid-upload; each against the embedded store and a real PostgreSQL server.
        .testTarget(
            name: "SightlineSyncTests",
            dependencies: [
                "SightlineSync", "SightlineArchive", "SightlineArchiveServer", "SightlineServerAccess", "SightlineTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        /// The relay in-process on loopback, driven by real WebSocket clients (plain and TLS).
        .testTarget(
            name: "SightlineRelayTests",
            dependencies: [
                "SightlineRelay", "SightlineTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        /// The browser viewer in headless Chromium (chromium-driver) against the Swift core: SFrame,
        /// key exchange, WebCodecs, and the page itself against a scripted relay and device.
        .testTarget(
            name: "SightlineViewerTests",
            dependencies: [
                "SightlineCore", "SightlineCamera", "SightlineTesting",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            resources: [.copy("Pages"), .copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
