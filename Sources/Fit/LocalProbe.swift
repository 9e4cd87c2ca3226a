import Foundation

/// Describes the machine this runs on as a CPU catalog entry: cores, memory, and a short measured
/// read bandwidth (all cores summing a 512 MiB buffer, best of 3 passes, about half a second).
public enum LocalProbe {
    /// The probed machine; `sources["bandwidth"]` is `measured`.
    public static func probe(bufferBytes: Int = 512 << 20) -> Hardware {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        let bandwidth = measureReadBandwidth(bytes: bufferBytes, threads: cores)
        // Compute is not measured: AVX2 FMA at 3 GHz (2 × 8-wide FMA per cycle = 32 FLOP/cycle) is assumed.
        let flops = Double(cores) * 3.0 * 32 / 1000
        return Hardware(name: "local", displayName: "this machine (\(cores) cores, \(String(format: "%.1f", memory / 1e9)) GB)",
                        kind: .cpu, memoryGB: memory / 1e9, usableMemoryGiB: nil, memoryBandwidthGBps: bandwidth / 1e9,
                        teraflops: ["fp32": flops, "bf16": flops, "int8": 2 * flops], native: ["fp32", "int8"],
                        defaultCount: nil, interconnect: nil, interconnectGroup: nil, hostLink: nil, tdpWatts: nil,
                        pricePerHour: nil, cores: cores,
                        sources: ["memory": "measured", "bandwidth": "measured", "compute": "assumed 3 GHz x 32 FLOP/cycle per core"],
                        notes: "read bandwidth measured over \(bufferBytes >> 20) MiB with \(cores) threads")
    }

    /// Bytes per second reading a `bytes`-long buffer with `threads` threads (best of 3).
    public static func measureReadBandwidth(bytes: Int, threads: Int) -> Double {
        let count = max(bytes / 8, 1 << 16)
        let buffer = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
        defer { buffer.deallocate() }
        for index in 0..<count { buffer[index] = UInt64(truncatingIfNeeded: index) }
        let chunks = max(threads, 1)
        var best = 0.0
        var sink: UInt64 = 0
        for _ in 0..<3 {
            let sums = UnsafeMutablePointer<UInt64>.allocate(capacity: chunks)
            defer { sums.deallocate() }
            // Addresses travel as integers: the buffers outlive the concurrentPerform call.
            let bufferAddress = UInt(bitPattern: buffer), sumsAddress = UInt(bitPattern: sums)
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                guard let raw = UnsafeRawPointer(bitPattern: bufferAddress),
                      let out = UnsafeMutablePointer<UInt64>(bitPattern: sumsAddress) else { return }
                let begin = count / chunks * chunk
                let end = chunk == chunks - 1 ? count : count / chunks * (chunk + 1)
                var a = SIMD8<UInt64>(repeating: 0)
                var index = begin
                while index + 8 <= end {
                    a &+= raw.loadUnaligned(fromByteOffset: index * 8, as: SIMD8<UInt64>.self)
                    index += 8
                }
                out[chunk] = a.wrappedSum()
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            for chunk in 0..<chunks { sink &+= sums[chunk] }
            best = max(best, Double(count * 8) / seconds)
        }
        if sink == 42 { best += 0 }  // keeps the sums alive
        return best
    }
}
