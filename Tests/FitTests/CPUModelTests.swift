import Fit
import Formats
import Foundation
import Testing

/// A probe result with round numbers, so that every prediction below can be worked by hand.
private func fixedProbe(read: Double = 10e9, dot: Double = 5e9) -> CPUProbe {
    CPUProbe(threads: 2, readBytesPerSecond: read, bufferBytes: 512 << 20,
             dotWeightsPerSecond: ["q8_0": dot, "q4_0": dot, "q4_k": dot, "f16": dot],
             sgemmFlopsPerSecond: 50e9, sgemmSize: 512, seconds: 0.5)
}

/// A CPU entry carrying `probe`, as `--device local` builds it.
private func probedCPU(_ probe: CPUProbe) throws -> Hardware {
    var hardware = try HardwareCatalog.builtIn().device(named: "xeon-8480")
    hardware.probe = probe
    return hardware
}

private func request(_ model: String, _ variant: String, probe: CPUProbe, input: Int = 512, output: Int = 64) throws -> FitRequest {
    let catalog = try HardwareCatalog.builtIn()
    let shape = try #require(try ModelShape.preset(named: model))
    return FitRequest(model: shape, variant: try Variant.parse(variant), devices: DeviceSelection(hardware: try probedCPU(probe), count: 1),
                      engine: try Engines.named("llamacpp"), catalog: catalog, inputTokens: input, outputTokens: output,
                      concurrency: .count(1))
}

/// Parameters with no factors and no fixed costs: the bare formulas.
private let bare = CPUModel.Parameters(decodeKernelFactor: [:], prefillKernelFactor: [:], decodeBandwidthFactor: 1,
                                       secondsPerLayer: 0, secondsPerToken: 0, source: "test")

@Suite("Fit: the local CPU probe")
struct CPUProbeTests {
    @Test("every probe rate is positive, finite and within what a CPU can do")
    func probeShape() {
        let probe = LocalProbe.measure(threads: 2, bufferBytes: 64 << 20)
        #expect(probe.threads == 2)
        #expect(probe.bufferBytes == 64 << 20)
        // Read bandwidth: more than a slow disk (0.1 GB/s), less than any DRAM system (10 TB/s).
        #expect(probe.readBytesPerSecond.isFinite && probe.readBytesPerSecond > 1e8 && probe.readBytesPerSecond < 1e13,
                "read bandwidth \(probe.readBytesPerSecond) B/s")
        #expect(Set(probe.dotWeightsPerSecond.keys) == Set(CPUProbe.families))
        for (family, rate) in probe.dotWeightsPerSecond {
            // Two threads: at least 1 M weights/s, at most 64 multiply-adds per cycle at 8 GHz each.
            #expect(rate.isFinite && rate > 1e6 && rate < 2 * 64 * 8e9, "\(family): \(rate) weights/s")
        }
        #expect(probe.sgemmFlopsPerSecond.isFinite && probe.sgemmFlopsPerSecond > 1e7 && probe.sgemmFlopsPerSecond < 1e15)
        #expect(probe.seconds.isFinite && probe.seconds > 0)
        #expect(probe.synchronizedStretch.isFinite && probe.synchronizedStretch >= 1)
        #expect(probe.sustainedShare > 0 && probe.sustainedShare <= 1)
    }

    @Test("the probed entry is a CPU with measured bandwidth and compute and carries the probe")
    func probedEntry() throws {
        let local = LocalProbe.probe(bufferBytes: 32 << 20)
        let probe = try #require(local.probe)
        #expect(local.kind == .cpu)
        #expect(local.sources["bandwidth"] == "measured" && local.sources["compute"] == "measured")
        #expect(abs(local.memoryBandwidthGBps - probe.readBytesPerSecond / 1e9) <= 1e-9 * local.memoryBandwidthGBps)
        #expect(local.peakFlops("int8") > 0)
    }

    @Test("the streaming buffer is at least 64 MiB and at most a sixteenth of memory")
    func bufferSize() {
        let small = LocalProbe.defaultBufferBytes(physicalMemory: 2e9)
        #expect(small <= Int(2e9 / 16) && small >= 64 << 20)
        let large = LocalProbe.defaultBufferBytes(physicalMemory: 512e9)
        #expect(large >= 512 << 20 && large <= 1 << 30)
    }
}

