import Fit
import Foundation
import Testing
import TestSupport

@Suite("Fit: pipeline parallelism for counts TP cannot take")
struct FitPipelineTests {
    @Test("three H100s for a 64-head 70B run TP 1 × PP 3: the largest stage's layers per device, one stage's speed for one user, more throughput when full")
    func threeDevices() throws {
        let pp = try FitPlanner.plan(try Setup.request("llama-3.3-70b", "fp8", "h100-sxm-80gb:3"))
        #expect(pp.parallelism == Parallelism(tensor: 1, pipeline: 3, expert: 1, layersPerStage: 27, summary: "TP 1 × PP 3"))
        #expect(pp.tensorParallel == 1 && pp.fits)
        // Memory: 27 of 80 layers plus the larger of the embedding and the output head (Llama 3 does not tie them).
        let shape = try #require(try ModelShape.preset(named: "llama-3.3-70b"))
        let bytes = try #require(try Variant.parse("fp8").weightBytes(of: shape))
        let expected = Double(bytes.total - bytes.embeddings - bytes.lmHead) * 27 / 80 + Double(max(bytes.embeddings, bytes.lmHead))
        #expect(abs(pp.memory.weights - expected) < 1, "weights per device \(pp.memory.weights) vs \(expected)")
        #expect(pp.memory.weights > Double(bytes.total) / 3 && pp.memory.weights < Double(bytes.total) / 2)
        let kvModel = Double(shape.kvBytesPerToken(bytesPerElement: 2))
        #expect(abs(pp.memory.kvBytesPerToken - kvModel * 27 / 80) < 1e-6 * kvModel, "a stage keeps the KV of its own layers")
        // One user gains nothing from a pipeline (the bubble): its token passes every stage, so its step is
        // one device's step for the whole model, a little more for the uneven stages and the hand-overs.
        let one = try FitPlanner.plan(try Setup.request("llama-3.3-70b", "fp8", "h100-sxm-80gb:1"))
        let ppStep = try #require(pp.decodeSingleUser).stepSeconds, oneStep = try #require(one.decodeSingleUser).stepSeconds
        #expect(ppStep >= oneStep * 0.99 && ppStep <= oneStep * 1.1, "PP 3 step \(ppStep) s vs one device \(oneStep) s")
        // TP 2 on two of the devices is faster per user than the pipeline on three.
        let tp2 = try FitPlanner.plan(try Setup.request("llama-3.3-70b", "fp8", "h100-sxm-80gb:2"))
        #expect(try #require(tp2.decodeSingleUser).stepSeconds < ppStep * 0.7)
        // Full: three stages on three micro-batches serve more than one device can hold users for.
        #expect(try #require(pp.throughput).outputTokensPerSecond > 3 * (try #require(one.throughput).outputTokensPerSecond))
        #expect(pp.notes.contains { $0.contains("TP 1 × PP 3, 27 of 80 layers per stage") })
    }

    @Test("the largest TP the heads take that divides the count, the rest as stages", arguments: [(3, 1, 3), (6, 2, 3), (12, 4, 3), (24, 8, 3), (5, 1, 5)])
    func factorisation(count: Int, tensor: Int, pipeline: Int) throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3.3-70b"))
        let plan = try Parallelism.plan(model: shape, engine: try Engines.named("vllm"), count: count, expertParallel: false, label: "x")
        #expect(plan.tensor == tensor && plan.pipeline == pipeline, "\(plan.summary)")
        #expect(plan.layersPerStage == (80 + pipeline - 1) / pipeline)
    }

    @Test("more pipeline stages than layers are refused with the counts that work")
    func tooManyStages() throws {
        let tiny = ModelShape(name: "tiny", hiddenSize: 768, layerCount: 4, attentionHeads: 6, kvHeads: 6, intermediateSize: 2048,
                              vocabularySize: 1000, maxContext: 2048)
        let error = try #require(throws: FitError.self) {
            try Parallelism.plan(model: tiny, engine: try Engines.named("vllm"), count: 7, expertParallel: false, label: "l4:7")
        }
        #expect(error.description.contains("exceed the 4 layers") && error.description.contains("1, 2, 3, 6"), "\(error.description)")
    }
}

