import Foundation

/// The load the overview table and the side-by-side table price a plan at (the JSON `typicalLoad`
/// object; formats/fit-output.md §Typical load): as many users as the KV cache and the engine's batch
/// limit hold while each still sees at least `tokensPerSecondPerUser` and a TTFT (idle prefill plus
/// one loaded step) of at most `ttftSeconds`.
public struct TypicalLoad: Codable, Sendable, Hashable {
    /// The per-user speed floor when `--slo-tps` is not given: 10 tok/s, above reading speed
    /// (about 4–5 words, 6–7 tokens, a second) with room to spare.
    public static let defaultTokensPerSecond = 10.0
    /// The TTFT bound when `--slo-ttft` is not given: 2 s, MLPerf Inference's Llama-2-70B server-scenario TTFT limit.
    public static let defaultTTFTSeconds = 2.0

    /// The speed each user must see, tokens per second.
    public var tokensPerSecondPerUser: Double
    /// The longest time to first token, seconds.
    public var ttftSeconds: Double
    /// Users served at once under both bounds (0: not even one user meets them; the plan's figures are then for one user).
    public var users: Int
    /// What stops more users: `speed floor`, `ttft`, `kv cache`, `batch limit`; for 0 users, which bound one user misses.
    public var limitedBy: String
    /// Sequences of the request's context the KV cache holds at once, for reference (not a number of users one can serve).
    public var kvUsers: Int
    /// Tokens per second each user sees at this load (steady serving, prompts interleaved).
    public var servedTokensPerSecondPerUser: Double
    /// Output tokens per second of all users at this load.
    public var outputTokensPerSecond: Double
    /// Dollars per million output tokens at this load (nil without a price; for one user when `users` is 0).
    public var costPerMillionTokens: Double?

    /// The rule in words, for table headers.
    public var rule: String {
        "users = most that each get ≥ \(Self.format(tokensPerSecondPerUser)) tok/s with TTFT ≤ \(Self.format(ttftSeconds)) s, up to what the KV cache and batch limit hold"
    }

    /// A bound as written in text: whole numbers without decimals (`10`, `2`, `0.5`).
    public static func format(_ value: Double) -> String { value == value.rounded() ? String(format: "%.0f", value) : String(format: "%g", value) }
}

extension FitPlanner {
    /// `request` planned at its typical load: the most users that meet both bounds (at least one is
    /// planned, so a plan whose single user misses them still shows that user's figures).
    /// - Throws: what ``plan(_:)`` throws.
    public static func atTypicalLoad(_ request: FitRequest, tokensPerSecond: Double = TypicalLoad.defaultTokensPerSecond,
                                     ttft: Double = TypicalLoad.defaultTTFTSeconds) throws -> FitResult {
        var probe = request
        probe.concurrency = .max
        probe.sloTokensPerSecond = tokensPerSecond
        probe.sloTTFTSeconds = ttft
        let saturated = try plan(probe)
        guard saturated.fits, let slo = saturated.slo, let atMax = saturated.load else { return saturated }
        let users = slo.maxUsers
        var planned = probe
        planned.concurrency = .count(max(users, 1))
        var result = try plan(planned)
        let limitedBy: String
        if users == 0 {
            let one = result
            let speed = one.throughput?.tokensPerSecondPerUser ?? 0
            limitedBy = speed < tokensPerSecond ? String(format: "speed floor: one user gets %.2f tok/s", speed)
                : String(format: "ttft: one user waits %.2f s", one.load?.ttftSeconds ?? 0)
        } else if users >= atMax.inFlight {
            limitedBy = atMax.inFlight >= request.engine.maxSequences * saturated.parallelism.expert ? "batch limit" : "kv cache"
        } else {
            var next = probe
            next.concurrency = .count(users + 1)
            let more = try plan(next)
            limitedBy = (more.throughput?.tokensPerSecondPerUser ?? 0) < tokensPerSecond ? "speed floor" : "ttft"
        }
        result.typicalLoad = TypicalLoad(tokensPerSecondPerUser: tokensPerSecond, ttftSeconds: ttft, users: users, limitedBy: limitedBy,
                                         kvUsers: saturated.maxConcurrency,
                                         servedTokensPerSecondPerUser: result.throughput?.tokensPerSecondPerUser ?? 0,
                                         outputTokensPerSecond: result.throughput?.outputTokensPerSecond ?? 0,
                                         costPerMillionTokens: result.costPerMillionTokens)
        return result
    }

    /// The plan of `hardware` priced at its typical load, at the count of ``overviewCounts(for:)`` that
    /// serves it cheapest: the lowest $ per million output tokens among counts whose typical load is
    /// at least one user; without a price, the most output tokens per second per device; when no
    /// count meets the bounds, the smallest count that fits; nil when no count can be planned.
    /// Counts tensor parallelism cannot take run as TP × PP; those no parallelism takes are skipped; a
    /// mixture of experts is tried both tensor- and expert-parallel at each count of two or more.
    /// - Parameter request: the request for a device selection (the caller's options).
    public static func cheapestAtTypicalLoad(on hardware: Hardware, tokensPerSecond: Double = TypicalLoad.defaultTokensPerSecond,
                                             ttft: Double = TypicalLoad.defaultTTFTSeconds,
                                             request: (DeviceSelection) throws -> FitRequest) throws -> FitResult? {
        var results: [FitResult] = []
        for count in overviewCounts(for: hardware) {
            var fitRequest = try request(DeviceSelection(hardware: hardware, count: count))
            fitRequest.offload = .none
            // A mixture of experts on a tensor-splitting engine is also tried expert-parallel (the deployer's search does the same).
            var splits = [fitRequest.expertParallel]
            if fitRequest.model.isMixtureOfExperts, fitRequest.engine.splitMode == .tensor, hardware.kind != .cpu, !fitRequest.expertParallel, count > 1 {
                splits.append(true)
            }
            for split in splits {
                var candidate = fitRequest
                candidate.expertParallel = split
                guard (try? parallelism(candidate)) != nil else { continue }
                results.append(try atTypicalLoad(candidate, tokensPerSecond: tokensPerSecond, ttft: ttft))
            }
        }
        let serving = results.filter { $0.fits && ($0.typicalLoad?.users ?? 0) >= 1 }
        let priced = serving.filter { $0.costPerMillionTokens != nil }
        if let best = priced.min(by: { ($0.costPerMillionTokens ?? .infinity) < ($1.costPerMillionTokens ?? .infinity) }) { return best }
        func perDevice(_ r: FitResult) -> Double { (r.throughput?.outputTokensPerSecond ?? 0) / Double(r.deviceCount) }
        if let best = serving.max(by: { perDevice($0) < perDevice($1) }) { return best }
        return results.first(where: \.fits) ?? results.last
    }
}
