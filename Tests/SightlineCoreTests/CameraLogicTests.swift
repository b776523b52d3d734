import Testing
@testable import SightlineCore

@Suite("Camera mode negotiation")
struct ModeNegotiationTests {
    static let s720 = FrameSize(width: 1280, height: 720)
    static let s480 = FrameSize(width: 640, height: 480)
    static let i30 = FrameInterval(numerator: 1, denominator: 30)
    static let i15 = FrameInterval(numerator: 1, denominator: 15)
    static let i25 = FrameInterval(numerator: 1, denominator: 25)

    static let uvcCamera: [FormatOffer] = [
        FormatOffer(fourCC: .yuyv, name: "YUYV 4:2:2", compressed: false, sizes: .discrete([s480, s720]),
                    intervals: [s480: [i30, i15], s720: [i15]]),
        FormatOffer(fourCC: .mjpeg, name: "Motion-JPEG", compressed: true, sizes: .discrete([s480, s720]),
                    intervals: [s480: [i30], s720: [i30, i15]]),
    ]

    @Test("the first preferred format the camera has wins, at the requested size and rate")
    func preferenceOrder() {
        let request = ModeNegotiation.Request(preference: [.h264, .mjpeg, .yuyv, .nv12], size: Self.s720, fps: 30)
        #expect(ModeNegotiation.choose(from: Self.uvcCamera, for: request) == CameraMode(fourCC: .mjpeg, size: Self.s720, interval: Self.i30))
    }

    @Test("a configured order overrides the default")
    func configuredOrder() {
        let request = ModeNegotiation.Request(preference: [.yuyv], size: Self.s720, fps: 30)
        // YUYV at 720p only offers 15 fps: the nearest rate is taken rather than failing.
        #expect(ModeNegotiation.choose(from: Self.uvcCamera, for: request) == CameraMode(fourCC: .yuyv, size: Self.s720, interval: Self.i15))
    }

    @Test("no preferred format offered means no mode")
    func nothingUsable() {
        let request = ModeNegotiation.Request(preference: [.h264, .nv12], size: Self.s720, fps: 30)
        #expect(ModeNegotiation.choose(from: Self.uvcCamera, for: request) == nil)
    }

    @Test("asking per format chooses the same mode and asks only for the chosen format's sizes and rates")
    func lazyChoice() {
        for preference: [VideoFormat] in [[.h264, .mjpeg, .yuyv, .nv12], [.yuyv], [.h264, .nv12]] {
            let request = ModeNegotiation.Request(preference: preference, size: Self.s720, fps: 30)
            var asked: [String] = []
            let mode = ModeNegotiation.choose(
                formats: Self.uvcCamera.map(\.fourCC), for: request,
                sizes: { fourCC in
                    asked.append("sizes \(fourCC)")
                    return Self.uvcCamera.first { $0.fourCC == fourCC }?.sizes ?? .discrete([])
                },
                intervals: { fourCC, size in
                    asked.append("rates \(fourCC) \(size.width)x\(size.height)")
                    return Self.uvcCamera.first { $0.fourCC == fourCC }?.intervals[size] ?? []
                })
            #expect(mode == ModeNegotiation.choose(from: Self.uvcCamera, for: request))
            let expected: [String] = switch preference.first {
            case .h264 where preference.count > 2: ["sizes MJPG", "rates MJPG 1280x720"]
            case .yuyv: ["sizes YUYV", "rates YUYV 1280x720"]
            default: []
            }
            #expect(asked == expected, "\(preference)")
        }
    }

    @Test("the nearest size by area, and a rate at or above the request when there is one")
    func nearest() {
        let sizes = FrameSizes.discrete([FrameSize(width: 320, height: 240), Self.s480, FrameSize(width: 1920, height: 1080)])
        #expect(ModeNegotiation.nearestSize(in: sizes, to: Self.s720) == Self.s480)
        #expect(ModeNegotiation.nearestInterval(in: [Self.i15, Self.i25, Self.i30], toFPS: 20) == Self.i25)
        #expect(ModeNegotiation.nearestInterval(in: [Self.i15], toFPS: 30) == Self.i15)
        #expect(ModeNegotiation.nearestInterval(in: [], toFPS: 30) == nil)
    }

    @Test("stepwise sizes are clamped and aligned to the step")
    func stepwise() {
        let sizes = FrameSizes.stepwise(minWidth: 16, maxWidth: 1920, stepWidth: 16, minHeight: 16, maxHeight: 1080, stepHeight: 8)
        #expect(ModeNegotiation.nearestSize(in: sizes, to: FrameSize(width: 1283, height: 725)) == FrameSize(width: 1280, height: 720))
        #expect(ModeNegotiation.nearestSize(in: sizes, to: FrameSize(width: 4000, height: 4)) == FrameSize(width: 1920, height: 16))
    }

    @Test("fourcc codes read as their characters")
    func fourCC() {
        #expect(FourCC.yuyv.rawValue == 0x5659_5559)
        #expect(FourCC("MJPG").description == "MJPG")
        #expect(VideoFormat(fourCC: .jpeg) == .mjpeg)
        #expect(FourCC(rawValue: FourCC("Y16").rawValue | FourCC.bigEndianFlag).description == "Y16-BE")
    }
}

@Suite("Frame delivery")
struct FrameDeliveryTests {
    @Test("sequence gaps are counted; a restart is not a gap")
    func gaps() {
        var detector = SequenceGapDetector()
        #expect(detector.observe(10) == 0)
        #expect(detector.observe(11) == 0)
        #expect(detector.observe(15) == 3)
        #expect(detector.observe(0) == 0)
        #expect(detector.observe(UInt32.max) == 0)
        #expect(detector.missedTotal == 3)
    }

    @Test("the newest frame wins and replaced frames count as drops")
    func newestWins() async {
        let stream = NewestFrameStream<Int>()
        #expect(stream.offer(1))
        #expect(!stream.offer(2))
        #expect(!stream.offer(3))
        var iterator = stream.makeAsyncIterator()
        #expect(await iterator.next() == 3)
        #expect(stream.droppedCount == 2)
        stream.finish()
        #expect(await iterator.next() == nil)
    }

    @Test("a waiting consumer is woken by the next frame, and by finish")
    func waitingConsumer() async {
        let stream = NewestFrameStream<Int>()
        async let received: Int? = { var iterator = stream.makeAsyncIterator(); return await iterator.next() }()
        try? await Task.sleep(for: .milliseconds(50))
        stream.offer(7)
        #expect(await received == 7)
        async let none: Int? = { var iterator = stream.makeAsyncIterator(); return await iterator.next() }()
        try? await Task.sleep(for: .milliseconds(50))
        stream.finish()
        #expect(await none == nil)
        #expect(stream.droppedCount == 0)
    }
}
