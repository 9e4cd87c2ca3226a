import CKernels
import Dispatch
import Foundation

/// Options shared by every group.
struct BenchmarkOptions {
    /// Input size of each measured conversion, in MiB.
    var megabytes = 64
    /// Timed runs per measurement (after one warm-up run); the median is reported.
    var repeats = 9

    struct UsageError: Error, CustomStringConvertible {
        let description: String
    }

    /// Parses `[GROUP] [--megabytes N] [--repeats N]`; the group defaults to `all`.
    static func parse(_ arguments: [String]) throws -> (String, BenchmarkOptions) {
        var options = BenchmarkOptions()
        var group = "all"
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "--megabytes", "--repeats":
                guard index + 1 < arguments.count, let value = Int(arguments[index + 1]), value > 0 else {
                    throw UsageError(description: "\(argument) needs a positive whole number")
                }
                if argument == "--megabytes" { options.megabytes = value } else { options.repeats = value }
                index += 2
            case "-h", "--help":
                print(usage())
                exit(0)
            default:
                guard !argument.hasPrefix("-") else { throw UsageError(description: "unknown option \(argument)") }
                group = argument
                index += 1
            }
        }
        return (group, options)
    }
}

/// Wraps a value that is only read (or written in disjoint parts) by concurrent workers.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
}

/// Seconds taken by `body`, from the monotonic clock.
@inline(never)
func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Runs every case once to warm up, then `repeats` rounds that time each case in turn (so all
/// cases see the same machine noise), and returns each case's median time in seconds.
func medianSeconds(repeats: Int, _ cases: [() -> Void]) -> [Double] {
    for body in cases { body() }
    var times = Array(repeating: [Double](), count: cases.count)
    for _ in 0..<repeats {
        for (index, body) in cases.enumerated() { times[index].append(seconds(body)) }
    }
    return times.map { samples in
        let sorted = samples.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

/// A Markdown table with right-aligned numeric columns.
func markdownTable(_ header: [String], _ rows: [[String]]) -> String {
    var lines = ["| " + header.joined(separator: " | ") + " |"]
    lines.append("|" + header.indices.map { $0 == 0 ? "---|" : "---:|" }.joined())
    for row in rows { lines.append("| " + row.joined(separator: " | ") + " |") }
    return lines.joined(separator: "\n")
}

/// One line about the machine: cores and whether the vector kernels run.
func machineDescription() -> String {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let vector = qk_cpu_has_f16c_avx2() != 0 ? "yes" : "no"
    return "# QuantizeBench\n\nmachine: \(cores) active cores, AVX2+F16C kernels: \(vector)"
}

func format(_ value: Double, digits: Int = 2) -> String {
    String(format: "%.\(digits)f", value)
}
