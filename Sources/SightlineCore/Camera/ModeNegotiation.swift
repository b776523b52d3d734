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
        for format in request.preference {
            guard let offer = offers.first(where: { format.fourCCs.contains($0.fourCC) }) else { continue }
            guard let size = nearestSize(in: offer.sizes, to: request.size) else { continue }
            let interval = nearestInterval(in: offer.intervals[size] ?? [], toFPS: request.fps)
            return CameraMode(fourCC: offer.fourCC, size: size, interval: interval)
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
