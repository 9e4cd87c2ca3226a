import CBLAS
import CKernels
import Dispatch
import Foundation

/// What a short probe measured on this machine (`quantize fit --device local`): the rates the
/// CPU model (``CPUModel``) turns into llama.cpp-style decode and prefill speeds.
///
/// Every rate is for all `threads` working at once, best of a few passes, so it reads what the
/// machine gives when least disturbed during the probe (the same way llama-bench's fastest
/// repetition does); `seconds` is the probe's own wall time.
public struct CPUProbe: Codable, Sendable, Hashable {
    /// Threads the probe ran (one per active core).
    public var threads: Int
    /// Bytes per second read by a read-only streaming pass over `bufferBytes` (no writes, not memcpy).
    public var readBytesPerSecond: Double
    /// The streaming buffer, bytes (larger than the last-level cache when the OS reports it).
    public var bufferBytes: Int
    /// Weights per second through a dot product of each ggml block family with int8 (or F16)
    /// activations, the data resident in cache: `q8_0`, `q4_0`, `q4_k`, `f16`.
    public var dotWeightsPerSecond: [String: Double]
    /// FLOP/s of an FP32 OpenBLAS `cblas_sgemm` (square, `sgemmSize`), all of OpenBLAS's threads.
    public var sgemmFlopsPerSecond: Double
    /// The sgemm's matrix side.
    public var sgemmSize: Int
    /// How much longer lock-step work takes right now than on an idle machine: rounds of about
    /// 0.5 ms of Q8_0 dot products on every thread, each ended by a barrier (spin, then yield) as
    /// llama.cpp's OpenMP threads end every graph op, wall time over rounds × the fastest round
    /// (``LocalProbe/measureSynchronized(threads:q8WeightsPerSecond:budget:)``). 1 on an idle
    /// machine; above 1 when other work takes the cores and one thread waits for another.
    public var synchronizedStretch: Double = 1
    /// Share of the cores' time each thread got over a sustained stretch of work (no barriers):
    /// Q8_0 dot products run for 0.2 s on every thread, their mean rate over the best pass's (1 on an
    /// idle machine). Long ops (prefill GEMMs) run at this share.
    public var sustainedShare: Double = 1
    /// Wall time of the whole probe, seconds.
    public var seconds: Double

    /// Creates a probe result (tests use fixed values; ``LocalProbe/measure(threads:bufferBytes:)`` measures one).
    public init(threads: Int, readBytesPerSecond: Double, bufferBytes: Int, dotWeightsPerSecond: [String: Double],
                sgemmFlopsPerSecond: Double, sgemmSize: Int, synchronizedStretch: Double = 1, sustainedShare: Double = 1, seconds: Double) {
        self.threads = threads
        self.readBytesPerSecond = readBytesPerSecond
        self.bufferBytes = bufferBytes
        self.dotWeightsPerSecond = dotWeightsPerSecond
        self.sgemmFlopsPerSecond = sgemmFlopsPerSecond
        self.sgemmSize = sgemmSize
        self.synchronizedStretch = synchronizedStretch
        self.sustainedShare = sustainedShare
        self.seconds = seconds
    }

    /// The dot-product families the probe measures (keys of ``dotWeightsPerSecond``).
    public static let families = ["q8_0", "q4_0", "q4_k", "f16"]
}

/// Describes the machine this runs on as a CPU catalog entry: cores, memory, and a short measured
/// read bandwidth and matrix throughput (``CPUProbe``), well under two seconds in all.
public enum LocalProbe {
    /// The probed machine; `sources["bandwidth"]` and `sources["compute"]` are `measured`, and
    /// ``Hardware/probe`` holds the rates the CPU model uses.
    public static func probe(bufferBytes: Int? = nil) -> Hardware {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        let measured = measure(threads: cores, bufferBytes: bufferBytes ?? defaultBufferBytes(physicalMemory: memory))
        // Catalog-style peaks for the generic roofline (GPU offload plans use them): fp32 from the sgemm,
        // int8 from the Q8_0 dot product (2 FLOP per weight).
        let fp32 = measured.sgemmFlopsPerSecond / 1e12
        let int8 = 2 * (measured.dotWeightsPerSecond["q8_0"] ?? 0) / 1e12
        let f16 = 2 * (measured.dotWeightsPerSecond["f16"] ?? 0) / 1e12
        var hardware = Hardware(
            name: "local", displayName: "this machine (\(cores) cores, \(String(format: "%.1f", memory / 1e9)) GB)",
            kind: .cpu, memoryGB: memory / 1e9, usableMemoryGiB: nil, memoryBandwidthGBps: measured.readBytesPerSecond / 1e9,
            teraflops: ["fp32": max(fp32, f16), "bf16": max(fp32, f16), "int8": max(int8, 1e-6)], native: ["fp32", "int8"],
            defaultCount: nil, interconnect: nil, interconnectGroup: nil, hostLink: nil, tdpWatts: nil,
            pricePerHour: nil, cores: cores,
            sources: ["memory": "measured", "bandwidth": "measured", "compute": "measured"],
            notes: String(format: "probed in %.2f s: read %.1f GB/s over %d MiB, %d threads; dot q8_0 %.1f, q4_0 %.1f, q4_k %.1f, f16 %.1f Gweights/s; sgemm %.0f GFLOP/s; lock-step stretch %.2f, sustained share %.2f",
                          measured.seconds, measured.readBytesPerSecond / 1e9, measured.bufferBytes >> 20, measured.threads,
                          (measured.dotWeightsPerSecond["q8_0"] ?? 0) / 1e9, (measured.dotWeightsPerSecond["q4_0"] ?? 0) / 1e9,
                          (measured.dotWeightsPerSecond["q4_k"] ?? 0) / 1e9, (measured.dotWeightsPerSecond["f16"] ?? 0) / 1e9,
                          measured.sgemmFlopsPerSecond / 1e9, measured.synchronizedStretch, measured.sustainedShare))
        hardware.probe = measured
        return hardware
    }

