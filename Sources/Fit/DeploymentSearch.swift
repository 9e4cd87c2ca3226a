import Foundation

/// One plan of the deployer's search (`quantize fit MODEL --users N --slo-tps X --slo-ttft Y`).
public struct DeploymentPlan: Sendable {
    /// The plan.
    public var result: FitResult
    /// Whether it meets every objective given.
    public var meetsObjectives: Bool
    /// Why it misses (nil when it meets them).
    public var miss: String?
    /// The measured mean KL divergence of its variant, when an accuracy report gave one.
    public var klDivergence: Double?
}

/// Searches hardware × count × variant × engine for the plans that serve `users` at the objectives,
/// cheapest first by $ per million output tokens.
public enum DeploymentSearch {
    /// The engines tried on `hardware`: vLLM everywhere but CPUs, TensorRT-LLM on NVIDIA GPUs, llama.cpp on CPUs.
    public static func engines(for hardware: Hardware) throws -> [EngineProfile] {
        switch hardware.kind {
        case .cpu: return [try Engines.named("llamacpp")]
        case .gpu where hardware.displayName.hasPrefix("NVIDIA"): return [try Engines.named("vllm"), try Engines.named("trtllm")]
        default: return [try Engines.named("vllm")]
        }
    }

    /// The variants tried with `engine`: the overview's four for tensor-parallel engines, q8_0 and q4_k for llama.cpp.
    public static func variants(for engine: EngineProfile) throws -> [Variant] {
        try (engine.memoryRule == .llamacpp ? ["q8_0", "q4_k"] : Variant.overview).map(Variant.parse)
    }

    /// How experts are spread in the search: a mixture of experts on a tensor-splitting engine is
    /// tried both tensor-parallel and expert-parallel (unless the caller's request asks for expert
    /// parallelism, which is then the only one); everything else as the caller's request says.
    static func splits(hardware: Hardware, variant: Variant, engine: EngineProfile,
                       request: (DeviceSelection, Variant, EngineProfile) throws -> FitRequest) throws -> [Bool] {
        let probe = try request(DeviceSelection(hardware: hardware, count: 1), variant, engine)
        guard probe.model.isMixtureOfExperts, engine.splitMode == .tensor, hardware.kind != .cpu, !probe.expertParallel else { return [probe.expertParallel] }
        return [false, true]
    }

    /// Every priced plan that runs `users` without offloading, cheapest first among those meeting
    /// the objectives, then the rest cheapest first.
    /// - Parameter request: builds the request for a selection, variant and engine (the caller's options, concurrency `users`).
    /// - Parameter accuracy: mean KL divergence by variant name (from `quantize eval --json`).
    public static func search(catalog: HardwareCatalog, users: Int, tokensPerSecond: Double?, ttft: Double?, accuracy: [String: Double] = [:],
                              request: (DeviceSelection, Variant, EngineProfile) throws -> FitRequest) throws -> [DeploymentPlan] {
        var plans: [DeploymentPlan] = []
        for hardware in catalog.hardware {
            for engine in try engines(for: hardware) {
                for variant in try variants(for: engine) {
                    for split in try splits(hardware: hardware, variant: variant, engine: engine, request: request) {
                    for count in FitPlanner.overviewCounts(for: hardware) {
                        var fitRequest = try request(DeviceSelection(hardware: hardware, count: count), variant, engine)
                        fitRequest.expertParallel = split
                        // Counts TP cannot take run as TP × PP; those no parallelism takes are skipped.
                        if (try? FitPlanner.parallelism(fitRequest)) == nil { continue }
                        fitRequest.offload = .none
                        fitRequest.concurrency = .count(users)
                        let result = try FitPlanner.plan(fitRequest)
                        guard result.fits, result.costPerMillionTokens != nil, let load = result.load, let throughput = result.throughput else { continue }
                        var misses: [String] = []
                        if let tokensPerSecond, throughput.tokensPerSecondPerUser < tokensPerSecond {
                            misses.append(String(format: "%.1f tok/s each < %.1f", throughput.tokensPerSecondPerUser, tokensPerSecond))
                        }
                        if let ttft, load.ttftSeconds > ttft {
                            misses.append(String(format: "TTFT %.2f s > %.2f s", load.ttftSeconds, ttft) + (load.queued > 0 ? " (\(load.queued) queued)" : ""))
                        }
                        plans.append(DeploymentPlan(result: result, meetsObjectives: misses.isEmpty, miss: misses.isEmpty ? nil : misses.joined(separator: ", "),
                                                    klDivergence: accuracy[variant.name]))
                        // A larger count of the same device and variant only costs more once this one meets the objectives.
                        if misses.isEmpty { break }
                    }
                    }
                }
            }
        }
        return plans.sorted { a, b in
            if a.meetsObjectives != b.meetsObjectives { return a.meetsObjectives }
            return (a.result.costPerMillionTokens ?? .infinity) < (b.result.costPerMillionTokens ?? .infinity)
        }
    }

    /// Why `second` ranks below `first` (both meeting the objectives), in words.
    public static func whyRunnerUpLost(first: DeploymentPlan, second: DeploymentPlan) -> String {
        let a = first.result, b = second.result
        guard let costA = a.costPerMillionTokens, let costB = b.costPerMillionTokens,
              let tA = a.throughput?.outputTokensPerSecond, let tB = b.throughput?.outputTokensPerSecond,
              let pA = a.pricePerHour, let pB = b.pricePerHour else { return "it has no price" }
        let hourA = pA * Double(a.deviceCount), hourB = pB * Double(b.deviceCount)
        var reason = String(format: "runner-up %@ %@ on %@ (%@) costs $%.3f vs $%.3f per million tokens (%.0f %% more): $%.2f/h for %.0f tok/s against $%.2f/h for %.0f tok/s",
                            b.variant, b.engine, b.hardware, b.parallelism.summary, costB, costA, (costB / costA - 1) * 100, hourB, tB, hourA, tA)
        if let klA = first.klDivergence, let klB = second.klDivergence {
            reason += String(format: "; its measured KL divergence is %.4g vs %.4g", klB, klA)
        }
        return reason
    }

    /// Mean KL divergence by variant from a `quantize eval --json` document (formats/eval.md):
    /// each `results[].path` is matched to the longest of `variants` its last path component contains.
    public static func accuracy(report path: String, variants: [String]) throws -> [String: Double] {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else {
            throw FitError(.unreadable, path: path, message: "cannot read the accuracy report", remedy: "give the file `quantize eval --json` wrote")
        }
        guard let document = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let results = document["results"] as? [[String: Any]] else {
            throw FitError(.invalidRequest, path: path, message: "not a `quantize eval --json` document (no results array)", remedy: "give the file `quantize eval --json` wrote (formats/eval.md)")
        }
        var found: [String: Double] = [:]
        for (index, item) in results.enumerated() {
            guard let file = item["path"] as? String, let kld = (item["kld"] as? [String: Any])?["mean"] as? NSNumber else {
                throw FitError(.invalidRequest, path: path, entry: "results[\(index)]", message: "a result needs path and kld.mean", remedy: "give the file `quantize eval --json` wrote (formats/eval.md)")
            }
            let name = URL(fileURLWithPath: file).lastPathComponent.lowercased().replacingOccurrences(of: "_", with: "-")
            let candidates = variants.filter { name.contains($0.lowercased().replacingOccurrences(of: "_", with: "-")) }
            if let variant = candidates.max(by: { $0.count < $1.count }) { found[variant] = kld.doubleValue }
        }
        return found
    }
}
