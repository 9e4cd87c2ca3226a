// The libFuzzer entry point for every FuzzTarget; tools/fuzz.sh builds it with
// `--sanitize fuzzer --sanitize address` and picks the target through QUANTIZE_FUZZ_TARGET.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FuzzSupport

/// Writes one line to standard error.
func printError(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
}

/// The target named by QUANTIZE_FUZZ_TARGET (read once, before the first input).
let selectedTarget: FuzzTarget = {
    let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
    guard let raw = getenv("QUANTIZE_FUZZ_TARGET") else {
        printError("QUANTIZE_FUZZ_TARGET is not set; one of: \(names)")
        exit(2)
    }
    guard let target = FuzzTarget(rawValue: String(cString: raw)) else {
        printError("QUANTIZE_FUZZ_TARGET=\(String(cString: raw)) is not a target; one of: \(names)")
        exit(2)
    }
    return target
}()

/// Runs one input; an outcome that breaks the rules (a wrong size decoded, an unclear error)
/// aborts, so libFuzzer saves the input as a crash like any trap or sanitizer report.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let outcome = selectedTarget.run(UnsafeRawBufferPointer(start: data, count: size))
    if let problem = outcome.problem {
        printError("quantize-fuzz: \(selectedTarget.rawValue): \(problem)")
        abort()
    }
    return 0
}
