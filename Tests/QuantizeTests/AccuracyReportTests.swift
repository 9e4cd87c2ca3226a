import Foundation
import Quantize
import TestSupport
import Testing

/// A small "model" (4 blocks of q/k/v/o/gate/up/down plus an embedding and a head) checked with
/// the reference quantizers of one scheme.
func checkedModel(scheme: String, blocks: Int = 4) throws -> AccuracyReport {
    let (rows, columns) = (32, 256)
    let source = ProbeActivationSource(rows: 16, outliers: OutlierChannels())
    var names = ["model.embed_tokens.weight", "lm_head.weight"]
    for block in 0..<blocks {
        for part in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
            "mlp.up_proj", "mlp.down_proj"]
        {
            names.append("model.layers.\(block).\(part).weight")
        }
    }
    var entries: [AccuracyReport.Entry] = []
    for (i, name) in names.enumerated() {
        let w = gaussianWeights(rows: rows, columns: columns, seed: UInt64(100 + i))
        let decoded: [Float]
        let bytes: Int
        switch scheme {
        case "int8":
            decoded = ReferenceQuantizer.int8(w, rows: rows, columns: columns)
            bytes = rows * columns + rows * 2
        case "int4":
            decoded = ReferenceQuantizer.int4(w, rows: rows, columns: columns)
            bytes = rows * columns / 2 + rows * (columns / 128) * 2
        default:
            decoded = ReferenceQuantizer.bf16(w)
            bytes = rows * columns * 2
        }
        let m = try TensorAccuracy.measure(
            original: w, decoded: decoded, rows: rows, columns: columns,
            activations: try source.activations(forTensor: name, columns: columns), storedByteCount: bytes,
            tensorName: name)
        entries.append(AccuracyReport.Entry(name: name, scheme: scheme, accuracy: m))
    }
    return AccuracyReport(tensors: entries, probe: AccuracyReport.Probe(source: source))
}

@Suite("Accuracy report")
struct AccuracyReportTests {
    static let perfect = TensorAccuracy(
        rows: 4, columns: 8, checkedRows: 4, probeRows: 64, probe: .gaussian, relativeError: 0,
        sqnrDecibels: .infinity, cosineSimilarity: 1, maxAbsoluteError: 0, relativeWeightError: 0, bitsPerWeight: 16)
    static let hopeless = TensorAccuracy(
        rows: 4, columns: 8, checkedRows: 2, probeRows: 64, probe: .file, relativeError: .infinity,
        sqnrDecibels: -.infinity, cosineSimilarity: 0, maxAbsoluteError: .infinity, relativeWeightError: .infinity)

