import CKernels
import Dispatch
import Formats
import Foundation

/// One measured conversion: its dtypes and three ways to run it over `count` elements.
private struct ConversionCase: Sendable {
    let name: String
    let source: DType
    let destination: DType
    /// The public entry point (vector kernel when the CPU has it).
    let kernel: @Sendable (UnsafeRawPointer, UnsafeMutableRawPointer, Int) -> Void
    /// The portable scalar C kernel, for comparison.
    let scalar: @Sendable (UnsafeRawPointer, UnsafeMutableRawPointer, Int) -> Void
}

private func decodeCase(_ name: String, _ dtype: DType, scalar: @escaping @Sendable (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int) -> Void) -> ConversionCase {
    ConversionCase(
        name: name, source: dtype, destination: .f32,
        kernel: { input, output, count in
            let source = UnsafeRawBufferPointer(start: input, count: dtype.byteCount(elementCount: count) ?? 0)
            let destination = UnsafeMutableBufferPointer(start: output.assumingMemoryBound(to: Float.self), count: count)
            do { try ElementConversion.toFloat32(source, from: dtype, into: destination) } catch { fatalError("\(error)") }
        },
        scalar: { input, output, count in scalar(input, output.assumingMemoryBound(to: Float.self), count) })
}

private func encodeCase(_ name: String, _ dtype: DType, scalar: @escaping @Sendable (UnsafePointer<Float>, UnsafeMutableRawPointer, Int) -> Void) -> ConversionCase {
    ConversionCase(
        name: name, source: .f32, destination: dtype,
        kernel: { input, output, count in
            let source = UnsafeBufferPointer(start: input.assumingMemoryBound(to: Float.self), count: count)
            let destination = UnsafeMutableRawBufferPointer(start: output, count: dtype.byteCount(elementCount: count) ?? 0)
            do { try ElementConversion.fromFloat32(source, to: dtype, into: destination) } catch { fatalError("\(error)") }
        },
        scalar: { input, output, count in scalar(input.assumingMemoryBound(to: Float.self), output, count) })
}

private let conversionCases: [ConversionCase] = [
    decodeCase("BF16 → F32", .bf16) { qk_bf16_to_f32_scalar($0, $1, $2) },
    decodeCase("F16 → F32", .f16) { qk_f16_to_f32_scalar($0, $1, $2) },
    decodeCase("F8_E4M3 → F32", .f8E4M3) { qk_f8e4m3fn_to_f32_scalar($0, $1, $2) },
    decodeCase("F8_E5M2 → F32", .f8E5M2) { input, output, count in
        // The portable path of ElementConversion: a 256-entry table.
        ElementConversion.byteTable(for: .f8E5M2)?.withUnsafeBufferPointer { qk_u8_table_to_f32(input, output, count, $0.baseAddress) }
    },
    encodeCase("F32 → BF16", .bf16) { qk_f32_to_bf16_scalar($0, $1, $2) },
    encodeCase("F32 → F16", .f16) { qk_f32_to_f16_scalar($0, $1, $2) },
]

/// Input bytes shaped like real weights: normally distributed float32 values (σ = 0.02, as in
/// transformer weights) in the case's source dtype, so no block takes a NaN slow path.
private func makeInput(_ dtype: DType, count: Int) -> UnsafeMutableRawBufferPointer {
    var generator = SplitMix64(state: 0x5EED)
    let floats = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
    defer { floats.deallocate() }
    for index in stride(from: 0, to: count, by: 2) {
        // Box–Muller: two normal values from two uniform ones.
        let u1 = Float.random(in: Float.leastNormalMagnitude..<1, using: &generator)
        let u2 = Float.random(in: 0..<1, using: &generator)
        let radius = (-2 * Foundation.log(u1)).squareRoot() * 0.02
        floats[index] = radius * Foundation.cos(2 * .pi * u2)
        if index + 1 < count { floats[index + 1] = radius * Foundation.sin(2 * .pi * u2) }
    }
    let byteCount = dtype.byteCount(elementCount: count) ?? 0
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 64)
    switch dtype {
    case .f32: buffer.copyMemory(from: UnsafeRawBufferPointer(floats))
    case .f16, .bf16:
        do { try ElementConversion.fromFloat32(UnsafeBufferPointer(floats), to: dtype, into: buffer) } catch { fatalError("\(error)") }
    default:
        // 8-bit codes: per-tensor scale to ±448 then round through float16, as a cheap stand-in
        // for an FP8 encoder; only the distribution of codes matters for speed.
        for index in 0..<count {
            let scaled = max(-448, min(448, floats[index] / 0.1 * 448))
            let half = ElementConversion.float16Bits(scaled)
            buffer[index] = UInt8(truncatingIfNeeded: (half >> 8) & 0x80) | UInt8(truncatingIfNeeded: (half >> 7) & 0x7F)
        }
    }
    return buffer
}