@Suite("Fit: expert parallelism for mixtures of experts")
struct FitExpertParallelTests {
    static func mixtral(_ device: String, users: Concurrency = .max, expertParallel: Bool) throws -> FitResult {
        var request = try Setup.request("mixtral-8x7b", "bf16", device, concurrency: users)
        request.expertParallel = expertParallel
        return try FitPlanner.plan(request)
    }

    @Test("the busiest device's expected experts: one Mixtral token on 2 devices within 5 % of the exact 10/7, all local experts at large batch, k·E/… on one device")
    func busiestExperts() throws {
        // Exact for one token picking 2 distinct of 8 experts, 4 per device: both on one device with
        // probability 3/7 (busiest reads 2), else one each.
        let exact = 2.0 * 3 / 7 + 1.0 * 4 / 7
        let ep2 = Parallelism.expectedBusiestExperts(experts: 8, perToken: 2, ranks: 2, tokens: 1)
        #expect(abs(ep2 / exact - 1) < 0.05, "\(ep2) vs \(exact)")
        // Enumerating every touched/untouched pattern of the 8 experts under the same independence gives the same number.
        let p = 0.25
        var enumerated = 0.0
        for pattern in 0..<256 {
            let touched = (0..<8).map { pattern >> $0 & 1 }
            let probability = touched.reduce(1.0) { $0 * ($1 == 1 ? p : 1 - p) }
            enumerated += probability * Double(max(touched[0..<4].reduce(0, +), touched[4..<8].reduce(0, +)))
        }
        #expect(abs(ep2 - enumerated) < 1e-12, "\(ep2) vs enumeration \(enumerated)")
        #expect(abs(Parallelism.expectedBusiestExperts(experts: 8, perToken: 2, ranks: 2, tokens: 512) - 4) < 1e-9)
        #expect(abs(Parallelism.expectedBusiestExperts(experts: 8, perToken: 2, ranks: 1, tokens: 1) - 2) < 1e-12)
    }

    @Test("Mixtral on two H100s with --expert-parallel: attention replicated and half the experts per device, two ranks of sequences, slower for one user than TP 2")
    func mixtralTwoDevices() throws {
        let ep = try Self.mixtral("h100-sxm-80gb:2", expertParallel: true)
        let tp = try Self.mixtral("h100-sxm-80gb:2", expertParallel: false)
        #expect(ep.parallelism.expert == 2 && ep.parallelism.summary == "EP 2 (attention DP 2)" && ep.tensorParallel == 1)
        let shape = try #require(try ModelShape.preset(named: "mixtral-8x7b"))
        let bytes = try #require(try Variant.parse("bf16").weightBytes(of: shape))
        #expect(abs(ep.memory.weights - (Double(bytes.total - bytes.experts) + Double(bytes.experts) / 2)) < 1)
        #expect(abs(tp.memory.weights - Double(bytes.total) / 2) < 1)
        #expect(ep.memory.dataParallelRanks == 2)
        // Each rank keeps whole-model KV for its own sequences: twice the per-device KV bytes per token of TP 2.
        #expect(ep.memory.kvBytesPerToken == 2 * tp.memory.kvBytesPerToken)
        #expect(ep.maxConcurrency % 2 == 0 && ep.maxConcurrency >= 2)
        // One user: one device runs attention and the dense weights, and its experts can fall on one device.
        let epOne = try #require(ep.decodeSingleUser), tpOne = try #require(tp.decodeSingleUser)
        #expect(epOne.stepSeconds > tpOne.stepSeconds, "EP \(epOne.stepSeconds) s vs TP \(tpOne.stepSeconds) s")
        let expectedBytes = Double(bytes.projections + bytes.lmHead + bytes.other)
            + Parallelism.expectedBusiestExperts(experts: 8, perToken: 2, ranks: 2, tokens: 1) * Double(bytes.experts) / 8
        #expect(abs(epOne.weightBytesPerStep / expectedBytes - 1) < 1e-9)
        // TP 2's note names the alternative.
        #expect(tp.notes.contains { $0.hasPrefix("with --expert-parallel (EP 2") })
        #expect(ep.notes.contains { $0.contains("two all-to-alls") })
    }

