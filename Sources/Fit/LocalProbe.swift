import Foundation

/// Describes the machine this runs on as a CPU catalog entry: cores, memory, and a short measured
/// memory bandwidth (all cores copying a 512 MiB buffer with memcpy, best of 3, well under a second).
public enum LocalProbe {
    /// The probed machine; `sources["bandwidth"]` is `measured`.
    public static func probe(bufferBytes: Int = 512 << 20) -> Hardware {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        let bandwidth = measureMemoryBandwidth(bytes: bufferBytes, threads: cores)
        // Compute is not measured: AVX2 FMA at 3 GHz (2 × 8-wide FMA per cycle = 32 FLOP/cycle) is assumed.
        let flops = Double(cores) * 3.0 * 32 / 1000
        return Hardware(name: "local", displayName: "this machine (\(cores) cores, \(String(format: "%.1f", memory / 1e9)) GB)",
                        kind: .cpu, memoryGB: memory / 1e9, usableMemoryGiB: nil, memoryBandwidthGBps: bandwidth / 1e9,
                        teraflops: ["fp32": flops, "bf16": flops, "int8": 2 * flops], native: ["fp32", "int8"],
                        defaultCount: nil, interconnect: nil, interconnectGroup: nil, hostLink: nil, tdpWatts: nil,
                        pricePerHour: nil, cores: cores,
                        sources: ["memory": "measured", "bandwidth": "measured", "compute": "assumed 3 GHz x 32 FLOP/cycle per core"],
                        notes: "memcpy bandwidth (read + write) measured over \(bufferBytes >> 20) MiB with \(cores) threads")
    }

    /// Bytes per second moved by `threads` threads copying a `bytes`-long buffer with `memcpy`
    /// (read plus write bytes, the way memcpy probes report it; best of 3). memcpy is libc's tuned
    /// routine, so the figure does not depend on how this package was compiled.
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
}
