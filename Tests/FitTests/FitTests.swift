import Fit
import Formats
import Foundation
import Testing
import TestSupport

/// Shared set-up: the built-in catalog and a request builder.
enum Setup {
    static func catalog() throws -> HardwareCatalog { try HardwareCatalog.builtIn() }

    static func request(_ model: String, _ variant: String, _ device: String, engine: String = "vllm", context: Int? = nil,
                        concurrency: Concurrency = .max, offload: OffloadMode = .none, host: String? = nil) throws -> FitRequest {
        let catalog = try catalog()
        let shape = try #require(try ModelShape.preset(named: model))
        return FitRequest(model: shape, variant: try Variant.parse(variant), devices: try DeviceSelection.parse(device, catalog: catalog),
                          engine: try Engines.named(engine), catalog: catalog, context: context, concurrency: concurrency,
                          offload: offload, host: try host.map { try catalog.device(named: $0) })
    }
}

@Suite("Fit: the issue's acceptance cases")
struct AcceptanceTests {
    @Test("Llama 3.1 70B in BF16 does not fit one H100 80 GB")
    func seventyBBF16DoesNotFitOneH100() throws {
        let result = try FitPlanner.plan(try Setup.request("llama-3.1-70b", "bf16", "h100-sxm-80gb"))
        #expect(!result.fits)
        #expect(result.memory.weights > result.memory.available, "141 GB of weights cannot fit 80 GB")
    }

    @Test("Llama 3.1 70B in BF16 fits an H100 NVL pair (the bare name means two cards)")
    func seventyBBF16FitsNVLPair() throws {
        let result = try FitPlanner.plan(try Setup.request("llama-3.1-70b", "bf16", "h100-nvl"))
        #expect(result.deviceCount == 2)
        #expect(result.tensorParallel == 2)
        #expect(result.fits)
        #expect(result.maxConcurrency >= 1)
    }

    @Test("Llama 3.1 70B FP8 weights fit one H100 80 GB and the KV room left is stated")
    func seventyBFP8FitsOneH100() throws {
        let result = try FitPlanner.plan(try Setup.request("llama-3.1-70b", "fp8", "h100-sxm-80gb", context: 1024, concurrency: .count(1)))
        #expect(result.fits)
        #expect(result.execution == "native fp8")
        #expect(result.memory.kvCapacity > 0)
        #expect(result.memory.kvCacheTokens >= 1024)
        #expect(result.longestContext == result.memory.kvCacheTokens)
    }

    @Test("FP8 on A100 is reported as weight-only; on H100 it is native")
    func fp8OnA100IsWeightOnly() throws {
        let a100 = try FitPlanner.plan(try Setup.request("llama-3.1-8b", "fp8", "a100-sxm-80gb"))
        #expect(a100.weightOnly)
        #expect(a100.execution.contains("weight-only"))
        #expect(a100.notes.contains { $0.contains("weight-only") })
        let h100 = try FitPlanner.plan(try Setup.request("llama-3.1-8b", "fp8", "h100-sxm-80gb"))
        #expect(!h100.weightOnly)
    }

    @Test("streaming a 70B model's weights from host RAM costs seconds per token, not milliseconds")
    func cpuOffloadIsSecondsPerToken() throws {
        let result = try FitPlanner.plan(try Setup.request("llama-3.1-70b", "bf16", "h100-sxm-80gb", engine: "transformers",
                                                          concurrency: .count(1), offload: .auto, host: "xeon-8480"))
        let plans = try #require(result.offload)
        let stream = try #require(plans.first { $0.mode == "stream" })
        #expect(stream.secondsPerToken > 1, "got \(stream.secondsPerToken) s/token")
        let cpu = try #require(plans.first { $0.mode == "cpu" })
        #expect(cpu.secondsPerToken > 0.1)
        #expect(result.offloadBest != nil)
    }