    /// The streaming buffer: twice the last-level cache the OS reports, at least 512 MiB and at
    /// most 1 GiB or a sixteenth of the memory (and at least 64 MiB). A streaming read of twice the
    /// cache misses on almost every line; more only makes the probe slower.
    public static func defaultBufferBytes(physicalMemory: Double) -> Int {
        var bytes = 512 << 20
        #if os(Linux)
        let cache = sysconf(Int32(_SC_LEVEL3_CACHE_SIZE))
        if cache > 0 { bytes = min(max(bytes, 2 * cache), 1 << 30) }
        #endif
        bytes = min(bytes, Int(physicalMemory / 16))
        return max(bytes, 64 << 20) / 4096 * 4096
    }

    /// Runs every probe with `threads` threads: read bandwidth over `bufferBytes`, the four dot
    /// products, the lock-step and sustained stretches, and last a 512³ sgemm.
    public static func measure(threads: Int, bufferBytes: Int) -> CPUProbe {
        let start = DispatchTime.now().uptimeNanoseconds
        let threads = max(threads, 1)
        let read = measureReadBandwidth(bytes: bufferBytes, threads: threads)
        var dots: [String: Double] = [:]
        for family in CPUProbe.families { dots[family] = measureDotRate(family: family, threads: threads) }
        let sync = measureSynchronized(threads: threads, q8WeightsPerSecond: dots["q8_0"] ?? 1e9)
        let sustained = measureDotRate(family: "q8_0", threads: threads, sustainedSeconds: 0.2)
        let share = min(1, max(0.01, sustained / max(dots["q8_0"] ?? sustained, 1)))
        // Last: OpenBLAS's threads spin for a while after a call, and a probe run beside them
        // measured that spinning as machine load (lock-step stretch 1.4-2.3 on an idle machine).
        let size = 512
        let sgemm = measureSgemm(size: size)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return CPUProbe(threads: threads, readBytesPerSecond: read, bufferBytes: max(bufferBytes, 1 << 20) / 4096 * 4096,
                        dotWeightsPerSecond: dots, sgemmFlopsPerSecond: sgemm, sgemmSize: size,
                        synchronizedStretch: sync, sustainedShare: share, seconds: seconds)
    }

