import Formats
import Foundation
import Quantize
import Testing

@Suite("Accuracy metrics")
struct AccuracyMetricsTests {
    @Test("a 2×2 case matches the metrics computed by hand")
    func handComputedSquare() throws {
        // W = I, Ŵ = diag(1, 2), X = [[1, 2], [3, 4]]  →  Y = X, Ŷ = [[1, 4], [3, 8]], D = [[0, 2], [0, 4]].
        // ‖D‖² = 20, ‖Y‖² = 30, ⟨Y, Ŷ⟩ = 50, ‖Ŷ‖² = 90, ‖Ŵ − W‖ = 1, ‖W‖ = √2.
        let x = try ProbeActivations(values: [1, 2, 3, 4], rows: 2, columns: 2)
        let m = try TensorAccuracy.measure(
            original: [1, 0, 0, 1], decoded: [1, 0, 0, 2], rows: 2, columns: 2, activations: x, storedByteCount: 2)
        #expect(isClose(m.relativeError, (2.0 / 3).squareRoot(), relative: 1e-6))
        #expect(isClose(m.sqnrDecibels, 10 * log10(1.5), relative: 1e-5))
        #expect(isClose(m.cosineSimilarity, 50 / (30.0 * 90).squareRoot(), relative: 1e-6))
        #expect(m.maxAbsoluteError == 4)
        #expect(isClose(m.relativeWeightError, 0.5.squareRoot(), relative: 1e-6))
        #expect(m.bitsPerWeight == 4)  // 2 bytes for 4 weights
        #expect(m.probeRows == 2 && m.checkedRows == 2 && !m.isSampled && m.probe == .file)
    }

    @Test("a rectangular 2×3 case matches the metrics computed by hand")
    func handComputedRectangle() throws {
        // W = [[1,0,0],[0,1,0]], Ŵ = [[1,0,0],[0,1,1]], X = [[1,1,1]]  →  Y = [1, 1], Ŷ = [1, 2], D = [0, 1].
        let x = try ProbeActivations(values: [1, 1, 1], rows: 1, columns: 3)
        let m = try TensorAccuracy.measure(
            original: [1, 0, 0, 0, 1, 0], decoded: [1, 0, 0, 0, 1, 1], rows: 2, columns: 3, activations: x)
        #expect(isClose(m.relativeError, 0.5.squareRoot(), relative: 1e-6))
        #expect(isClose(m.sqnrDecibels, 10 * log10(2.0), relative: 1e-5))
        #expect(isClose(m.cosineSimilarity, 3 / 10.0.squareRoot(), relative: 1e-6))
        #expect(m.maxAbsoluteError == 1)
        #expect(isClose(m.relativeWeightError, 0.5.squareRoot(), relative: 1e-6))
        #expect(m.bitsPerWeight == nil)
    }

    @Test("identical weights give zero error, infinite SQNR and cosine 1, never NaN")
    func identicalWeights() throws {
        let w = gaussianWeights(rows: 16, columns: 48, seed: 3)
        let m = try TensorAccuracy.measure(
            original: w, decoded: w, rows: 16, columns: 48, activations: .gaussian(columns: 48))
        #expect(m.relativeError == 0)
        #expect(m.sqnrDecibels == .infinity)
        #expect(m.cosineSimilarity == 1)
        #expect(m.maxAbsoluteError == 0)
        #expect(m.relativeWeightError == 0)
    }

    @Test("all-zero weights decoded to zero count as exact; decoded to non-zero as infinitely wrong")
    func zeroReference() throws {
        let x = ProbeActivations.gaussian(rows: 4, columns: 8)
        let zero = [Float](repeating: 0, count: 16)
        let exact = try TensorAccuracy.measure(original: zero, decoded: zero, rows: 2, columns: 8, activations: x)
        #expect(exact.relativeError == 0 && exact.cosineSimilarity == 1 && exact.sqnrDecibels == .infinity)
        var wrong = zero
        wrong[3] = 0.5
        let bad = try TensorAccuracy.measure(original: zero, decoded: wrong, rows: 2, columns: 8, activations: x)
        #expect(bad.relativeError == .infinity && bad.sqnrDecibels == -.infinity && bad.cosineSimilarity == 0)
        #expect(!AccuracyReport.Entry(name: "w", scheme: "int8", accuracy: bad).passed)
    }

    @Test("a NaN in the decoded weight makes every error infinite and the tensor fail")
    func nonFiniteDecoded() throws {
        let w = gaussianWeights(rows: 8, columns: 32, seed: 4)
        var decoded = w
        decoded[77] = .nan
        let m = try TensorAccuracy.measure(
            original: w, decoded: decoded, rows: 8, columns: 32, activations: .gaussian(columns: 32))
        #expect(m.relativeError == .infinity)
        #expect(m.maxAbsoluteError == .infinity)
        #expect(m.relativeWeightError == .infinity)
        #expect(!m.cosineSimilarity.isNaN)
        #expect(!AccuracyReport.Entry(name: "w", scheme: "int8", accuracy: m, threshold: 10).passed)
    }