    @Test("KV bytes per token of Llama 3 70B are 327,680 at FP16 and half that at FP8")
    func kvBytesPerTokenLlama3_70B() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3-70b"))
        #expect(shape.kvBytesPerToken(bytesPerElement: 2) == 327_680)
        #expect(shape.kvBytesPerToken(bytesPerElement: 1) == 163_840)
    }

    @Test("unknown hardware is an error that lists the known names")
    func unknownHardwareListsKnownNames() throws {
        let catalog = try Setup.catalog()
        let error = try #require(throws: FitError.self) { try DeviceSelection.parse("h100-typo", catalog: catalog) }
        #expect(error.code == .unknownHardware)
        #expect(error.message.contains("h100-sxm-80gb"))
        #expect(error.message.contains("mi300x"))
    }
}

@Suite("Fit: model shapes")
struct ModelShapeTests {
    @Test("a config.json-only directory gives the published parameter count of Llama 3.1 8B")
    func configDirectoryLlama() throws {
        let shape = try ModelShape.load(configAt: Fixtures.path("fit/llama-3.1-8b"))
        // model.safetensors.index.json of meta-llama/Llama-3.1-8B: total_size 16,060,522,496 bytes in BF16.
        #expect(shape.parameterCount == 8_030_261_248)
        #expect(try Variant.parse("bf16").weightBytes(of: shape)?.total == 16_060_522_496)
        #expect(shape.kvHeads == 8)
        #expect(shape.kvBytesPerToken(bytesPerElement: 2) == 131_072)
    }

    @Test("Mixtral counts all experts for memory and two of eight per token")
    func mixtralTotalAndActive() throws {
        let shape = try ModelShape.load(configAt: Fixtures.path("fit/mixtral-8x7b/config.json"))
        // Mixtral-8x7B-v0.1 index total_size 93,405,585,408 bytes in BF16.
        #expect(shape.parameterCount == 46_702_792_704)
        #expect(shape.isMixtureOfExperts)
        // Published "12.9B active parameters" (Mistral AI announcement); ours excludes the embedding lookup.
        #expect(abs(Double(shape.activeParameterCount) - 12.9e9) < 0.3e9)
    }

    @Test("GPT-J's config aliases (n_embd, n_layer, n_inner null) and plain MLP give about 6.05 B parameters")
    func gptjConfig() throws {
        let shape = try ModelShape.load(configAt: Fixtures.path("fit/gpt-j-6b"))
        #expect(!shape.gatedMLP)
        #expect(shape.intermediateSize == 16_384)
        // EleutherAI model card: 6,053,381,344 parameters.
        #expect(abs(Double(shape.parameterCount) - 6_053_381_344) / 6_053_381_344 < 0.001)
    }

    @Test("GGUF metadata and config.json of the same model give the same shape")
    func ggufMetadataMatchesConfig() throws {
        let metadata: [String: MetadataValue] = [
            "general.architecture": "llama", "llama.block_count": 32, "llama.embedding_length": 4096,
            "llama.feed_forward_length": 14336, "llama.attention.head_count": 32, "llama.attention.head_count_kv": 8,
            "llama.context_length": 131072, "llama.vocab_size": 128256,
        ]
        let gguf = try ModelShape(ggufMetadata: metadata, path: "test.gguf")
        let config = try ModelShape.load(configAt: Fixtures.path("fit/llama-3.1-8b"))
        #expect(gguf.parameterCount == config.parameterCount)
        #expect(gguf.kvBytesPerToken(bytesPerElement: 2) == config.kvBytesPerToken(bytesPerElement: 2))
    }