    @Test("the all-to-all costs more over PCIe than over NVLink")
    func exchangeOverTheLink() throws {
        let catalog = try HardwareCatalog.builtIn()
        var request = try Setup.request("mixtral-8x7b", "bf16", "h100-sxm-80gb:2", concurrency: .count(64))
        request.expertParallel = true
        let nvlink = try FitPlanner.plan(request)
        request.interconnect = catalog.link(named: request.devices.hardware.hostLink)
        let pcie = try FitPlanner.plan(request)
        #expect(try #require(pcie.decode).stepSeconds > (try #require(nvlink.decode)).stepSeconds)
    }

    @Test("expert parallelism needs the experts to divide over the devices and a mixture", arguments: [3, 5])
    func refusedCounts(count: Int) throws {
        let error = try #require(throws: FitError.self) { try Self.mixtral("h100-sxm-80gb:\(count)", expertParallel: true) }
        #expect(error.description.contains("8 experts") && error.description.contains("2, 4, 8"), "\(error.description)")
        var dense = try Setup.request("llama-3.1-8b", "bf16", "h100-sxm-80gb:2")
        dense.expertParallel = true
        #expect(throws: FitError.self) { try FitPlanner.plan(dense) }
    }

    @Test("Qwen1.5-MoE (16 heads, 60 experts) on three L4s: TP 1 × PP 3 without --expert-parallel, EP 3 with it")
    func qwenMoEFixture() throws {
        let catalog = try HardwareCatalog.builtIn()
        let shape = try ModelShape.load(configAt: Fixtures.path("fit/qwen1.5-moe-a2.7b/config.json"))
        #expect(shape.expertCount == 60 && shape.expertsPerToken == 4 && shape.sharedExpertIntermediateSize == 5632)
        func request(_ expertParallel: Bool) throws -> FitRequest {
            var request = FitRequest(model: shape, variant: try Variant.parse("fp8"), devices: try DeviceSelection.parse("l4:3", catalog: catalog),
                                     engine: try Engines.named("vllm"), catalog: catalog)
            request.expertParallel = expertParallel
            return request
        }
        let pp = try FitPlanner.plan(try request(false))
        #expect(pp.parallelism.summary == "TP 1 × PP 3" && pp.parallelism.layersPerStage == 8 && pp.fits)
        let ep = try FitPlanner.plan(try request(true))
        #expect(ep.parallelism.summary == "EP 3 (attention DP 3)" && ep.fits)
        let bytes = try #require(try Variant.parse("fp8").weightBytes(of: shape))
        #expect(abs(ep.memory.weights - (Double(bytes.total - bytes.experts) + Double(bytes.experts) / 3)) < 1)
        // 60 experts, 4 per token: at batch 1 the busiest of 3 devices reads fewer experts than all 4.
        let busiest = Parallelism.expectedBusiestExperts(experts: 60, perToken: 4, ranks: 3, tokens: 1)
        #expect(busiest > 4.0 / 3 && busiest < 4)
    }
}