    @Test("metrics match numpy's FP64 computation on the oracle cases", arguments: [0, 1, 2])
    func oracleCases(index: Int) throws {
        let oracle = try AccuracyOracle.load()
        let c = try #require(oracle.cases.count > index ? oracle.cases[index] : nil)
        let x = try ProbeActivations(values: c.x, rows: c.probe_rows, columns: c.columns)
        let m = try TensorAccuracy.measure(
            original: c.w, decoded: c.w_decoded, rows: c.rows, columns: c.columns, activations: x,
            options: AccuracyOptions(maxCheckedWeights: c.max_checked_weights, blockRows: 5))
        #expect(isClose(m.relativeError, c.relative_error, relative: 1e-4), "\(c.name)")
        #expect(abs(m.sqnrDecibels - c.sqnr_db) < 1e-3, "\(c.name)")
        #expect(abs(m.cosineSimilarity - c.cosine_similarity) < 1e-6, "\(c.name)")
        #expect(isClose(m.maxAbsoluteError, c.max_abs_error, relative: 1e-4), "\(c.name)")
        #expect(isClose(m.relativeWeightError, c.relative_weight_error, relative: 1e-5), "\(c.name)")
        if let rows = c.checked_rows {
            #expect(m.checkedRows == rows.count && m.isSampled)
            #expect(AccuracyOptions(maxCheckedWeights: c.max_checked_weights).checkedRows(rows: c.rows, columns: c.columns) == rows)
        } else {
            #expect(m.checkedRows == c.rows && !m.isSampled)
        }
    }

    @Test("the block size changes nothing but memory", arguments: [1, 7, 64, 4096])
    func blockSizeIndependence(blockRows: Int) throws {
        let w = gaussianWeights(rows: 64, columns: 96, seed: 5)
        let decoded = ReferenceQuantizer.int8(w, rows: 64, columns: 96)
        let x = ProbeActivations.gaussian(rows: 9, columns: 96, outliers: OutlierChannels())
        let reference = try TensorAccuracy.measure(
            original: w, decoded: decoded, rows: 64, columns: 96, activations: x,
            options: AccuracyOptions(blockRows: 64))
        let m = try TensorAccuracy.measure(
            original: w, decoded: decoded, rows: 64, columns: 96, activations: x,
            options: AccuracyOptions(blockRows: blockRows, blasThreads: 1))
        #expect(isClose(m.relativeError, reference.relativeError, relative: 1e-5))
        #expect(isClose(m.relativeWeightError, reference.relativeWeightError, relative: 1e-5))
        // Different row blocks make OpenBLAS sum in a different order: equal to a few ulps, not bit for bit.
        #expect(isClose(m.maxAbsoluteError, reference.maxAbsoluteError, relative: 1e-5))
    }

    @Test("a sampled check equals the full check of the sampled rows, with the parallel difference pass")
    func sampledEqualsExtracted() throws {
        // 600 checked rows × 512 columns is above the size where the difference pass runs in parallel.
        let (rows, columns) = (1200, 512)
        let w = gaussianWeights(rows: rows, columns: columns, seed: 8)
        let decoded = ReferenceQuantizer.int4(w, rows: rows, columns: columns)
        let x = ProbeActivations.gaussian(rows: 8, columns: columns)
        let options = AccuracyOptions(rowFraction: 0.5, blasThreads: 2)
        let picked = try #require(options.checkedRows(rows: rows, columns: columns))
        #expect(picked.count == 600)
        let sampled = try TensorAccuracy.measure(
            original: w, decoded: decoded, rows: rows, columns: columns, activations: x, options: options)
        let pick = { (source: [Float]) in picked.flatMap { source[($0 * columns)..<(($0 + 1) * columns)] } }
        let extracted = try TensorAccuracy.measure(
            original: pick(w), decoded: pick(decoded), rows: picked.count, columns: columns, activations: x,
            options: AccuracyOptions(blasThreads: 1))
        #expect(sampled.isSampled && sampled.checkedRows == 600 && sampled.rows == rows)
        #expect(isClose(sampled.relativeError, extracted.relativeError, relative: 1e-6))
        #expect(isClose(sampled.relativeWeightError, extracted.relativeWeightError, relative: 1e-6))
        #expect(isClose(sampled.cosineSimilarity, extracted.cosineSimilarity, relative: 1e-9))
        // The sampled and extracted products run through different sgemm shapes (and kernels).
        #expect(isClose(sampled.maxAbsoluteError, extracted.maxAbsoluteError, relative: 1e-5))
    }