    @Test("JSON round-trips, with infinities written as null and no NaN or Infinity literal")
    func jsonRoundTrip() throws {
        var report = try checkedModel(scheme: "int8", blocks: 1)
        report = AccuracyReport(
            tensors: report.tensors + [
                AccuracyReport.Entry(name: "model.layers.0.mlp.experts.3.w2.weight", scheme: "f16", accuracy: Self.perfect),
                AccuracyReport.Entry(name: "blk.0.ffn_down.weight", scheme: "q4_0", accuracy: Self.hopeless),
            ], probe: report.probe)
        let data = try report.jsonData()
        let text = try #require(String(data: data, encoding: .utf8))
        #expect(!text.contains("NaN") && !text.contains("Infinity") && !text.contains("inf"))
        #expect(try AccuracyReport.decode(from: data) == report)
        #expect(try report.jsonData() == data)  // deterministic
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["schema"] as? String == "quantize.accuracy-report")
        #expect(object["schema_version"] as? Int == 1)
        #expect(object["passed"] as? Bool == false)
        #expect(object["sampled"] as? Bool == true)
        let tensors = try #require(object["tensors"] as? [[String: Any]])
        let perfect = try #require(tensors.first { $0["scheme"] as? String == "f16" })
        #expect(perfect["sqnr_db"] is NSNull)
        #expect(perfect["relative_error"] as? Double == 0)
        #expect(perfect["expert_index"] as? Int == 3)
        #expect(perfect["layer_type"] as? String == "down")
        let hopeless = try #require(tensors.first { $0["scheme"] as? String == "q4_0" })
        #expect(hopeless["relative_error"] is NSNull && hopeless["passed"] as? Bool == false)
        #expect(hopeless["sampled"] as? Bool == true && hopeless["rows_checked"] as? Int == 2)
    }

    @Test("TensorAccuracy alone round-trips through JSON, infinities included")
    func metricsRoundTrip() throws {
        for metrics in [Self.perfect, Self.hopeless] {
            let data = try JSONEncoder().encode(metrics)
            #expect(try JSONDecoder().decode(TensorAccuracy.self, from: data) == metrics)
            let text = try #require(String(data: data, encoding: .utf8))
            #expect(text.contains("\"sqnr_db\":null"))
        }
    }

    @Test("the documented example in formats/accuracy-report.md decodes and has exactly the keys we write")
    func documentedSchema() throws {
        let doc = try String(contentsOfFile: Fixtures.repositoryRoot.appendingPathComponent("formats/accuracy-report.md").path, encoding: .utf8)
        let start = try #require(doc.range(of: "```json\n"))
        let end = try #require(doc.range(of: "\n```", range: start.upperBound..<doc.endIndex))
        let example = Data(doc[start.upperBound..<end.lowerBound].utf8)
        let decoded = try AccuracyReport.decode(from: example)
        #expect(!decoded.tensors.isEmpty)
        func keys(_ data: Data) throws -> (top: Set<String>, tensor: Set<String>, summary: Set<String>, probe: Set<String>) {
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let tensor = try #require((object["tensors"] as? [[String: Any]])?.first)
            let summary = try #require((object["summary"] as? [[String: Any]])?.first)
            let probe = try #require(object["probe"] as? [String: Any])
            return (Set(object.keys), Set(tensor.keys), Set(summary.keys), Set(probe.keys))
        }
        let documented = try keys(example)
        let written = try keys(try checkedModel(scheme: "int4", blocks: 1).jsonData())
        #expect(documented.top == written.top)
        #expect(documented.tensor == written.tensor)
        #expect(documented.summary == written.summary)
        #expect(documented.probe == written.probe)
    }

    @Test("the summary groups by layer type and names the worst tensor of each")
    func summaryByLayerType() throws {
        let report = try checkedModel(scheme: "int4")
        #expect(report.passed && report.failedCount == 0 && !report.sampled)
        let types = report.summary.map(\.layerType)
        #expect(types == [.embedding, .query, .key, .value, .attentionOutput, .gate, .up, .down, .outputHead])
        let q = try #require(report.summary.first { $0.layerType == .query })
        #expect(q.count == 4 && q.failedCount == 0)
        let qErrors = report.tensors.filter { $0.layerType == .query }.map(\.accuracy.relativeError)
        #expect(q.maxRelativeError == qErrors.max())
        #expect(q.worstTensor == report.tensors.first { $0.accuracy.relativeError == qErrors.max() }?.name)
        #expect(isClose(try #require(q.bitsPerWeight), 4.125, relative: 1e-9))
        #expect(report.worstTensor == AccuracyReport.worstFirst(report.tensors).first?.name)
    }

    @Test("the text table lists the worst tensor first, then the summary and the verdict")
    func textTable() throws {
        let report = AccuracyReport(tensors: [
            AccuracyReport.Entry(name: "blk.0.attn_q.weight", scheme: "q8_0", accuracy: Self.perfect),
            AccuracyReport.Entry(name: "blk.1.attn_k.weight", scheme: "q8_0", accuracy: Self.hopeless),
        ])
        let text = report.textTable()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("tensor"))
        #expect(lines[1].hasPrefix("blk.1.attn_k.weight *") && lines[1].hasSuffix("FAIL"))
        #expect(lines[2].hasPrefix("blk.0.attn_q.weight") && lines[2].hasSuffix("ok"))
        #expect(text.contains("worst tensor: blk.1.attn_k.weight [q8_0] relative error inf"))
        #expect(text.contains("accuracy check FAILED: 1 of 2 tensors over their limits"))
        let limited = report.textTable(limit: 1)
        #expect(limited.contains("… 1 more tensors"))
    }

    @Test("the HTML page is self-contained: no script, no http reference, inline SVG, escaped names")
    func htmlSelfContained() throws {
        let reports = try ["bf16", "int8", "int4"].map { try checkedModel(scheme: $0) }
        var tricky = reports[2]
        tricky = AccuracyReport(
            tensors: tricky.tensors + [
                AccuracyReport.Entry(name: "model.layers.2.<odd>&\"name\".weight", scheme: "int4", accuracy: Self.hopeless)
            ], probe: tricky.probe)
        let html = AccuracyReport.html(reports: [reports[0], reports[1], tricky], title: "tiny model")
        #expect(!html.lowercased().contains("<script"))
        #expect(!html.lowercased().contains("http"))
        #expect(!html.contains("src="))
        #expect(html.components(separatedBy: "<svg").count - 1 == 4)  // 3 per-layer charts + bits chart
        #expect(html.contains("model.layers.2.&lt;odd&gt;&amp;&quot;name&quot;.weight"))
        #expect(!html.contains("<odd>"))
        #expect(html.contains("FAILED"))
        if let keep = ProcessInfo.processInfo.environment["QUANTIZE_KEEP_HTML"] {
            try html.write(toFile: keep, atomically: true, encoding: .utf8)
        }
    }
}

