import Fit
import Testing

@Suite("Fit: KV cache types and the overview's device counts")
struct FitOptionsTests {
    @Test("KV cache types take 2 bytes at 16 bits and 1 at 8 bits, under every engine spelling")
    func kvCacheTypes() {
        for name in ["fp16", "BF16", "f16", "auto"] { #expect(KVCacheType(name: name)?.bytesPerElement == 2, "\(name)") }
        for name in ["fp8", "fp8_e4m3", "FP8-E4M3", "fp8_e5m2"] { #expect(KVCacheType(name: name)?.bytesPerElement == 1, "\(name)") }
        #expect(KVCacheType(name: "int4") == nil)
    }

    @Test("the overview tries 1, 2, 4, 8 devices, starts at a catalog default count, and runs a CPU as one")
    func overviewCounts() throws {
        let catalog = try HardwareCatalog.builtIn()
        for hardware in catalog.hardware {
            let counts = FitPlanner.overviewCounts(for: hardware)
            if hardware.kind == .cpu {
                #expect(counts == [1])
            } else if let base = hardware.defaultCount {
                #expect(counts.first == base && counts.dropFirst().allSatisfy { $0 > base && [2, 4, 8].contains($0) })
            } else {
                #expect(counts == [1, 2, 4, 8])
            }
        }
    }

    @Test("the smallest fit is the first count that fits, and 8 devices when none does")
    func smallestFit() throws {
        let catalog = try HardwareCatalog.builtIn()
        let shape = try #require(try ModelShape.preset(named: "llama-3-70b"))
        let hardware = try catalog.device(named: "h100-sxm-80gb")
        func request(_ selection: DeviceSelection, _ variant: String) throws -> FitRequest {
            FitRequest(model: shape, variant: try Variant.parse(variant), devices: selection, engine: try Engines.named("vllm"), catalog: catalog,
                       context: nil, inputTokens: 1024, outputTokens: 256, concurrency: .max, kvBytesPerElement: 2, offload: .none,
                       host: nil, pricePerHour: nil, sloTokensPerSecond: nil, sloTTFTSeconds: nil)
        }
        let counts = FitPlanner.overviewCounts(for: hardware)
        let bf16 = try #require(try FitPlanner.smallestFit(on: hardware) { try request($0, "bf16") })
        #expect(bf16.fits)
        let index = try #require(counts.firstIndex(of: bf16.deviceCount))
        for smaller in counts[..<index] {
            #expect(!(try FitPlanner.plan(try request(DeviceSelection(hardware: hardware, count: smaller), "bf16"))).fits, "\(smaller) devices")
        }
        #expect(index > 0, "70 B parameters in BF16 do not fit one 80 GB device")
    }
}
