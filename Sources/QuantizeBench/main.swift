// QuantizeBench: speed measurements, each against memcpy of the same bytes in the same run.
// Run through tools/bench.sh, which builds in release mode and prints Markdown tables.
//
//     QuantizeBench [GROUP|all] [--megabytes N] [--repeats N]
//
// A group is one entry of `BenchmarkGroup.all`; adding a group is one line there plus its file.
import Foundation

/// A named set of benchmarks that prints one or more Markdown tables.
struct BenchmarkGroup: Sendable {
    let name: String
    let summary: String
    let run: @Sendable (BenchmarkOptions) throws -> Void

    /// Every registered group, in the order `all` runs them.
    static let all: [BenchmarkGroup] = [
        BenchmarkGroup(name: "conversion", summary: "element conversion to and from float32 vs memcpy",
                       run: runConversionBenchmarks),
        BenchmarkGroup(name: "quantize", summary: "quantization kernels, FP32 and BF16 input, 1 core and all cores, vs memcpy",
                       run: runQuantizeBenchmarks),
        BenchmarkGroup(name: "check", summary: "accuracy check of a 4096×4096 tensor at n = 64 vs OpenBLAS sgemm",
                       run: runCheckBenchmark),
        BenchmarkGroup(name: "compress", summary: "byte-plane zstd codec per type on QUANTIZE_BENCH_FILES, 1 core and all cores, vs memcpy",
                       run: runCompressBenchmarks),
    ]
}

func usage() -> String {
    var text = "usage: QuantizeBench [GROUP|all] [--megabytes N] [--repeats N]\ngroups:\n"
    for group in BenchmarkGroup.all { text += "  \(group.name)  \(group.summary)\n" }
    return text
}

do {
    let (groupName, options) = try BenchmarkOptions.parse(Array(CommandLine.arguments.dropFirst()))
    let selected = groupName == "all" ? BenchmarkGroup.all : BenchmarkGroup.all.filter { $0.name == groupName }
    guard !selected.isEmpty else {
        FileHandle.standardError.write(Data("unknown group '\(groupName)'\n\(usage())".utf8))
        exit(2)
    }
    print(machineDescription())
    print("command: QuantizeBench \(groupName) --megabytes \(options.megabytes) --repeats \(options.repeats)")
    for group in selected {
        print("\n## \(group.name)\n")
        try group.run(options)
    }
} catch {
    FileHandle.standardError.write(Data("\(error)\n\(usage())".utf8))
    exit(2)
}