@Suite("Fit: the CPU model's formulas")
struct CPUModelFormulaTests {
    @Test("ggml types map to the probe family whose kernel they use",
          arguments: [("Q4_K", "q4_k"), ("Q6_K", "q4_k"), ("Q5_K", "q4_k"), ("IQ4_XS", "q4_k"), ("Q4_0", "q4_0"), ("Q5_1", "q4_0"),
                      ("Q8_0", "q8_0"), ("F16", "f16"), ("BF16", "f16"), ("F32", "f16")])
    func families(type: String, family: String) {
        #expect(CPUModel.family(ofType: type) == family)
    }

    @Test("a mixture's groups hold exactly the bytes fit counts for it")
    func mixtureBytes() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3.1-8b"))
        for name in ["q4_k_m", "q8_0", "q4_0", "f16"] {
            let variant = try Variant.parse(name)
            let groups = try #require(CPUModel.tensorGroups(model: shape, variant: variant))
            let bytes = groups.reduce(0) { $0 + $1.bytes }
            let expected = Double(try #require(variant.weightBytes(of: shape)).total)
            #expect(abs(bytes - expected) <= 1e-9 * expected, "\(name): groups \(bytes) vs weightBytes \(expected)")
        }
        let kmGroups = try #require(CPUModel.tensorGroups(model: shape, variant: try Variant.parse("q4_k_m")))
        #expect(Set(kmGroups.filter { $0.role == .attention || $0.role == .mlp }.map(\.family)) == ["q4_k"])
        #expect(CPUModel.tensorGroups(model: shape, variant: try Variant.parse("fp8")) == nil, "llama.cpp does not run fp8 safetensors")
    }

