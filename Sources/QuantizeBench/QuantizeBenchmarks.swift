import CKernels
import Dispatch
import Formats
import Foundation
import Quantize

/// Quantization kernels: GB/s of FP32 and of BF16 input, on one core and on all cores, each next
/// to a memcpy of the same input bytes measured in the same run. With QUANTIZE_BENCH_JSON=FILE the
/// numbers are also written as JSON for tools/bench_quantize.py, which adds the Python oracles.
func runQuantizeBenchmarks(_ options: BenchmarkOptions) throws {
    let columns = 4096
    let rows = max(256, (options.megabytes << 20) / (columns * 4) / 256 * 256)
    let count = rows * columns
    var generator = SplitMix64(seed: 0x5EED)
    let weights = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
    defer { weights.deallocate() }
    for i in 0..<count {  // Gaussian-ish (sum of uniforms), std ≈ 0.02, with rare outliers
        let u = (generator.nextUnitInterval() + generator.nextUnitInterval() + generator.nextUnitInterval() - 1.5) * 0.04
        weights[i] = Float(i % 9973 == 0 ? u * 20 : u)
    }
    let bf16 = UnsafeMutableRawBufferPointer.allocate(byteCount: count * 2, alignment: 64)
    defer { bf16.deallocate() }
    try ElementConversion.fromFloat32(UnsafeBufferPointer(weights), to: .bf16, into: bf16)
    let copyTarget = UnsafeMutableRawBufferPointer.allocate(byteCount: count * 4, alignment: 64)
    defer { copyTarget.deallocate() }
    copyTarget.initializeMemory(as: UInt8.self, repeating: 1)

    let schemes: [(String, Scheme)] = [
        ("fp8 (channel)", Scheme(name: .fp8)),
        ("fp8 (128×128 block)", Scheme(name: .fp8, granularity: .block(rows: 128, columns: 128))),
        ("int8 (channel)", Scheme(name: .int8)),
        ("int4 (g128)", Scheme(name: .int4)),
    ] + SchemeDescriptor.all.filter { $0.container == .gguf }.map { ($0.name.rawValue, Scheme(name: $0.name)) }
    let input = UncheckedSendable(value: (UnsafeBufferPointer(weights), UnsafeRawBufferPointer(bf16), copyTarget))
    var rowsOut: [[String]] = []
    var json: [[String: Any]] = []
    for (label, scheme) in schemes {
        // K-quants (256-element blocks) run at hundreds of MB/s: measure them on a slice so the run stays short.
        let isSlow = (scheme.name.ggmlType?.blockSize ?? 0) == 256
        let measuredRows = isSlow ? min(rows, 256) : rows
        let quantizer = try TensorQuantizer(scheme: scheme, rows: measuredRows, columns: columns, tensorName: label)
        let outputs = quantizer.layouts.map { UnsafeMutableRawBufferPointer.allocate(byteCount: max($0.byteCount, 1), alignment: 64) }
        defer { outputs.forEach { $0.deallocate() } }
        let amax: Float? = quantizer.needsTensorAmax
            ? TensorQuantizer.amax(UnsafeBufferPointer(rebasing: weights[0..<(measuredRows * columns)]), allowNonFinite: false) : nil
        // Rows converted at a time in the BF16 path: the quantize job's band.
        let block = ((max(1, QuantizeJob.bandFloats / columns) + quantizer.rowAlignment - 1) / quantizer.rowAlignment) * quantizer.rowAlignment
        let scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: block * columns)
        defer { scratch.deallocate() }
        let shared = UncheckedSendable(value: (outputs, scratch))
        let fp32OneCore = {
            let (w, _, _) = input.value
            try? quantizer.encode(rows: 0..<measuredRows, input: UnsafeBufferPointer(rebasing: w[0..<(measuredRows * columns)]),
                                  tensorAmax: amax, into: shared.value.0)
        }
        let bf16OneCore = {
            let (_, b, _) = input.value
            var r0 = 0
            while r0 < measuredRows {
                let r1 = min(measuredRows, r0 + block)
                let n = (r1 - r0) * columns
                let out = UnsafeMutableBufferPointer(rebasing: shared.value.1[0..<n])
                try? ElementConversion.toFloat32(UnsafeRawBufferPointer(rebasing: b[(r0 * columns * 2)..<(r1 * columns * 2)]), from: .bf16, into: out)
                try? quantizer.encode(rows: r0..<r1, input: UnsafeBufferPointer(out), tensorAmax: amax, into: shared.value.0)
                r0 = r1
            }
        }
        let fp32AllCores = {  // as the quantize job runs it: every core, output buffers reused
            let (w, _, _) = input.value
            try? quantizer.encodeAll(UnsafeBufferPointer(rebasing: w[0..<(measuredRows * columns)]), into: shared.value.0)
        }
        let memcpyFP32 = {
            let (w, _, target) = input.value
            memcpy(target.baseAddress!, w.baseAddress!, measuredRows * columns * 4)
        }
        let memcpyBF16 = {
            let (_, b, target) = input.value
            memcpy(target.baseAddress!, b.baseAddress!, measuredRows * columns * 2)
        }
        let repeats = isSlow ? 3 : options.repeats
        let times = medianSeconds(repeats: repeats, [fp32OneCore, bf16OneCore, fp32AllCores, memcpyFP32, memcpyBF16])
        let fp32Bytes = Double(measuredRows * columns * 4), bf16Bytes = Double(measuredRows * columns * 2)
        let rates = [fp32Bytes / times[0], bf16Bytes / times[1], fp32Bytes / times[2], fp32Bytes / times[3], bf16Bytes / times[4]].map { $0 / 1e9 }
        rowsOut.append([label, format(rates[0]), format(rates[3]), format(rates[0] / rates[3]),
                        format(rates[1]), format(rates[4]), format(rates[1] / rates[4]), format(rates[2]), format(rates[2] / rates[0])])
        json.append(["scheme": scheme.name.rawValue, "label": label, "rows": measuredRows, "columns": columns,
                     "fp32_one_core_gb_s": rates[0], "bf16_one_core_gb_s": rates[1], "fp32_all_cores_gb_s": rates[2],
                     "memcpy_fp32_gb_s": rates[3], "memcpy_bf16_gb_s": rates[4]])
    }
    print("\(rows)×\(columns) weights (\(format(Double(count * 4) / 1e6, digits: 0)) MB as FP32; q4_k/q6_k on 256 rows); GB/s of input; medians of \(options.repeats) interleaved runs\n")
    print(markdownTable(["scheme", "FP32 in, 1 core", "memcpy", "× memcpy", "BF16 in, 1 core", "memcpy", "× memcpy",
                         "FP32 in, all cores", "scaling"], rowsOut))
    if let path = ProcessInfo.processInfo.environment["QUANTIZE_BENCH_JSON"] {
        let data = try JSONSerialization.data(withJSONObject: ["cores": ProcessInfo.processInfo.activeProcessorCount, "results": json],
                                              options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
    }
}

/// The accuracy check of one 4096×4096 tensor at n = 64 against OpenBLAS's own sgemm rate.
func runCheckBenchmark(_ options: BenchmarkOptions) throws {
    var rows: [[String]] = []
    for threads in [1, ProcessInfo.processInfo.activeProcessorCount] {
        let result = try AccuracyBenchmark.run(repetitions: max(3, options.repeats / 2), options: AccuracyOptions(blasThreads: threads))
        rows.append(["\(threads)", format(result.checkSeconds * 1e3, digits: 1), format(result.sgemmSeconds * 1e3, digits: 1),
                     format(result.checkGigaflopsPerSecond, digits: 1), format(result.sgemmGigaflopsPerSecond, digits: 1),
                     format(result.fractionOfSgemmRate * 100, digits: 0) + " %"])
    }
    print(markdownTable(["OpenBLAS threads", "check ms", "sgemm ms", "check GFLOP/s", "sgemm GFLOP/s", "check / sgemm rate"], rows))
}
