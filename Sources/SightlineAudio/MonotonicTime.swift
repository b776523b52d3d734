#if canImport(Glibc)
import Glibc
#endif

/// CLOCK_MONOTONIC as a Duration, the clock capture timestamps use throughout (V4L2's too).
public enum MonotonicTime {
    public static func now() -> Duration {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return .seconds(Int64(time.tv_sec)) + .nanoseconds(Int64(time.tv_nsec))
    }
}