    @Test("GGUF metadata without a block count is rejected with invalidModelConfig")
    func ggufMissingKey() throws {
        let error = try #require(throws: FormatError.self) {
            try ModelShape(ggufMetadata: ["general.architecture": "llama", "llama.embedding_length": 4096, "llama.attention.head_count": 32, "llama.vocab_size": 100], path: "x.gguf")
        }
        #expect(error.code == .invalidModelConfig)
    }

    @Test("tensor headers replace the derived list: parameter count is their sum and a missing lm_head means tied")
    func tensorRecords() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-2-7b"))
        let records = [
            TensorRecord(name: "model.embed_tokens.weight", type: .dtype(.bf16), shape: [100, 64], elementCount: 6400, byteCount: 12800, fileOffset: 0, fileIndex: 0),
            TensorRecord(name: "model.layers.0.self_attn.q_proj.weight", type: .dtype(.bf16), shape: [64, 64], elementCount: 4096, byteCount: 8192, fileOffset: 0, fileIndex: 0),
            TensorRecord(name: "model.layers.0.input_layernorm.weight", type: .dtype(.bf16), shape: [64], elementCount: 64, byteCount: 128, fileOffset: 0, fileIndex: 0),
        ]
        let refined = shape.withTensors(records)
        #expect(refined.parameterCount == 6400 + 4096 + 64)
        #expect(refined.tiedEmbeddings)
        // INT4 g128 of the 64×64 projection: packed 64·8·4 + scales 64·1·2 + shape 16 bytes; the rest stays BF16.
        #expect(try Variant.parse("int4").weightBytes(of: refined)?.total == 12800 + (64 * 8 * 4 + 64 * 2 + 16) + 128)
    }

    @Test("a declared sliding window caps the KV tokens of a sequence")
    func slidingWindow() throws {
        let mistral = try #require(try ModelShape.preset(named: "mistral-7b"))
        #expect(mistral.kvTokens(context: 32_768) == 4096)
        let mixtral = try #require(try ModelShape.preset(named: "mixtral-8x7b"))
        #expect(mixtral.kvTokens(context: 32_768) == 32_768)
    }

    @Test("every required preset exists", arguments: ["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b",
                                                     "llama-3.1-405b", "llama-3.3-70b", "mistral-7b", "mixtral-8x7b", "phi-2",
                                                     "qwen2-72b", "qwen1.5-110b", "gpt-j-6b"])
    func presetExists(name: String) throws {
        let shape = try #require(try ModelShape.preset(named: name))
        #expect(shape.parameterCount > 2_000_000_000)
    }

    @Test("published parameter counts of presets", arguments: [
        ("llama-2-7b", 6_738_415_616), ("llama-2-13b", 13_015_864_320), ("llama-2-70b", 68_976_648_192),
        ("llama-3.1-70b", 70_553_706_496), ("llama-3.1-405b", 405_853_388_800), ("qwen2-72b", 72_706_203_648),
    ])
    func presetParameterCounts(name: String, expected: Int) throws {
        // Counts from the model.safetensors.index.json total_size (BF16/FP16 bytes ÷ 2) of each Hugging Face repository.
        let shape = try #require(try ModelShape.preset(named: name))
        #expect(shape.parameterCount == expected)
    }
}