    @Test("sampling picks evenly spaced rows and flags the result")
    func sampledRows() throws {
        let options = AccuracyOptions(maxCheckedWeights: 4 * 100)
        #expect(options.checkedRows(rows: 10, columns: 100) == [1, 3, 6, 8])
        #expect(options.checkedRows(rows: 4, columns: 100) == nil)
        #expect(AccuracyOptions(maxCheckedWeights: 10).checkedRows(rows: 10, columns: 100) == [5])
        // A row fraction keeps at least 64 rows, and the tighter of the two limits wins.
        #expect(AccuracyOptions(rowFraction: 0.25).checkedRows(rows: 1000, columns: 8)?.count == 250)
        #expect(AccuracyOptions(rowFraction: 0.25).checkedRows(rows: 100, columns: 8)?.count == 64)
        #expect(AccuracyOptions(rowFraction: 0.25).checkedRows(rows: 50, columns: 8) == nil)
        #expect(AccuracyOptions(maxCheckedWeights: 80, rowFraction: 0.25).checkedRows(rows: 1000, columns: 8)?.count == 10)
        #expect(AccuracyOptions(rowFraction: 1).checkedRows(rows: 1000, columns: 8) == nil)
        // A uniform 10 % error is the same on any subset.
        let w = gaussianWeights(rows: 300, columns: 64, seed: 6)
        let m = try TensorAccuracy.measure(
            original: w, decoded: w.map { $0 * 1.1 }, rows: 300, columns: 64, activations: .gaussian(columns: 64),
            options: AccuracyOptions(maxCheckedWeights: 50 * 64))
        #expect(m.checkedRows == 50 && m.isSampled)
        #expect(isClose(m.relativeError, 0.1, relative: 1e-4))
        #expect(isClose(m.cosineSimilarity, 1, relative: 1e-6))
    }

    @Test("buffers that do not match the shape are rejected with accuracyShapeMismatch")
    func shapeMismatch() throws {
        let x = ProbeActivations.gaussian(rows: 2, columns: 4)
        #expect {
            try TensorAccuracy.measure(
                original: [Float](repeating: 1, count: 8), decoded: [Float](repeating: 1, count: 7), rows: 2,
                columns: 4, activations: x, tensorName: "blk.0.attn_q.weight")
        } throws: { ($0 as? FormatError)?.code == .accuracyShapeMismatch && ($0 as? FormatError)?.tensor == "blk.0.attn_q.weight" }
        #expect {
            try TensorAccuracy.measure(
                original: [Float](repeating: 1, count: 10), decoded: [Float](repeating: 1, count: 10), rows: 2,
                columns: 5, activations: x)
        } throws: { ($0 as? FormatError)?.code == .activationShapeMismatch }
        #expect { try ProbeActivations(values: [1, 2, 3], rows: 2, columns: 2) } throws: {
            ($0 as? FormatError)?.code == .activationShapeMismatch
        }
    }
}

@Suite("Probe activations")
struct ProbeActivationTests {
    @Test("SplitMix64 reproduces the reference outputs")
    func splitMix() throws {
        let oracle = try AccuracyOracle.load()
        #expect(oracle.splitmix64.count == 2)
        for reference in oracle.splitmix64 {
            var generator = SplitMix64(seed: reference.seed)
            let outputs = (0..<reference.outputs.count).map { _ in String(generator.next()) }
            #expect(outputs == reference.outputs)
        }
    }

    @Test("Gaussian probes, with and without outlier channels, match the Python reference")
    func gaussianProbe() throws {
        let oracle = try AccuracyOracle.load()
        #expect(oracle.probe.count == 2)
        for reference in oracle.probe {
            let outliers = reference.outlier_count > 0
                ? OutlierChannels(count: reference.outlier_count, magnitude: reference.outlier_magnitude) : nil
            let probe = ProbeActivations.gaussian(
                rows: reference.rows, columns: reference.columns, seed: reference.seed, outliers: outliers)
            #expect(probe.kind == (outliers == nil ? .gaussian : .gaussianOutliers))
            #expect(probe.values.count == reference.values.count)
            for (a, b) in zip(probe.values, reference.values) {
                // libm's log/sin/cos may differ by an ulp between platforms; rounding to Float hides it.
                #expect(abs(a - b) <= 2 * b.ulp, "\(a) vs \(b)")
            }
        }
    }

