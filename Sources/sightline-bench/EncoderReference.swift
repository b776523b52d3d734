import Foundation
import SightlineCore
import SightlineEncoding
import SightlineTesting

/// Our OpenH264 encoder against GStreamer's `x264enc tune=zerolatency speed-preset=ultrafast`
/// on the same frames: GStreamer renders a moving SMPTE pattern to a raw I420 file once; then
/// GStreamer encodes it from the file (minus a run that only reads the file), and we encode it
/// in-process. Both are CPU time per frame, scaled to percent of one core at the stream's rate.
enum EncoderReference {
    static let frames = 300
    static let runs = 3

    static func measure(width: Int, height: Int, fps: Int, bitrateKbps: Int) throws -> [(String, Double)] {
        guard FileManager.default.isExecutableFile(atPath: gstLaunch) else {
            throw TestFailure("\(gstLaunch) is missing: scripts/install-deps bench installs GStreamer")
        }
        let directory = try TemporaryDirectory(prefix: "sightline-bench-encode")
        let clip = directory.file("clip.i420")
        let caps = "video/x-raw,format=I420,width=\(width),height=\(height),framerate=\(fps)/1"
        _ = try gstreamerCPUSeconds([
            "videotestsrc", "pattern=smpte", "horizontal-speed=4", "num-buffers=\(frames)", "!", caps,
            "!", "filesink", "location=\(clip)",
        ])
        let source = ["filesrc", "location=\(clip)", "!", "rawvideoparse", "format=i420", "width=\(width)",
                      "height=\(height)", "framerate=\(fps)/1", "!"]
        let encoded = directory.file("x264.h264")
        var readOnly: [Double] = [], x264: [Double] = []
        for _ in 0..<runs {
            readOnly.append(try gstreamerCPUSeconds(source + ["fakesink"]))
            x264.append(try gstreamerCPUSeconds(source + [
                "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "bitrate=\(bitrateKbps)", "!", "filesink", "location=\(encoded)",
            ]))
        }
        let x264Bytes = (try? FileManager.default.attributesOfItem(atPath: encoded)[.size] as? Int) ?? 0
        let gstreamerSeconds = max(0, Statistics.percentile(x264, 50) - Statistics.percentile(readOnly, 50))

        var ours: [Double] = []
        var ourBytes = 0
        for _ in 0..<runs {
            let (cpu, bytes) = try encodeOurs(clip: clip, width: width, height: height, fps: fps, bitrateKbps: bitrateKbps)
            ours.append(cpu)
            ourBytes = bytes
        }
        let oursSeconds = Statistics.percentile(ours, 50)
        let toPercent = Double(fps) / Double(frames) * 100
        let clipSeconds = Double(frames) / Double(fps)
        return [
            ("encode_cpu_pct", oursSeconds * toPercent),
            ("encode_kbps", Double(ourBytes * 8) / clipSeconds / 1000),
            ("gstreamer_encode_cpu_pct", gstreamerSeconds * toPercent),
            ("gstreamer_kbps", Double(x264Bytes * 8) / clipSeconds / 1000),
            ("encode_cpu_ratio_vs_gstreamer", oursSeconds / gstreamerSeconds),
        ]
    }

    static let gstLaunch = "/usr/bin/gst-launch-1.0"

    /// Runs one pipeline to its end; returns the CPU seconds (user + system) it used.
    static func gstreamerCPUSeconds(_ pipeline: [String]) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gstLaunch)
        process.arguments = ["-q"] + pipeline
        let before = childrenCPUSeconds()
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestFailure("gst-launch-1.0 \(pipeline.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
        return childrenCPUSeconds() - before
    }

    /// CPU time of every child this process has waited for (nothing else runs meanwhile).
    static func childrenCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    static func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }

    /// Encodes every frame of the clip; returns this thread's CPU seconds spent in `encode` and
    /// the bytes produced.
    static func encodeOurs(clip: String, width: Int, height: Int, fps: Int, bitrateKbps: Int) throws -> (Double, Int) {
        let encoder = try OpenH264Encoder(settings: EncoderSettings(width: width, height: height, fps: Double(fps), bitrateKbps: bitrateKbps))
        let mode = CameraMode(fourCC: .i420, size: FrameSize(width: width, height: height),
                              interval: FrameInterval(numerator: 1, denominator: UInt32(fps)))
        let frameBytes = width * height * 3 / 2
        guard let file = FileHandle(forReadingAtPath: clip) else { throw TestFailure("cannot read \(clip)") }
        defer { try? file.close() }
        var cpu = 0.0, bytes = 0
        for index in 0..<frames {
            guard let data = try file.read(upToCount: frameBytes), data.count == frameBytes else { break }
            let frame = CapturedFrame(mode: mode, sequence: UInt32(index), timestamp: .milliseconds(index * 1000 / fps),
                                      bytes: Array(data), missedBefore: 0)
            let start = threadCPUSeconds()
            let output = try encoder.encode(frame, forceKeyframe: index == 0)
            cpu += threadCPUSeconds() - start
            bytes += output?.data.count ?? 0
        }
        return (cpu, bytes)
    }

    static func threadCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