    /// Bytes per second read by `threads` threads streaming over a `bytes`-long buffer, each its
    /// own contiguous slice, read-only (`qk_probe_read`, AVX2 loads where available); the best of
    /// `passes` passes after the pages were touched. Decode reads weights and never writes them,
    /// so this is its bound, not a memcpy figure (which counts write-allocate traffic too).
    public static func measureReadBandwidth(bytes: Int, threads: Int, passes: Int = 4) -> Double {
        let size = max(bytes, 1 << 20) / 4096 * 4096
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 1 << 21)
        defer { buffer.deallocate() }
        #if os(Linux)
        _ = madvise(buffer, size, 14)  // MADV_HUGEPAGE: fewer TLB misses, as llama.cpp's large mmaps get
        #endif
        memset(buffer, 1, size)  // fault every page in before timing
        let chunks = max(threads, 1)
        let address = UInt(bitPattern: buffer)
        var best = 0.0
        for _ in 0..<max(passes, 1) {
            let begin = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let lower = size / chunks * chunk / 4096 * 4096
                let upper = chunk == chunks - 1 ? size : size / chunks * (chunk + 1) / 4096 * 4096
                guard let from = UnsafeRawPointer(bitPattern: address + UInt(lower)) else { return }
                sink(qk_probe_read(from, upper - lower))
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
            best = max(best, Double(size) / seconds)
        }
        return best
    }

    /// Block layout of each probed family: weights per block, bytes per weight block, bytes per
    /// activation block (Q8_0 for the legacy types, Q8_K for k-quants, F16 for f16).
    static func layout(_ family: String) -> (weights: Int, xBytes: Int, yBytes: Int)? {
        switch family {
        case "q8_0": return (32, 34, 34)
        case "q4_0": return (32, 18, 34)
        case "q4_k": return (256, 144, 292)
        case "f16": return (1, 2, 2)
        default: return nil
        }
    }

    /// Weights per second through `family`'s dot product on `threads` threads, each over its own
    /// 16,384 weights (≈ 10–20 kB of blocks, resident in L1/L2: this is the kernel's arithmetic
    /// rate, not a memory rate); best of 3 passes of about 15 ms.
    /// With `sustainedSeconds` > 0, the timed part is instead one pass in which every thread works
    /// until that many seconds have passed, and the rate is the pass's mean.
    public static func measureDotRate(family: String, threads: Int, weightsPerThread: Int = 16_384, passSeconds: Double = 0.015,
                                      sustainedSeconds: Double = 0) -> Double {
        guard let layout = layout(family) else { return 0 }
        let blocks = max(weightsPerThread / layout.weights, 1)
        let chunks = max(threads, 1)
        let xBytes = blocks * layout.xBytes, yBytes = blocks * layout.yBytes
        let x = UnsafeMutableRawPointer.allocate(byteCount: xBytes * chunks, alignment: 64)
        let y = UnsafeMutableRawPointer.allocate(byteCount: yBytes * chunks, alignment: 64)
        defer { x.deallocate(); y.deallocate() }
        // Bytes from a fixed linear congruential sequence; F16 scales set to 1/1024 (0x1400) so the
        // sums stay finite. Values do not change the timing.
        var state: UInt32 = 12345
        for i in 0..<(xBytes * chunks) { state = state &* 1_664_525 &+ 1_013_904_223; x.storeBytes(of: UInt8(truncatingIfNeeded: state >> 24), toByteOffset: i, as: UInt8.self) }
        for i in 0..<(yBytes * chunks) { state = state &* 1_664_525 &+ 1_013_904_223; y.storeBytes(of: UInt8(truncatingIfNeeded: state >> 24) & 0x3F, toByteOffset: i, as: UInt8.self) }
        if family == "f16" {
            for i in stride(from: 0, to: xBytes * chunks, by: 2) { x.storeBytes(of: UInt16(0x1400), toByteOffset: i, as: UInt16.self) }
            for i in stride(from: 0, to: yBytes * chunks, by: 2) { y.storeBytes(of: UInt16(0x1400), toByteOffset: i, as: UInt16.self) }
        } else if family != "q4_k" {
            for b in 0..<(blocks * chunks) {
                x.storeBytes(of: UInt16(0x1400), toByteOffset: b * layout.xBytes, as: UInt16.self)
                y.storeBytes(of: UInt16(0x1400), toByteOffset: b * layout.yBytes, as: UInt16.self)
            }
        } else {
            for b in 0..<(blocks * chunks) {
                x.storeBytes(of: UInt32(0x1400_1400), toByteOffset: b * layout.xBytes, as: UInt32.self)
                y.storeBytes(of: Float(1.0 / 1024), toByteOffset: b * layout.yBytes, as: Float.self)
            }
        }
        let xAddress = UInt(bitPattern: x), yAddress = UInt(bitPattern: y)
        var best = 0.0
        // A short first pass sizes the timed ones to about `passSeconds` each, long enough to span
        // several scheduler slices on a shared machine.
        var repetitions = 20
        if sustainedSeconds > 0 {
            let begin = DispatchTime.now().uptimeNanoseconds
            let deadline = begin + UInt64(sustainedSeconds * 1e9)
            let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: chunks)
            counts.initialize(repeating: 0)
            defer { counts.deallocate() }
            let countAddress = UInt(bitPattern: counts.baseAddress)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                guard let px = UnsafeRawPointer(bitPattern: xAddress + UInt(chunk * xBytes)),
                      let py = UnsafeRawPointer(bitPattern: yAddress + UInt(chunk * yBytes)),
                      let count = UnsafeMutablePointer<Int>(bitPattern: countAddress + UInt(chunk * MemoryLayout<Int>.stride)) else { return }
                var total: Float = 0
                var done = 0
                while DispatchTime.now().uptimeNanoseconds < deadline {
                    total += qk_probe_dot_q8_0(px, py, blocks)
                    done += 1
                }
                count.pointee = done
                sink(UInt64(truncatingIfNeeded: Int(total.isFinite ? total : 0)))
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
            return Double(counts.reduce(0, +) * blocks * layout.weights) / max(seconds, 1e-9)
        }
        for pass in 0..<4 {
            let begin = DispatchTime.now().uptimeNanoseconds
            let repeats = repetitions
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                guard let px = UnsafeRawPointer(bitPattern: xAddress + UInt(chunk * xBytes)),
                      let py = UnsafeRawPointer(bitPattern: yAddress + UInt(chunk * yBytes)) else { return }
                var total: Float = 0
                for _ in 0..<repeats {
                    switch family {
                    case "q8_0": total += qk_probe_dot_q8_0(px, py, blocks)
                    case "q4_0": total += qk_probe_dot_q4_0(px, py, blocks)
                    case "q4_k": total += qk_probe_dot_q4_k(px, py, blocks)
                    default: total += qk_probe_dot_f16(px, py, blocks)
                    }
                }
                sink(UInt64(truncatingIfNeeded: Int(total.isFinite ? total : 0)))
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
            let rate = Double(chunks * repetitions * blocks * layout.weights) / max(seconds, 1e-9)
            if pass == 0 {
                repetitions = max(20, min(1_000_000, Int(passSeconds * rate / Double(chunks * blocks * layout.weights))))
            } else {
                best = max(best, rate)
            }
        }
        return best
    }

    /// The stretch of lock-step work (``CPUProbe/synchronizedStretch``): rounds of `roundSeconds`
    /// of Q8_0 dot products per thread for `budget` seconds, wall time over rounds × the fastest round.
    public static func measureSynchronized(threads: Int, q8WeightsPerSecond: Double, budget: Double = 0.2,
                                           roundSeconds: Double = 500e-6) -> Double {
        let perThread = q8WeightsPerSecond / Double(max(threads, 1))
        let blocks = max(4, min(1 << 18, Int(roundSeconds * perThread / 32)))
        var fastest = 0.0
        var completed: Int32 = 0
        let elapsed = qk_probe_synchronized_rounds(Int32(max(threads, 1)), 100_000, blocks, budget, &fastest, &completed)
        guard elapsed > 0, fastest > 0, completed > 0 else { return 1 }
        return max(1, elapsed / (Double(completed) * fastest))
    }

    /// FLOP/s of an FP32 `cblas_sgemm` of two `size` × `size` matrices (2·size³ FLOP), best of 3
    /// after one warm-up; OpenBLAS uses its own thread pool.
    public static func measureSgemm(size: Int) -> Double {
        let n = max(size, 16)
        var a = [Float](repeating: 0, count: n * n), b = a, c = a
        for i in 0..<(n * n) { a[i] = Float(i % 7) * 0.25 - 0.75; b[i] = Float(i % 5) * 0.25 - 0.5 }
        var best = 0.0
        for pass in 0..<4 {
            let begin = DispatchTime.now().uptimeNanoseconds
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1,
                                    pa.baseAddress, Int32(n), pb.baseAddress, Int32(n), 0, pc.baseAddress, Int32(n))
                    }
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
            if pass > 0 { best = max(best, 2 * Double(n) * Double(n) * Double(n) / seconds) }
        }
        return best
    }

    /// Bytes per second moved by `threads` threads copying a `bytes`-long buffer with `memcpy`
    /// (read plus write bytes, the way memcpy probes report it; best of 3). Kept for comparison
    /// with the read-only figure; fit's CPU model uses ``measureReadBandwidth(bytes:threads:passes:)``.
    public static func measureMemoryBandwidth(bytes: Int, threads: Int) -> Double {
        let size = max(bytes, 1 << 20)
        let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        let target = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer { source.deallocate(); target.deallocate() }
        memset(source, 1, size)
        memset(target, 0, size)  // fault the pages in before timing
        let chunks = max(threads, 1)
        let sourceAddress = UInt(bitPattern: source), targetAddress = UInt(bitPattern: target)
        var best = 0.0
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let begin = size / chunks * chunk
                let end = chunk == chunks - 1 ? size : size / chunks * (chunk + 1)
                guard let from = UnsafeRawPointer(bitPattern: sourceAddress + UInt(begin)),
                      let to = UnsafeMutableRawPointer(bitPattern: targetAddress + UInt(begin)) else { return }
                memcpy(to, from, end - begin)
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, 2 * Double(size) / seconds)
        }
        return best
    }

    /// Keeps a probe's result alive so the optimiser cannot drop the work that produced it.
    @inline(never) static func sink(_ value: UInt64) {
        if value == 0x5EED_5EED_5EED_5EED { FileHandle.standardError.write(Data(" ".utf8)) }
    }
}