    @Test("the probe source prefers named, then shared, then generated activations")
    func sourceLookup() throws {
        let named = try ProbeActivations(values: [Float](repeating: 1, count: 8), rows: 2, columns: 4)
        let shared = try ProbeActivations(values: [Float](repeating: 2, count: 6), rows: 2, columns: 3)
        let source = ProbeActivationSource(rows: 5, named: ["model.layers.0.mlp.up_proj": named], shared: shared)
        #expect(try source.activations(forTensor: "model.layers.0.mlp.up_proj.weight", columns: 4) == named)
        #expect(try source.activations(forTensor: "model.layers.1.mlp.up_proj.weight", columns: 3) == shared)
        let generated = try source.activations(forTensor: "model.layers.1.mlp.down_proj.weight", columns: 6)
        #expect(generated.kind == .gaussian && generated.rows == 5 && generated.columns == 6)
        #expect(try source.activations(forTensor: "another", columns: 6) == generated)
        #expect { try source.activations(forTensor: "model.layers.0.mlp.up_proj.weight", columns: 5) } throws: {
            ($0 as? FormatError)?.code == .activationShapeMismatch
        }
    }
}

@Suite("Accuracy thresholds")
struct AccuracyThresholdTests {
    @Test("every scheme has exactly one threshold, above both of its measurements")
    func tableCoversSchemes() {
        for scheme in SchemeName.allCases {
            let lines = AccuracyThresholds.table.filter { $0.scheme == scheme }
            #expect(lines.count == 1, "\(scheme)")
            if let line = lines.first {
                #expect(line.maxRelativeError > line.measuredHeavyTailed && line.measuredHeavyTailed >= line.measuredGaussian)
            }
        }
        #expect(AccuracyThresholds.maxRelativeError(forSchemeNamed: "Q4_K") == AccuracyThresholds.maxRelativeError(for: .q4_K))
        #expect(AccuracyThresholds.maxRelativeError(forSchemeNamed: "int8", override: 0.5) == 0.5)
        #expect(AccuracyThresholds.maxRelativeError(forSchemeNamed: "q8_k") == nil)
    }

    @Test("correct reference decoders pass their scheme's threshold", arguments: ["int8", "int4", "bf16"])
    func correctDecodersPass(scheme: String) throws {
        let (rows, columns) = (64, 512)
        let w = gaussianWeights(rows: rows, columns: columns, seed: 11)
        let decoded: [Float]
        switch scheme {
        case "int8": decoded = ReferenceQuantizer.int8(w, rows: rows, columns: columns)
        case "int4": decoded = ReferenceQuantizer.int4(w, rows: rows, columns: columns)
        default: decoded = ReferenceQuantizer.bf16(w)
        }
        let m = try TensorAccuracy.measure(
            original: w, decoded: decoded, rows: rows, columns: columns,
            activations: .gaussian(columns: columns, outliers: OutlierChannels()))
        let entry = AccuracyReport.Entry(name: "model.layers.0.mlp.down_proj.weight", scheme: scheme, accuracy: m)
        #expect(entry.passed, "\(scheme): \(m.relativeError) over \(entry.threshold ?? 0)")
    }

    @Test("a decoder whose scales are off by 2× is flagged over the threshold and fails the report")
    func brokenDecoderIsCaught() throws {
        let (rows, columns) = (64, 512)
        let w = gaussianWeights(rows: rows, columns: columns, seed: 12)
        let probe = ProbeActivations.gaussian(columns: columns)
        let good = try TensorAccuracy.measure(
            original: w, decoded: ReferenceQuantizer.int8(w, rows: rows, columns: columns), rows: rows,
            columns: columns, activations: probe)
        let broken = try TensorAccuracy.measure(
            original: w, decoded: ReferenceQuantizer.int8(w, rows: rows, columns: columns, scaleFactor: 2), rows: rows,
            columns: columns, activations: probe)
        #expect(isClose(broken.relativeError, 1, relative: 0.02))  // Ŵ ≈ 2W
        #expect(broken.relativeWeightError > 0.9)
        let report = AccuracyReport(tensors: [
            AccuracyReport.Entry(name: "model.layers.0.self_attn.q_proj.weight", scheme: "int8", accuracy: good),
            AccuracyReport.Entry(name: "model.layers.0.self_attn.k_proj.weight", scheme: "int8", accuracy: broken),
        ])
        #expect(!report.passed)
        #expect(report.failedCount == 1)
        #expect(report.worstTensor == "model.layers.0.self_attn.k_proj.weight")
        // --max-error 2 lets even the broken one through.
        let lenient = AccuracyReport(tensors: [
            AccuracyReport.Entry(
                name: "k", scheme: "int8", accuracy: broken,
                threshold: AccuracyThresholds.maxRelativeError(forSchemeNamed: "int8", override: 2)),
        ])
        #expect(lenient.passed)
    }
}
