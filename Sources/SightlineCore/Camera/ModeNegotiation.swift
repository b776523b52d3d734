/// Picks the capture mode from what a camera offers and what the configuration asks for:
/// the first preferred format the camera has, the size nearest the requested one, then the
/// frame rate nearest the requested one (at or above it when possible, so a slow choice never
/// starves the stream).
public enum ModeNegotiation {
    public struct Request: Sendable, Equatable {
        public let preference: [VideoFormat]
        public let size: FrameSize
        public let fps: Int

        public init(preference: [VideoFormat], size: FrameSize, fps: Int) {
            self.preference = preference
            self.size = size
            self.fps = fps
        }
    }

    public static func choose(from offers: [FormatOffer], for request: Request) -> CameraMode? {
        choose(formats: offers.map(\.fourCC), for: request,
               sizes: { fourCC in offers.first { $0.fourCC == fourCC }?.sizes ?? .discrete([]) },
               intervals: { fourCC, size in offers.first { $0.fourCC == fourCC }?.intervals[size] ?? [] })
    }

    /// The same choice, asking for sizes and rates only of the formats it tries. A camera's
    /// full list can take thousands of requests (vivid: 86 formats, each with its sizes and
    /// each size with its rates, all through libv4l2), and a re-plugged camera waits for them.
    /// - Parameters:
    ///   - formats: the camera's formats, in the order it lists them.
    ///   - sizes: the frame sizes of one format.
    ///   - intervals: the frame intervals of one format at one of its discrete sizes; not asked
    ///     for a stepwise size, whose rate is left to the driver.
    public static func choose<Failure: Error>(
        formats: [FourCC], for request: Request,
        sizes: (FourCC) throws(Failure) -> FrameSizes,
        intervals: (FourCC, FrameSize) throws(Failure) -> [FrameInterval]
    ) throws(Failure) -> CameraMode? {
        for format in request.preference {
            guard let fourCC = formats.first(where: { format.fourCCs.contains($0) }) else { continue }
            let offered = try sizes(fourCC)
            guard let size = nearestSize(in: offered, to: request.size) else { continue }
            var rates: [FrameInterval] = []
            if case .discrete = offered { rates = try intervals(fourCC, size) }
            return CameraMode(fourCC: fourCC, size: size, interval: nearestInterval(in: rates, toFPS: request.fps))
        }
        return nil
    }

    /// Exact match first; otherwise the size whose area is closest, preferring the larger on a tie.
    static func nearestSize(in sizes: FrameSizes, to wanted: FrameSize) -> FrameSize? {
        switch sizes {
        case .discrete(let list):
            return list.min { a, b in
                let da = abs(a.width * a.height - wanted.width * wanted.height)
                let db = abs(b.width * b.height - wanted.width * wanted.height)
                return da != db ? da < db : a.width * a.height > b.width * b.height
            }
        case .stepwise(let minW, let maxW, let stepW, let minH, let maxH, let stepH):
            func fit(_ value: Int, _ low: Int, _ high: Int, _ step: Int) -> Int {
                let clamped = min(max(value, low), high)
                let step = max(step, 1)
                return low + (clamped - low) / step * step
            }
            return FrameSize(width: fit(wanted.width, minW, maxW, stepW), height: fit(wanted.height, minH, maxH, stepH))
        }
    }

    static func nearestInterval(in intervals: [FrameInterval], toFPS fps: Int) -> FrameInterval? {
        let target = Double(fps)
        let atLeast = intervals.filter { $0.framesPerSecond >= target - 0.01 }
        let pool = atLeast.isEmpty ? intervals : atLeast
        return pool.min { abs($0.framesPerSecond - target) < abs($1.framesPerSecond - target) }
    }
}
