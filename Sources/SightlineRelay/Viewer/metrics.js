/**
 * Rolling one-second measurements for the status bar and the receiver report: latency p50,
 * decoded frames per second, received bitrate. Samples carry their own time so the window
 * slides with the clock, not with the frame rate.
 */

/** Timestamped samples within the last `spanMs` milliseconds. */
export class RollingWindow {
    #samples = [];

    constructor(spanMs = 1000) {
        this.spanMs = spanMs;
    }

    add(time, value = 1) {
        this.#samples.push({ time, value });
        this.prune(time);
    }

    /** Drops samples older than the span, measured back from `now`. */
    prune(now) {
        const oldest = now - this.spanMs;
        let drop = 0;
        while (drop < this.#samples.length && this.#samples[drop].time < oldest) drop += 1;
        if (drop > 0) this.#samples.splice(0, drop);
    }

    values(now) {
        this.prune(now);
        return this.#samples.map((sample) => sample.value);
    }

    count(now) {
        this.prune(now);
        return this.#samples.length;
    }

    sum(now) {
        return this.values(now).reduce((total, value) => total + value, 0);
    }

    clear() {
        this.#samples = [];
    }
}

/** The median of `values`, or null when there are none (no frame, no latency to report). */
export function median(values) {
    if (values.length === 0) return null;
    const sorted = [...values].sort((a, b) => a - b);
    const middle = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