    @Test("memory-bound decode is the weights read (not the embedding) plus the KV cache over the read bandwidth")
    func memoryBoundDecode() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3.1-8b"))
        let variant = try Variant.parse("q8_0")
        let groups = try #require(CPUModel.tensorGroups(model: shape, variant: variant))
        let probe = fixedProbe(read: 10e9, dot: 1e15)  // dot products far faster than memory
        let kvPerToken = Double(shape.kvBytesPerToken(bytesPerElement: 2))
        let step = CPUModel.decode(groups: groups, model: shape, probe: probe, parameters: bare, context: 1000, kvBytesPerToken: kvPerToken)
        let bytes = try #require(variant.weightBytes(of: shape))
        let read = Double(bytes.total - bytes.embeddings)
        #expect(abs(step.weightBytes - read) <= 1e-9 * read)
        #expect(abs(step.kvBytes - 1000 * kvPerToken) <= 1e-6)
        let expected = (read + 1000 * kvPerToken) / 10e9
        #expect(abs(step.seconds - expected) <= 1e-9 * expected, "decode \(step.seconds) s vs \(expected) s")
        #expect(step.bound == "memory")
    }

    @Test("compute-bound decode is weights over the dot rate, and fixed costs add per layer")
    func computeBoundDecode() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3.1-8b"))
        let groups = try #require(CPUModel.tensorGroups(model: shape, variant: try Variant.parse("q4_0")))
        let probe = fixedProbe(read: 1e15, dot: 4e9)
        var parameters = bare
        parameters.secondsPerLayer = 1e-4
        parameters.secondsPerToken = 2e-3
        let step = CPUModel.decode(groups: groups, model: shape, probe: probe, parameters: parameters, context: 0, kvBytesPerToken: 0)
        let weights = groups.filter { $0.role != .embedding }.reduce(0) { $0 + $1.weights }
        let expected = weights / 4e9 + 32 * 1e-4 + 2e-3
        #expect(abs(step.seconds - expected) <= 1e-9 * expected)
        #expect(step.bound == "compute")
    }

    @Test("prefill FLOPs: 2 × matrix weights × tokens, the output head once, attention 4 × layers × heads × head_dim × T²")
    func prefillFlops() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3.1-8b"))
        let groups = try #require(CPUModel.tensorGroups(model: shape, variant: try Variant.parse("q8_0")))
        let pp = CPUModel.prefill(groups: groups, model: shape, probe: fixedProbe(read: 1e15, dot: 5e9), parameters: bare, tokens: 512)
        let vocab = Double(shape.vocabularySize * shape.hiddenSize)
        let body = Double(shape.activeParameterCount) - vocab  // active excludes the embedding; take out the output head
        let vectors = groups.filter { $0.role == .vector }.reduce(0) { $0 + $1.weights }
        let attention = 4 * Double(shape.layerCount * shape.attentionHeads * shape.headDim) * 512 * 512
        let expected = 2 * (body - vectors) * 512 + 2 * vocab + attention
        #expect(abs(pp.flops - expected) <= 1e-9 * expected, "prefill \(pp.flops) FLOP vs \(expected)")
        // All families at 5e9 multiply-adds/s: seconds = FLOPs / 2 / 5e9.
        #expect(abs(pp.seconds - expected / 2 / 5e9) <= 1e-9 * pp.seconds)
    }

    @Test("the lock-step stretch slows decode by its factor, the sustained share slows prefill, neither touches the other")
    func stretch() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3.1-8b"))
        let groups = try #require(CPUModel.tensorGroups(model: shape, variant: try Variant.parse("q4_k_m")))
        var loaded = fixedProbe()
        loaded.synchronizedStretch = 3
        loaded.sustainedShare = 0.5
        let idle = fixedProbe()
        let a = CPUModel.decode(groups: groups, model: shape, probe: idle, parameters: bare, context: 100, kvBytesPerToken: 1000)
        let b = CPUModel.decode(groups: groups, model: shape, probe: loaded, parameters: bare, context: 100, kvBytesPerToken: 1000)
        #expect(abs(b.seconds / a.seconds - 3) <= 1e-9)
        let p = CPUModel.prefill(groups: groups, model: shape, probe: idle, parameters: bare, tokens: 512)
        let q = CPUModel.prefill(groups: groups, model: shape, probe: loaded, parameters: bare, tokens: 512)
        #expect(abs(q.seconds / p.seconds - 2) <= 1e-9)
    }

    @Test("kernel factors scale each family's rate")
    func kernelFactors() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3.1-8b"))
        let groups = try #require(CPUModel.tensorGroups(model: shape, variant: try Variant.parse("q8_0")))
        var doubled = bare
        doubled.prefillKernelFactor = ["q8_0": 2, "q4_k": 2, "f16": 2]
        let probe = fixedProbe(read: 1e15, dot: 5e9)
        let one = CPUModel.prefill(groups: groups, model: shape, probe: probe, parameters: bare, tokens: 512)
        let two = CPUModel.prefill(groups: groups, model: shape, probe: probe, parameters: doubled, tokens: 512)
        #expect(abs(one.seconds / two.seconds - 2) <= 1e-9)
    }

    @Test("decode overlap adds its share of the shorter of memory and compute time")
    func decodeOverlap() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3.1-8b"))
        let groups = try #require(CPUModel.tensorGroups(model: shape, variant: try Variant.parse("q8_0")))
        let probe = fixedProbe(read: 10e9, dot: 4e9)
        var overlapping = bare
        overlapping.decodeOverlap = 0.25
        let a = CPUModel.decode(groups: groups, model: shape, probe: probe, parameters: bare, context: 0, kvBytesPerToken: 0)
        let b = CPUModel.decode(groups: groups, model: shape, probe: probe, parameters: overlapping, context: 0, kvBytesPerToken: 0)
        var expected = 0.0
        for family in a.families {
            let memory = family.bytes / 10e9, compute = family.multiplyAdds / 4e9
            #expect(abs(family.seconds - max(memory, compute)) <= 1e-9 * family.seconds)
            expected += max(memory, compute) + 0.25 * min(memory, compute)
        }
        #expect(abs(b.seconds - expected) <= 1e-9 * expected, "decode with overlap \(b.seconds) s vs \(expected) s")
        #expect(b.seconds > a.seconds)
    }

    @Test("a prefill factor for a ggml type applies to that type's tensors only, before its family's")
    func typeFactors() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3.1-8b"))
        let groups = try #require(CPUModel.tensorGroups(model: shape, variant: try Variant.parse("q4_k_m")))
        #expect(Set(groups.filter { $0.role == .mlp }.compactMap(\.type)) == ["Q4_K", "Q6_K"], "q4_k_m keeps half of ffn_down at Q6_K")
        let probe = fixedProbe(read: 1e15, dot: 5e9)
        var q6Faster = bare
        q6Faster.prefillKernelFactor = ["Q6_K": 2, "q4_k": 1]
        let base = CPUModel.prefill(groups: groups, model: shape, probe: probe, parameters: bare, tokens: 512)
        let faster = CPUModel.prefill(groups: groups, model: shape, probe: probe, parameters: q6Faster, tokens: 512)
        // Only the Q6_K work runs twice as fast: the saving is half of its time at the bare rate.
        let q6Work = groups.filter { $0.type == "Q6_K" }.reduce(0.0) { $0 + $1.weights * ($1.role == .lmHead ? 1 : 512) }
        let saving = q6Work / 5e9 / 2
        #expect(abs((base.seconds - faster.seconds) - saving) <= 1e-9 * base.seconds, "saved \(base.seconds - faster.seconds) s vs \(saving) s")
    }

    @Test("the prefill's per-layer cost is paid once per 512-token ubatch")
    func prefillLayerCost() throws {
        let shape = try #require(try ModelShape.preset(named: "llama-3.1-8b"))
        let groups = try #require(CPUModel.tensorGroups(model: shape, variant: try Variant.parse("q8_0")))
        let probe = fixedProbe(read: 1e15, dot: 5e9)
        var perLayer = bare
        perLayer.prefillSecondsPerLayer = 1e-3
        for (tokens, ubatches) in [(512, 1.0), (513, 2.0), (2048, 4.0)] {
            let a = CPUModel.prefill(groups: groups, model: shape, probe: probe, parameters: bare, tokens: tokens)
            let b = CPUModel.prefill(groups: groups, model: shape, probe: probe, parameters: perLayer, tokens: tokens)
            let expected = 1e-3 * Double(shape.layerCount) * ubatches
            #expect(abs((b.seconds - a.seconds) - expected) <= 1e-9 * b.seconds, "\(tokens) tokens: \(b.seconds - a.seconds) s vs \(expected) s")
        }
    }

    @Test("fit on a probed CPU reports the CPU model's decode and prefill in its result")
    func planUsesModel() throws {
        let r = try request("llama-3.1-8b", "q4_k_m", probe: fixedProbe())
        let result = try FitPlanner.plan(r)
        let cpu = try #require(result.cpu)
        let single = try #require(result.decodeSingleUser)
        let prefill = try #require(result.prefill)
        #expect(abs(single.tokensPerSecondPerUser - cpu.decodeTokensPerSecond) <= 1e-9 * cpu.decodeTokensPerSecond)
        #expect(abs(prefill.tokensPerSecond - cpu.prefillTokensPerSecond) <= 1e-9 * cpu.prefillTokensPerSecond)
        #expect(cpu.decodeContext == 512 + 32)
        #expect(cpu.prefillTokens == 512)
        // Faster memory and kernels give a faster prediction.
        let faster = try FitPlanner.plan(try request("llama-3.1-8b", "q4_k_m", probe: fixedProbe(read: 20e9, dot: 10e9)))
        #expect(try #require(faster.cpu).decodeTokensPerSecond > cpu.decodeTokensPerSecond)
        #expect(try #require(faster.cpu).prefillTokensPerSecond > cpu.prefillTokensPerSecond)
    }

    @Test("catalog CPUs (no probe) keep the roofline and report no CPU model")
    func catalogCPU() throws {
        let catalog = try HardwareCatalog.builtIn()
        let shape = try #require(try ModelShape.preset(named: "llama-3.1-8b"))
        let r = FitRequest(model: shape, variant: try Variant.parse("q4_0"), devices: try DeviceSelection.parse("xeon-8480", catalog: catalog),
                           engine: try Engines.named("llamacpp"), catalog: catalog, concurrency: .count(1))
        let result = try FitPlanner.plan(r)
        #expect(result.cpu == nil)
        #expect(result.decodeSingleUser != nil)
    }
}