@Suite("Fit: catalog, variants and memory")
struct CatalogAndMemoryTests {
    @Test("the catalog holds every device the issue names, each with a source for every number")
    func catalogComplete() throws {
        let catalog = try Setup.catalog()
        for name in ["a100-pcie-40gb", "a100-sxm-40gb", "a100-pcie-80gb", "a100-sxm-80gb", "h100-sxm-80gb", "h100-pcie-80gb", "h100-nvl",
                     "h200-sxm-141gb", "b200", "l40s", "l4", "rtx-4090", "mi300x", "mi325x", "tpu-v5e", "tpu-v5p", "gaudi3", "epyc-9654", "xeon-8480"] {
            let entry = try catalog.device(named: name)
            for field in ["memory", "bandwidth", "compute"] {
                let key = try #require(entry.sources[field], "\(name) has no \(field) source")
                #expect(catalog.sources[key] != nil, "\(name): source key \(key) is not defined")
            }
            if entry.pricePerHour != nil { #expect(entry.sources["price"] != nil, "\(name) has a price without a source") }
        }
        for link in ["pcie-gen4-x16", "pcie-gen5-x16", "nvlink3", "nvlink4", "nvlink5"] {
            #expect(catalog.link(named: link) != nil)
        }
        #expect(try catalog.device(named: "h100-sxm-80gb").runsNatively("fp8"))
        #expect(try !catalog.device(named: "a100-sxm-80gb").runsNatively("fp8"))
    }

    @Test("a user catalog adds entries and overrides existing ones")
    func catalogOverride() throws {
        let user = """
        {"hardware": [{"name": "h100-sxm-80gb", "displayName": "H100 (our price)", "kind": "gpu", "memoryGB": 80, "usableMemoryGiB": 79.15,
          "memoryBandwidthGBps": 3350, "teraflops": {"bf16": 989, "fp8": 1979}, "native": ["bf16", "fp8"], "pricePerHour": 1.5,
          "sources": {"memory": "ours"}},
          {"name": "my-gpu", "displayName": "Mine", "kind": "gpu", "memoryGB": 10, "memoryBandwidthGBps": 100, "teraflops": {"bf16": 10},
           "native": ["bf16"], "sources": {}}]}
        """
        let merged = try Setup.catalog().merging(try HardwareCatalog.decode(Data(user.utf8), path: "user.json"))
        #expect(try merged.device(named: "h100-sxm-80gb").pricePerHour == 1.5)
        #expect(try merged.device(named: "my-gpu").memoryGB == 10)
        #expect(try merged.device(named: "a100-sxm-80gb").memoryGB == 80)
    }

    @Test("a catalog entry with a non-positive bandwidth is rejected")
    func catalogRejectsBadNumbers() throws {
        let bad = """
        {"hardware": [{"name": "x", "displayName": "X", "kind": "gpu", "memoryGB": 10, "memoryBandwidthGBps": 0, "teraflops": {"bf16": 1}, "native": [], "sources": {}}]}
        """
        let error = try #require(throws: FitError.self) { try HardwareCatalog.decode(Data(bad.utf8), path: "bad.json") }
        #expect(error.code == .invalidCatalog)
    }

    @Test("device counts parse as NAME:COUNT and reject zero")
    func deviceSelection() throws {
        let catalog = try Setup.catalog()
        #expect(try DeviceSelection.parse("h100-sxm-80gb:2", catalog: catalog).count == 2)
        #expect(try DeviceSelection.parse("h100-nvl:1", catalog: catalog).count == 1)
        let error = try #require(throws: FitError.self) { try DeviceSelection.parse("h100-sxm-80gb:0", catalog: catalog) }
        #expect(error.code == .invalidRequest)
    }

    @Test("variant bytes: FP8 adds one FP32 scale per row, INT8 a BF16 scale per row, 16-bit tensors stay")
    func variantBytes() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3.1-8b"))
        let bf16 = try #require(try Variant.parse("bf16").weightBytes(of: shape))
        let fp8 = try #require(try Variant.parse("fp8").weightBytes(of: shape))
        let int8 = try #require(try Variant.parse("int8").weightBytes(of: shape))
        // Projection elements: 32 layers × (2·4096² + 2·4096·1024 + 3·4096·14336); rows: 32 × (4096+1024+1024+4096+14336·2+4096).
        let elements = 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336)
        let rows = 32 * (4096 + 1024 + 1024 + 4096 + 14336 + 14336 + 4096)
        #expect(fp8.projections == elements + rows * 4)
        #expect(int8.projections == elements + rows * 2)
        #expect(fp8.embeddings == bf16.embeddings)
        #expect(fp8.lmHead == bf16.lmHead)
    }

    @Test("an unknown variant is rejected with the list of variants")
    func unknownVariant() throws {
        let error = try #require(throws: FitError.self) { try Variant.parse("int3") }
        #expect(error.code == .invalidRequest)
        #expect(error.message.contains("int4"))
    }

    @Test("vLLM KV capacity matches the startup log of Llama-3.1-70B W8A8 on H100 at utilization 0.98 within 15 %")
    func vllmKVCapacityAnchor() throws {
        // vllm-project/vllm PR #12569: 1,381 blocks of 16 tokens → maximum concurrency 10.79× at 2,048 tokens.
        var request = try Setup.request("llama-3.1-70b", "fp8", "h100-sxm-80gb", context: 2048)
        request.engine.memoryUtilization = 0.98
        let result = try FitPlanner.plan(request)
        let measured = 1381.0 * 16 / 2048
        #expect(abs(Double(result.memory.kvCacheTokens) / 2048 - measured) / measured < 0.15,
                "predicted \(Double(result.memory.kvCacheTokens) / 2048)× vs measured 10.79×")
    }

    @Test("tensor parallelism halves weights per device and replicates KV heads beyond their count")
    func tensorParallelMemory() throws {
        let one = try FitPlanner.plan(try Setup.request("llama-3.1-70b", "fp8", "h100-sxm-80gb:1", concurrency: .count(1)))
        let two = try FitPlanner.plan(try Setup.request("llama-3.1-70b", "fp8", "h100-sxm-80gb:2", concurrency: .count(1)))
        #expect(abs(two.memory.weights * 2 - one.memory.weights) < 1)
        #expect(two.memory.kvBytesPerToken == 327_680 / 2)
        let sixteen = try FitPlanner.plan(try Setup.request("llama-3.1-405b", "fp8", "h100-sxm-80gb:16", concurrency: .count(1)))
        #expect(sixteen.memory.kvBytesPerToken == Double(2 * 126 * 1 * 128 * 2), "8 KV heads over 16 ranks: one head per rank")
    }
}

