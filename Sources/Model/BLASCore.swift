import CBLAS
import Foundation

/// Which OpenBLAS kernel family the process runs, and a better one when OpenBLAS did not recognise
/// the CPU.
///
/// OpenBLAS 0.3.21 (Debian 12) falls back to its SSE3 "Prescott" kernels on CPUs it cannot name —
/// virtual machines reporting a generic "Intel Xeon Processor" with AVX-512 among them — which
/// made sgemm 3.9× slower here (4-layer model: 11.7 s with Prescott, 3.0 s with SkylakeX). The choice
/// is made when the library loads, from `OPENBLAS_CORETYPE`, so only a new process can change it.
public enum BLASCore {
    /// The kernel family OpenBLAS chose (`openblas_get_corename`), e.g. `Prescott`, `Haswell`, `SkylakeX`.
    public static var current: String { String(cString: openblas_get_corename()) }

    /// The family to ask for with `OPENBLAS_CORETYPE` when OpenBLAS chose a pre-AVX2 family on a
    /// CPU that has AVX-512 (`SkylakeX`) or AVX2 + FMA (`Haswell`); nil when its choice is fine.
    public static var recommendedCoreType: String? {
        let weak: Set<String> = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge", "katmai", "coppermine", "northwood", "banias"]
        guard weak.contains(current.lowercased()) else { return nil }
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(line.split(separator: " ").map(String.init))
        if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return "Haswell" }
        return nil
    }
}
