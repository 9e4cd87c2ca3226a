import CBLAS
import Foundation

/// Times the accuracy check against OpenBLAS's own sgemm of the same shape, in the same run.
public enum AccuracyBenchmark {
    /// The outcome of ``run(rows:columns:probeRows:repetitions:options:)``.
    public struct Result: Sendable, Hashable {
        /// Weight rows (out).
        public var rows: Int
        /// Weight columns (in).
        public var columns: Int
        /// Probe rows (n).
        public var probeRows: Int
        /// OpenBLAS threads during the run.
        public var blasThreads: Int
        /// Best wall time of one full check (difference pass, two sgemms, reductions), seconds.
        public var checkSeconds: Double
        /// Best wall time of one plain sgemm (n × columns) · (columns × rows), seconds.
        public var sgemmSeconds: Double

        /// Floating-point operations of one sgemm: 2 · n · rows · columns.
        public var sgemmOperations: Double { 2 * Double(probeRows) * Double(rows) * Double(columns) }
        /// The plain sgemm's rate in GFLOP/s.
        public var sgemmGigaflopsPerSecond: Double { sgemmOperations / sgemmSeconds / 1e9 }
        /// The check's rate in GFLOP/s, counting the two matrix products it must do (Y and Ŷ − Y)
        /// and nothing for its difference pass and reductions.
        public var checkGigaflopsPerSecond: Double { 2 * sgemmOperations / checkSeconds / 1e9 }
        /// `checkGigaflopsPerSecond / sgemmGigaflopsPerSecond`: 1 means the check's overheads are
        /// free; the target is at least 0.5.
        public var fractionOfSgemmRate: Double { checkGigaflopsPerSecond / sgemmGigaflopsPerSecond }
        /// Weights checked per second.
        public var weightsPerSecond: Double { Double(rows) * Double(columns) / checkSeconds }

        /// One line for the benchmark table.
        public var summary: String {
            String(
                format: "accuracy check %d×%d, n=%d, %d BLAS threads: check %.2f ms (%.1f GFLOP/s), "
                    + "sgemm %.2f ms (%.1f GFLOP/s), check at %.0f%% of the sgemm rate",
                rows, columns, probeRows, blasThreads, checkSeconds * 1e3, checkGigaflopsPerSecond,
                sgemmSeconds * 1e3, sgemmGigaflopsPerSecond, fractionOfSgemmRate * 100)
        }
    }

    /// Checks a Gaussian `rows` × `columns` weight against its bf16 rounding on the default probe,
    /// and times a plain `cblas_sgemm` of the same shape, alternating the two `repetitions` times
    /// after one warm-up each and keeping the best time of each. OpenBLAS's thread count is
    /// restored afterwards.
    ///
    /// - Throws: what ``TensorAccuracy/measure(original:decoded:rows:columns:activations:storedByteCount:tensorName:options:)`` throws (not for valid sizes).
    public static func run(
        rows: Int = 4096, columns: Int = 4096, probeRows: Int = ProbeActivations.defaultRows, repetitions: Int = 5,
        options: AccuracyOptions = AccuracyOptions()
    ) throws -> Result {
        let weights = ProbeActivations.gaussian(rows: rows, columns: columns, seed: 7).values
        // bf16 rounding by truncation: a cheap, realistic small perturbation.
        let decoded = weights.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) }
        let probe = ProbeActivations.gaussian(rows: probeRows, columns: columns)
        var output = [Float](repeating: 0, count: probeRows * rows)
        let previousThreads = OpenBLAS.threadCount
        if let threads = options.blasThreads { OpenBLAS.threadCount = threads }
        defer { OpenBLAS.threadCount = previousThreads }
        let threads = OpenBLAS.threadCount

        func sgemm() {
            probe.values.withUnsafeBufferPointer { x in
                weights.withUnsafeBufferPointer { w in
                    output.withUnsafeMutableBufferPointer { y in
                        cblas_sgemm(
                            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(probeRows), Int32(rows), Int32(columns), 1,
                            x.baseAddress, Int32(columns), w.baseAddress, Int32(columns), 0, y.baseAddress, Int32(rows))
                    }
                }
            }
        }
        func check() throws -> TensorAccuracy {
            try TensorAccuracy.measure(
                original: weights, decoded: decoded, rows: rows, columns: columns, activations: probe, options: options)
        }
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        sgemm()
        _ = try check()
        var best = (check: Double.infinity, sgemm: Double.infinity)
        for _ in 0..<max(repetitions, 1) {
            best.sgemm = min(best.sgemm, seconds(sgemm))
            best.check = min(best.check, try seconds { _ = try check() })
        }
        return Result(
            rows: rows, columns: columns, probeRows: probeRows, blasThreads: threads, checkSeconds: best.check,
            sgemmSeconds: best.sgemm)
    }
}