@Suite("Fit: speed")
struct SpeedTests {
    @Test("decode of one user is memory-bound and total throughput grows with concurrency")
    func decodeScales() throws {
        let one = try FitPlanner.plan(try Setup.request("llama-3.1-8b", "bf16", "h100-sxm-80gb", concurrency: .count(1)))
        let many = try FitPlanner.plan(try Setup.request("llama-3.1-8b", "bf16", "h100-sxm-80gb", concurrency: .count(64)))
        let d1 = try #require(one.decode), d64 = try #require(many.decode)
        #expect(d1.bound == "memory")
        #expect(d64.tokensPerSecondTotal > 10 * d1.tokensPerSecondTotal)
        #expect(d64.tokensPerSecondPerUser < d1.tokensPerSecondPerUser)
    }

    @Test("MoE decode reads the routed experts at batch 1 and nearly all of them at batch 256")
    func moeBytesGrowWithBatch() throws {
        let one = try FitPlanner.plan(try Setup.request("mixtral-8x7b", "bf16", "h100-sxm-80gb:2", concurrency: .count(1)))
        let many = try FitPlanner.plan(try Setup.request("mixtral-8x7b", "bf16", "h100-sxm-80gb:2", concurrency: .count(256)))
        let weights = one.memory.weights
        let small = try #require(one.decode).weightBytesPerStep, large = try #require(many.decode).weightBytesPerStep
        #expect(small < 0.4 * weights)
        #expect(large > 0.95 * weights)
    }

    @Test("an SLO of 20 tok/s per user and TTFT ≤ 1 s admits fewer users than the KV budget")
    func sloLimitsUsers() throws {
        var request = try Setup.request("llama-3.1-70b", "fp8", "h100-sxm-80gb:2")
        request.sloTokensPerSecond = 20
        request.sloTTFTSeconds = 1
        let result = try FitPlanner.plan(request)
        let slo = try #require(result.slo)
        #expect(slo.maxUsers >= 1)
        #expect(slo.maxUsers <= result.maxConcurrency)
    }

    @Test("cost per million tokens uses the catalog price and every device")
    func costPerMillion() throws {
        let result = try FitPlanner.plan(try Setup.request("llama-3.1-8b", "fp8", "h100-sxm-80gb:2"))
        let throughput = try #require(result.throughput)
        let cost = try #require(result.costPerMillionTokens)
        #expect(abs(cost - 2.95 * 2 / 3600 / throughput.outputTokensPerSecond * 1e6) < 1e-9)
    }

    @Test("the local probe measures a positive read bandwidth and counts cores")
    func localProbe() throws {
        let local = LocalProbe.probe(bufferBytes: 64 << 20)
        #expect(local.kind == .cpu)
        #expect(local.memoryBandwidthGBps > 0.1)
        #expect((local.cores ?? 0) >= 1)
    }
}