@Suite("Layer types")
struct LayerTypeTests {
    @Test(
        "tensor names classify into layer type, block and expert",
        arguments: [
            ("model.layers.12.self_attn.q_proj.weight", LayerType.query, 12, nil),
            ("model.layers.0.self_attn.k_proj.weight", .key, 0, nil),
            ("model.layers.3.self_attn.v_proj.weight", .value, 3, nil),
            ("model.layers.3.self_attn.o_proj.weight", .attentionOutput, 3, nil),
            ("model.layers.7.mlp.gate_proj.weight", .gate, 7, nil),
            ("model.layers.7.mlp.up_proj.weight", .up, 7, nil),
            ("model.layers.7.mlp.down_proj.weight", .down, 7, nil),
            ("model.layers.1.mlp.gate_up_proj.weight", .gateUp, 1, nil),
            ("model.layers.1.self_attn.qkv_proj.weight", .queryKeyValue, 1, nil),
            ("model.layers.5.block_sparse_moe.experts.2.w1.weight", .gate, 5, 2),
            ("model.layers.5.block_sparse_moe.experts.2.w2.weight", .down, 5, 2),
            ("model.layers.5.block_sparse_moe.experts.2.w3.weight", .up, 5, 2),
            ("model.layers.5.block_sparse_moe.gate.weight", .router, 5, nil),
            ("model.layers.5.mlp.experts.17.down_proj.weight", .down, 5, 17),
            ("model.layers.5.mlp.gate.weight", .router, 5, nil),
            ("model.layers.2.self_attn.kv_a_proj_with_mqa.weight", .keyValue, 2, nil),
            ("model.layers.2.self_attn.q_b_proj.weight", .query, 2, nil),
            ("model.layers.4.self_attn.q_proj.weight_packed", .query, 4, nil),
            ("model.embed_tokens.weight", .embedding, nil, nil),
            ("lm_head.weight", .outputHead, nil, nil),
            ("model.norm.weight", .other, nil, nil),
            ("model.layers.0.input_layernorm.weight", .other, 0, nil),
            ("blk.0.attn_q.weight", .query, 0, nil),
            ("blk.10.attn_k.weight", .key, 10, nil),
            ("blk.10.attn_v.weight", .value, 10, nil),
            ("blk.10.attn_output.weight", .attentionOutput, 10, nil),
            ("blk.31.ffn_gate.weight", .gate, 31, nil),
            ("blk.31.ffn_up.weight", .up, 31, nil),
            ("blk.31.ffn_down.weight", .down, 31, nil),
            ("blk.3.ffn_down_exps.weight", .down, 3, nil),
            ("blk.3.ffn_gate_inp.weight", .router, 3, nil),
            ("blk.0.attn_qkv.weight", .queryKeyValue, 0, nil),
            ("token_embd.weight", .embedding, nil, nil),
            ("output.weight", .outputHead, nil, nil),
            ("output_norm.weight", .other, nil, nil),
            ("transformer.h.4.attn.c_attn.weight", .queryKeyValue, 4, nil),
            ("transformer.h.4.attn.c_proj.weight", .attentionOutput, 4, nil),
            ("transformer.h.4.mlp.c_proj.weight", .down, 4, nil),
            ("transformer.h.4.mlp.c_fc.weight", .up, 4, nil),
            ("gpt_neox.layers.9.attention.query_key_value.weight", .queryKeyValue, 9, nil),
            ("gpt_neox.layers.9.attention.dense.weight", .attentionOutput, 9, nil),
            ("gpt_neox.layers.9.mlp.dense_4h_to_h.weight", .down, 9, nil),
            ("layers.0.attention.wq.weight", .query, 0, nil),
            ("layers.0.feed_forward.w2.weight", .down, 0, nil),
        ] as [(String, LayerType, Int?, Int?)])
    func classify(name: String, type: LayerType, index: Int?, expert: Int?) {
        let layer = LayerName(tensorName: name)
        #expect(layer.type == type)
        #expect(layer.index == index)
        #expect(layer.expert == expert)
    }
}