/// A small fast generator for benchmark inputs (the system one makes a system call per draw).
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Prints the single-core table for every conversion and the multi-core row for BF16 → F32.
func runConversionBenchmarks(_ options: BenchmarkOptions) throws {
    let inputBytes = options.megabytes << 20
    var rows: [[String]] = []
    var multiCoreInput: UnsafeMutableRawBufferPointer?
    for conversion in conversionCases {
        let count = inputBytes / (conversion.source.bitWidth / 8)
        let input = makeInput(conversion.source, count: count)
        let outputBytes = conversion.destination.byteCount(elementCount: count) ?? 0
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: outputBytes, alignment: 64)
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: input.count, alignment: 64)
        defer { output.deallocate(); copy.deallocate() }
        output.initializeMemory(as: UInt8.self, repeating: 0)  // fault the pages in before timing
        copy.initializeMemory(as: UInt8.self, repeating: 0)
        guard let source = input.baseAddress, let destination = output.baseAddress, let copyDestination = copy.baseAddress else { continue }
        let times = medianSeconds(repeats: options.repeats, [
            { conversion.kernel(source, destination, count) },
            { conversion.scalar(source, destination, count) },
            { memcpy(copyDestination, source, input.count) },
        ])
        rows.append(row(conversion.name, inputBytes: input.count, times: times))
        if conversion.source == .bf16 { multiCoreInput = input } else { input.deallocate() }
    }

    if let input = multiCoreInput, let conversion = conversionCases.first(where: { $0.source == .bf16 }) {
        defer { input.deallocate() }
        let count = input.count / 2
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: count * 4, alignment: 64)
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: input.count, alignment: 64)
        defer { output.deallocate(); copy.deallocate() }
        output.initializeMemory(as: UInt8.self, repeating: 0)
        copy.initializeMemory(as: UInt8.self, repeating: 0)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let chunks = cores * 4
        guard let sourceBase = input.baseAddress, let destinationBase = output.baseAddress, let copyBase = copy.baseAddress else { return }
        // The workers write disjoint chunks of these buffers.
        let bases = UncheckedSendable(value: (sourceBase, destinationBase, copyBase))
        // Chunk boundaries in elements, multiples of 64 so every chunk starts on a cache line.
        let bounds = (0...chunks).map { $0 == chunks ? count : ($0 * count / chunks) & ~63 }
        func parallel(_ body: @escaping @Sendable (Int, Int) -> Void) -> () -> Void {
            { DispatchQueue.concurrentPerform(iterations: chunks) { chunk in body(bounds[chunk], bounds[chunk + 1] - bounds[chunk]) } }
        }
        let times = medianSeconds(repeats: options.repeats, [
            parallel { start, length in
                conversion.kernel(bases.value.0 + 2 * start, bases.value.1 + 4 * start, length)
            },
            parallel { start, length in
                conversion.scalar(bases.value.0 + 2 * start, bases.value.1 + 4 * start, length)
            },
            parallel { start, length in
                memcpy(bases.value.2 + 2 * start, bases.value.0 + 2 * start, 2 * length)
            },
        ])
        rows.append(row("BF16 → F32, \(cores) cores (\(chunks) chunks)", inputBytes: input.count, times: times))
    }

    print(markdownTable(
        ["conversion", "input MiB", "kernel GB/s", "scalar C GB/s", "memcpy GB/s", "kernel / memcpy"], rows))
    print("\nGB/s counts input bytes (10^9 per second); memcpy copies the same number of input bytes; "
          + "median of \(options.repeats) interleaved runs after one warm-up.")
}

private func row(_ name: String, inputBytes: Int, times: [Double]) -> [String] {
    let rates = times.map { Double(inputBytes) / $0 / 1e9 }
    return [name, "\(inputBytes >> 20)", format(rates[0]), format(rates[1]), format(rates[2]), format(rates[0] / rates[2])]
}