@Suite("Fit: numbers measured on a real H100 (fixtures/fit/h100-device-check.json)")
struct DeviceMeasurementTests {
    static func measurement() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("fit/h100-device-check.json")))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test("the catalog's usable memory of the H100 SXM is what CUDA reported on the device, within 0.5 %")
    func usableMemory() throws {
        let measured = try #require(try Self.measurement()["memory_total_gib"] as? Double)
        let entry = try Setup.catalog().device(named: "h100-sxm-80gb")
        #expect(abs(entry.memoryBytes / 1_073_741_824 - measured) / measured < 0.005)
    }

    @Test("vLLM's offload link efficiency is the pinned host-to-device rate measured over PCIe Gen5, within 3 %")
    func pinnedLinkEfficiency() throws {
        let measured = try #require(try Self.measurement()["h2d_pinned_gbps"] as? Double)
        let link = try #require(try Setup.catalog().link(named: "pcie-gen5-x16"))
        let engine = try Engines.named("vllm")
        #expect(abs(engine.offloadLinkEfficiency - measured / link.gigabytesPerSecond) < 0.03)
    }

    @Test("predicted batch-1 decode of the 8B-shaped GEMV stack is within 15 % of the measured 6.13 ms step")
    func decodeStack() throws {
        let stack = try #require(try Self.measurement()["decode_stack_cuda_graph"] as? [String: Any])
        let one = try #require(stack["1"] as? [String: Any])
        let measured = try #require(one["step_ms"] as? Double) / 1000
        var request = try Setup.request("llama-3.1-8b", "bf16", "h100-sxm-80gb", engine: "gpt-fast", concurrency: .count(1))
        request.inputTokens = 1
        request.outputTokens = 2
        let predicted = try #require(try FitPlanner.plan(request).decode).stepSeconds
        #expect(abs(predicted - measured) / measured < 0.15, "predicted \(predicted * 1000) ms")
    }
}

@Suite("Fit: bad input")
struct BadInputTests {
    @Test("a config.json whose sizes overflow 64-bit products is rejected with overflow, not a crash")
    func overflowingConfig() throws {
        let config: [String: Any] = ["model_type": "llama", "hidden_size": 1 << 30, "num_hidden_layers": 1 << 30,
                                     "num_attention_heads": 1, "intermediate_size": 1 << 30, "vocab_size": 1 << 30]
        let error = try #require(throws: FormatError.self) { try ModelShape(config: config, path: "config.json") }
        #expect(error.code == .overflow)
    }

    @Test("a config.json without hidden_size names the missing key")
    func missingKey() throws {
        let error = try #require(throws: FormatError.self) {
            try ModelShape(config: ["model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 10], path: "config.json")
        }
        #expect(error.code == .invalidModelConfig)
        #expect(error.message.contains("hidden_size"))
    }

    @Test("a catalog entry naming an undefined link is rejected when it is used")
    func undefinedLink() throws {
        let user = """
        {"hardware": [{"name": "odd", "displayName": "Odd", "kind": "gpu", "memoryGB": 10, "memoryBandwidthGBps": 100,
          "teraflops": {"bf16": 10}, "native": ["bf16"], "interconnect": "warp-drive", "sources": {}}]}
        """
        let merged = try Setup.catalog().merging(try HardwareCatalog.decode(Data(user.utf8), path: "user.json"))
        let error = try #require(throws: FitError.self) { try merged.device(named: "odd") }
        #expect(error.code == .invalidCatalog)
        #expect(error.message.contains("warp-drive"))
    }

    @Test("a context beyond 100 million tokens is rejected as an invalid request")
    func hugeContext() throws {
        let request = try Setup.request("llama-3.1-8b", "bf16", "h100-sxm-80gb", context: 1_000_000_000_000)
        let error = try #require(throws: FitError.self) { try FitPlanner.plan(request) }
        #expect(error.code == .invalidRequest)
    }
}

@Suite("Fit: tensor roles from the shared rules")
struct FitTensorRoleTests {
    @Test("Fit counts as quantizable exactly what the shared rules quantize (shared-expert gate kept, token-type embedding kept)")
    func rolesAgree() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-2-7b"))
        let names = ["model.layers.0.mlp.shared_expert_gate.weight", "embeddings.token_type_embeddings.weight",
                     "model.layers.0.mlp.shared_expert.up_proj.weight", "model.layers.0.mlp.experts.1.up_proj.weight",
                     "model.layers.0.mlp.gate.weight", "lm_head.weight"]
        let records = names.map { TensorRecord(name: $0, type: .dtype(.bf16), shape: [4, 64], elementCount: 256, byteCount: 512, fileOffset: 0, fileIndex: 0) }
        let refined = shape.withTensors(records)
        for (name, tensor) in zip(names, refined.weightTensors) {
            #expect(tensor.isQuantizable == TensorRole(name: name).isQuantizedByDefault, "\(name): \(tensor.role)")
        }
    }
}