@Suite("Fit: the default table prices a typical load")
struct FitTypicalLoadTests {
    static func cheapest(_ model: String, _ variant: String, _ device: String) throws -> FitResult {
        let catalog = try HardwareCatalog.builtIn()
        let hardware = try catalog.device(named: device)
        let shape = try #require(try ModelShape.preset(named: model))
        let engine = try Engines.named(hardware.kind == .cpu ? "llamacpp" : "vllm")
        return try #require(try FitPlanner.cheapestAtTypicalLoad(on: hardware) { selection in
            FitRequest(model: shape, variant: try Variant.parse(variant), devices: selection, engine: engine, catalog: catalog)
        })
    }

    @Test("70B FP8 on A100 80 GB is priced on two devices, not on the one that holds one user at ~$30/M, and every user meets the floor")
    func notTheSmallestCount() throws {
        let chosen = try Self.cheapest("llama-3.3-70b", "fp8", "a100-sxm-80gb")
        let smallest = try #require(try FitPlanner.smallestFit(on: try HardwareCatalog.builtIn().device(named: "a100-sxm-80gb")) { selection in
            try Setup.request("llama-3.3-70b", "fp8", selection.label)
        })
        #expect(smallest.deviceCount == 1 && smallest.maxConcurrency == 1, "the smallest count that fits holds one user")
        #expect(chosen.deviceCount > 1)
        let load = try #require(chosen.typicalLoad)
        #expect(load.users >= 10)
        let cost = try #require(chosen.costPerMillionTokens), smallestCost = try #require(smallest.costPerMillionTokens)
        #expect(cost < smallestCost / 5, "$\(cost)/M vs $\(smallestCost)/M")
        let throughput = try #require(chosen.throughput)
        #expect(throughput.tokensPerSecondPerUser >= TypicalLoad.defaultTokensPerSecond)
        #expect(try #require(chosen.load).ttftSeconds <= TypicalLoad.defaultTTFTSeconds)
        #expect(load.costPerMillionTokens == chosen.costPerMillionTokens)
        // The cheapest of the counts at their own typical loads.
        for count in [1, 2, 4, 8] {
            let other = try FitPlanner.atTypicalLoad(try Setup.request("llama-3.3-70b", "fp8", "a100-sxm-80gb:\(count)"))
            guard let users = other.typicalLoad?.users, users >= 1, let otherCost = other.costPerMillionTokens else { continue }
            #expect(cost <= otherCost, "\(count) devices: $\(otherCost)/M")
        }
        // One more user would break the floor or the TTFT bound (or the KV cache is full).
        if load.limitedBy == "speed floor" {
            let more = try FitPlanner.plan(try Setup.request("llama-3.3-70b", "fp8", chosen.hardware, concurrency: .count(load.users + 1)))
            #expect(try #require(more.throughput).tokensPerSecondPerUser < TypicalLoad.defaultTokensPerSecond)
        }
    }

    @Test("a CPU whose one user gets 1.4 tok/s serves 0 users at the 10 tok/s floor, whatever its KV cache holds")
    func cpuFloor() throws {
        let xeon = try Self.cheapest("llama-3.3-70b", "bf16", "xeon-8480")
        let load = try #require(xeon.typicalLoad)
        #expect(load.users == 0)
        #expect(load.limitedBy.hasPrefix("speed floor: one user gets"), "\(load.limitedBy)")
        #expect(load.kvUsers > 100, "the KV cache alone would hold hundreds")
    }

    @Test("quantize fit MODEL states the typical load in the header and shows 0 users on the slow CPU rows")
    func overviewCommand() throws {
        let run = try CLI.fit(["llama-3.3-70b"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.contains("at a typical load: as many users as each get ≥ 10 tok/s with TTFT ≤ 2 s") == true, "\(lines.first ?? "")")
        let xeon = try #require(lines.first { $0.hasPrefix("xeon-8480") && $0.contains(" bf16 ") })
        // Columns are separated by at least two spaces (a cell such as "1× TP 1" holds single ones).
        let columns = xeon.components(separatedBy: "  ").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        #expect(columns.count > 4 && columns[4] == "0", "users column of \(xeon)")
        #expect(!xeon.contains("881"))
        let a100 = try #require(lines.first { $0.hasPrefix("a100-sxm-80gb") && $0.contains(" fp8 ") })
        #expect(!a100.contains("29.9"), "\(a100)")
        let custom = try CLI.fit(["llama-3.1-8b", "--slo-tps", "40", "--slo-ttft", "0.5"])
        #expect(custom.stdout.contains("≥ 40 tok/s with TTFT ≤ 0.5 s"))
    }

    @Test("several --gpu add the typical load and name the cheaper count of a device whose selection holds one user")
    func sideBySide() throws {
        let run = try CLI.fit(["llama-3.3-70b", "--variant", "fp8", "--gpu", "a100", "--gpu", "h200"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        let users = try #require(lines.first { $0.hasPrefix("typical load: users") })
        #expect(users.contains("1 (kv cache)"), "\(users)")
        #expect(lines.contains { $0.hasPrefix("typical: $/M tokens") })
        #expect(run.stdout.contains("note (a100-sxm-80gb:1): at the typical load a100-sxm-80gb:2 (TP 2) serves"), "\(run.stdout)")
        #expect(!run.stdout.contains("note (h200-sxm-141gb:1): at the typical load"), "one H200 is already the cheapest H200 count")
    }
}

@Suite("quantize fit --json: decode in every mode", .serialized)
struct FitDecodeEverywhereTests {
    static func objects(_ arguments: [String]) throws -> [[String: Any]] {
        let run = try CLI.fit(arguments + ["--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let value = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))
        if let one = value as? [String: Any] { return [one] }
        return try #require(value as? [[String: Any]])
    }

    @Test("decode is present on one device, several side by side, the overview, the deployer's question, and with offload (the fastest plan's)")
    func everyMode() throws {
        let modes: [[String]] = [
            ["llama-3.1-8b", "--gpu", "l4"],
            ["llama-3.1-8b", "--gpu", "l4", "--gpu", "h100:2"],
            ["llama-3.1-8b"],
            ["llama-3.1-8b", "--users", "8", "--slo-tps", "20"],
            ["llama-3.1-70b", "--gpu", "h100", "--offload", "auto"],
            ["mixtral-8x7b", "--gpu", "h100:2", "--expert-parallel"],
        ]
        for arguments in modes {
            for object in try Self.objects(arguments) {
                let runs = object["fits"] as? Bool == true || object["offloadBest"] != nil
                guard runs else { continue }
                let decode = try #require(object["decode"] as? [String: Any], "no decode in quantize fit \(arguments.joined(separator: " "))")
                for key in ["concurrency", "stepSeconds", "tokensPerSecondPerUser", "tokensPerSecondTotal", "bound"] {
                    #expect(decode[key] != nil, "decode.\(key) in \(arguments)")
                }
                #expect(object["parallelism"] is [String: Any])
            }
        }
        let offload = try #require(try Self.objects(["llama-3.1-70b", "--gpu", "h100", "--offload", "auto"]).first)
        let decode = try #require(offload["decode"] as? [String: Any])
        #expect(decode["offload"] as? String == offload["offloadBest"] as? String)
        let best = try #require((offload["offload"] as? [[String: Any]])?.first { $0["mode"] as? String == offload["offloadBest"] as? String })
        #expect(decode["stepSeconds"] as? Double == best["secondsPerToken"] as? Double)
    }
}

@Suite("quantize fit: expert parallelism in the deployer's search, and the probed host for offload", .serialized)
struct FitSearchAndHostTests {
    @Test("the deployer's search tries a mixture both tensor- and expert-parallel")
    func searchTriesBoth() throws {
        let catalog = try HardwareCatalog.builtIn()
        let shape = try #require(try ModelShape.preset(named: "mixtral-8x7b"))
        let plans = try DeploymentSearch.search(catalog: catalog, users: 64, tokensPerSecond: 20, ttft: 1) { selection, variant, engine in
            FitRequest(model: shape, variant: variant, devices: selection, engine: engine, catalog: catalog, concurrency: .count(64))
        }
        #expect(plans.contains { $0.result.parallelism.expert > 1 })
        #expect(plans.contains { $0.result.parallelism.expert == 1 && $0.result.deviceCount > 1 })
        #expect(plans.allSatisfy { $0.result.parallelism.expert == 1 || $0.result.model.experts % $0.result.parallelism.expert == 0 })
        let dense = try CLI.fit(["llama-3.1-8b", "--gpu", "h100:2", "--expert-parallel"])
        #expect(dense.status == 2 && dense.stderr.contains("mixture-of-experts"))
    }

    @Test("under --device local the offload plans run on this machine, not on the catalog's Xeon")
    func probedHost() throws {
        let run = try CLI.fit(["llama-3.1-8b", "--gpu", "t4", "--device", "local", "--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]])
        let t4 = try #require(objects.first { ($0["hardware"] as? String)?.hasPrefix("t4") == true })
        #expect(t4["weightsFit"] as? Bool == false)
        let notes = t4["notes"] as? [String] ?? []
        #expect(notes.contains { $0.contains("offload host: local") || $0.contains("local has") }, "\(notes)")
        #expect(!notes.contains { $0.contains("xeon-8480") }, "\(notes)")
        for plan in t4["offload"] as? [[String: Any]] ?? [] where plan["mode"] as? String != "stream" {
            #expect((plan["bound"] as? String)?.contains("local") == true, "\(plan)")
        }
    }
}
