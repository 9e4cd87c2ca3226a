import Foundation

/// How the devices of a request share the model (the JSON `parallelism` object; formats/fit-output.md §Parallelism).
///
/// Tensor-splitting engines (vLLM, TensorRT-LLM) use tensor parallelism when the heads divide over
/// the devices; a count they do not divide runs as TP × PP (pipeline stages of consecutive layers,
/// the largest TP the heads take that divides the count). With `expertParallel` a mixture of experts
/// runs data-parallel attention with whole experts spread over the devices (vLLM
/// `--data-parallel-size N --enable-expert-parallel`). Layer-split engines (llama.cpp,
/// transformers) run every device's layers one after another: PP = count with a single micro-batch.
public struct Parallelism: Codable, Sendable, Hashable {
    /// Tensor-parallel degree (ranks that split every weight matrix of a stage).
    public var tensor: Int
    /// Pipeline stages (consecutive layer groups); 1 without a pipeline.
    public var pipeline: Int
    /// Expert-parallel ranks (whole experts spread over them, attention data-parallel); 1 without.
    public var expert: Int
    /// Layers of the largest pipeline stage (all layers without a pipeline).
    public var layersPerStage: Int
    /// `TP 2`, `TP 1 × PP 3`, `EP 4 (attention DP 4)`, `layer split over 2`.
    public var summary: String

    /// Creates a plan from its parts (``plan(model:engine:count:expertParallel:label:isCPU:)`` makes the ones the planner uses).
    public init(tensor: Int, pipeline: Int, expert: Int, layersPerStage: Int, summary: String) {
        self.tensor = tensor
        self.pipeline = pipeline
        self.expert = expert
        self.layersPerStage = layersPerStage
        self.summary = summary
    }

    /// Devices a step's work is spread over at the same time within one stage.
    var tensorDegree: Int { tensor }

    /// Whether the engine pipelines micro-batches through tensor-parallel stages (vLLM/TRT-LLM PP > 1).
    var isPipelined: Bool { pipeline > 1 && expert == 1 && summary.hasPrefix("TP") }

    /// The plan for `count` devices of `engine` running `model`.
    /// - Throws: `invalidRequest` with the counts that work when neither TP, TP × PP nor (with
    ///   `expertParallel`) EP can take `count`.
    public static func plan(model: ModelShape, engine: EngineProfile, count: Int, expertParallel: Bool, label: String, isCPU: Bool = false) throws -> Parallelism {
        let layers = model.layerCount
        if engine.splitMode == .layer || isCPU {
            if expertParallel {
                throw FitError(.invalidRequest, path: label, message: "--expert-parallel needs an engine that splits tensors (vllm, trtllm); \(engine.name) splits layers",
                               remedy: "drop --expert-parallel or use --engine vllm")
            }
            return Parallelism(tensor: 1, pipeline: count, expert: 1, layersPerStage: (layers + count - 1) / count,
                               summary: count > 1 ? "layer split over \(count)" : "TP 1")
        }
        if expertParallel {
            guard model.isMixtureOfExperts else {
                throw FitError(.invalidRequest, path: label, message: "--expert-parallel needs a mixture-of-experts model; \(model.name) is dense",
                               remedy: "drop --expert-parallel")
            }
            guard count >= 2, model.expertCount % count == 0 else {
                let valid = (2...max(2, min(model.expertCount, 64))).filter { model.expertCount % $0 == 0 }
                throw FitError(.invalidRequest, path: label,
                               message: "expert parallelism over \(count) devices needs the \(model.expertCount) experts to divide evenly over at least 2 of them",
                               remedy: "use a device count from \(valid.prefix(8).map(String.init).joined(separator: ", ")), or drop --expert-parallel")
            }
            return Parallelism(tensor: 1, pipeline: 1, expert: count, layersPerStage: layers, summary: "EP \(count) (attention DP \(count))")
        }
        if FitPlanner.tensorParallelProblem(model: model, count: count) == nil {
            return Parallelism(tensor: count, pipeline: 1, expert: 1, layersPerStage: layers, summary: "TP \(count)")
        }
        let problem = FitPlanner.tensorParallelProblem(model: model, count: count) ?? ""
        let valid = FitPlanner.validTensorParallelCounts(model: model, upTo: max(8, count))
        guard engine.supportsPipelineParallel ?? true else {
            throw FitError(.invalidRequest, path: label, message: problem + "; \(engine.name) has no pipeline parallelism",
                           remedy: "use a device count from \(valid.map(String.init).joined(separator: ", ")), or --engine vllm (TP × PP)")
        }
        // The largest tensor-parallel degree the heads take that divides the count; the rest are stages.
        guard let tensor = valid.filter({ count % $0 == 0 && count / $0 <= layers }).max() else {
            throw FitError(.invalidRequest, path: label, message: problem + ", and \(count) pipeline stages exceed the \(layers) layers",
                           remedy: "use a device count from \(valid.map(String.init).joined(separator: ", "))")
        }
        let pipeline = count / tensor
        return Parallelism(tensor: tensor, pipeline: pipeline, expert: 1, layersPerStage: (layers + pipeline - 1) / pipeline,
                           summary: "TP \(tensor) × PP \(pipeline)")
    }

    /// Expected largest number of distinct experts one of `ranks` devices reads in a step that routes
    /// `tokens` tokens, each to `perToken` of `experts`, with `experts ÷ ranks` experts per device:
    /// every local expert is touched with probability 1 − (1 − k/E)^tokens (independently, an
    /// approximation), so a device's count is Binomial(E/ranks, p) and E[max] = Σⱼ (1 − F(j − 1)^ranks).
    public static func expectedBusiestExperts(experts: Int, perToken: Int, ranks: Int, tokens: Double) -> Double {
        let local = experts / max(ranks, 1)
        guard local > 0 else { return 0 }
        var p = 1 - pow(1 - Double(perToken) / Double(experts), max(tokens, 1))
        if p > 1 - 1e-12 { p = 1 }
        if ranks == 1 { return Double(local) * p }
        // Binomial probabilities by the recurrence (local ≤ a few hundred experts).
        var probability = pow(1 - p, Double(local))
        var cumulative = 0.0
        var expected = 0.0
        for j in 0..<local {
            cumulative += probability
            expected += 1 - pow(min(cumulative, 1), Double(ranks))
            if p < 1 { probability *= Double(local - j) / Double(j + 1) * p / (1 - p) } else { probability = j + 1 == local ? 1 : 0 }
        }
        return expected
    }
}
