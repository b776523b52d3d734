import Foundation
import SightlineTesting
import Testing

extension ViewerBrowserTests {
    /// The expert's microphone path without a microphone: the capture worklet rendered offline
    /// in both browsers (the module loaded under the relay's CSP, as the viewer loads it), and
    /// the clock that stamps what it captured.
    @Suite("viewer microphone capture")
    struct AudioCaptureBrowserTests {
        @Test("the capture worklet cuts its input into contiguous 20 ms mono chunks: every sample, in order, stamped with its context time",
              arguments: BrowserKind.allCases)
        func workletChunks(in browser: BrowserKind) async throws {
            try await ViewerLab.run(in: browser) { lab in
                try await lab.openHarness()
                let result = try await lab.run("""
                    const rate = 48000, length = 24000;
                    const context = new OfflineAudioContext(1, length, rate);
                    const buffer = context.createBuffer(1, length, rate);
                    const input = buffer.getChannelData(0);
                    // A sawtooth whose neighbouring samples all differ: a lost, doubled or
                    // shifted sample shows.
                    for (let i = 0; i < length; i += 1) input[i] = ((i * 7) % 1000) / 1000 - 0.5;
                    // Firefox hands the buffer's array over to the source node when it plays: compare with a copy.
                    const expected = Float32Array.from(input);
                    const source = context.createBufferSource();
                    source.buffer = buffer;
                    const chunks = [];
                    await lab.audio.connectCaptureWorklet(context, source, (data) => {
                        const samples = new Float32Array(data.numberOfFrames);
                        data.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
                        chunks.push({ timestamp: data.timestamp, frames: data.numberOfFrames, rate: data.sampleRate,
                                      channels: data.numberOfChannels, format: data.format, samples });
                        data.close();
                    });
                    source.start(0);
                    await context.startRendering();
                    for (let i = 0; i < 200 && chunks.length < length / 960; i += 1) await new Promise((r) => setTimeout(r, 20));
                    let mismatches = 0;
                    for (const chunk of chunks) {
                        const first = Math.round((chunk.timestamp * rate) / 1e6);
                        for (let j = 0; j < chunk.samples.length; j += 1) if (chunk.samples[j] !== expected[first + j]) mismatches += 1;
                    }
                    return { timestamps: chunks.map((c) => c.timestamp), frames: [...new Set(chunks.map((c) => c.frames))],
                             rates: [...new Set(chunks.map((c) => c.rate))], channels: [...new Set(chunks.map((c) => c.channels))],
                             formats: [...new Set(chunks.map((c) => c.format))], mismatches };
                    """)
                // 500 ms rendered: 25 whole chunks, 20 000 µs apart from 0.
                let timestamps = result["timestamps"]?.array?.compactMap(\.int) ?? []
                #expect(timestamps == (0..<25).map { $0 * 20000 }, "\(result)")
                #expect(result["frames"] == [960])
                #expect(result["rates"] == [48000])
                #expect(result["channels"] == [1])
                #expect(result["formats"] == ["f32-planar"])
                #expect(result["mismatches"] == 0)
            }
        }

        @Test("the capture clock follows the earliest arrivals: late buffers do not move it, an earlier one does at once, it rises 1 ms per second at most, a restarted media clock starts over")
        func captureClock() async throws {
            try await ViewerLab.run { lab in
                try await lab.openHarness()
                let result = try await lab.run("""
                    const clock = new lab.audio.CaptureClock();
                    const base = 1_800_000_000_000;
                    const out = {};
                    // 20 ms buffers; the first arrives 30 ms after its end, later ones up to 45 ms.
                    out.first = clock.observe(base + 20 + 30, 20);
                    for (let k = 2; k <= 50; k += 1) clock.observe(base + k * 20 + 30 + (k % 4) * 5, k * 20);
                    out.afterLate = clock.wallMs(1000) - 1000;
                    out.early = clock.observe(base + 51 * 20 + 10, 51 * 20);
                    // Ten seconds of buffers all 40 ms later than the best seen: 10 ms of rise.
                    for (let k = 52; k <= 551; k += 1) clock.observe(base + k * 20 + 50, k * 20);
                    out.risen = clock.wallMs(0);
                    out.restart = clock.observe(base + 5000, 20);
                    return out;
                    """)
                let base = 1_800_000_000_000.0
                #expect(result["first"]?.double == base + 30)
                // Between two on-time buffers it may rise by 0.02 ms per 20 ms buffer, no more.
                let afterLate = try #require(result["afterLate"]?.double) - base
                #expect(afterLate >= 30 && afterLate < 30.1, "late buffers moved the clock: \(afterLate) ms")
                #expect(result["early"]?.double == base + 10)
                let risen = try #require(result["risen"]?.double) - base
                #expect(abs(risen - 20) < 0.01, "rose to \(risen) ms")
                #expect(result["restart"]?.double == base + 4980)
            }
        }
    }
}
