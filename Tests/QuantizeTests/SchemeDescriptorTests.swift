import CKernels
import Formats
import Quantize
import Testing

@Suite("One descriptor per scheme, read by every consumer")
struct SchemeDescriptorTests {
    static let ggufSchemes = SchemeDescriptor.all.filter { $0.container == .gguf }

    @Test("every scheme name has exactly one descriptor, in SchemeName order")
    func oneDescriptorPerName() {
        #expect(SchemeDescriptor.all.map(\.name) == SchemeName.allCases)
        for name in SchemeName.allCases {
            #expect(name.descriptor.name == name, "\(name.rawValue) reads another scheme's descriptor")
            #expect(name.descriptor.accuracy.maxRelativeError > 0, "\(name.rawValue) has no accuracy limit")
            #expect(SchemeDescriptor.named(name.rawValue.uppercased())?.name == name)
        }
        #expect(SchemeDescriptor.named("q8_k") == nil)
    }

    @Test("the container, family and ggml type agree: GGUF schemes have a ggml type, a llama file_type and block granularity",
          arguments: SchemeDescriptor.all.map(\.name))
    func containerAgrees(_ name: SchemeName) throws {
        let d = name.descriptor
        switch d.container {
        case .gguf:
            let type = try #require(d.ggmlType)
            #expect(d.family == .gguf)
            #expect(d.llamaFileType != nil, "\(name.rawValue) would be written without general.file_type")
            #expect(d.defaultGranularity == .group(size: type.blockSize))
            #expect(SchemeDescriptor.writing(type)?.name == name)
            #expect(d.precision == "gguf" || !type.isQuantized)
        case .safetensors:
            #expect(d.ggmlType == nil && d.llamaFileType == nil && d.blockScaleOffsets.isEmpty)
            #expect(d.family != .gguf)
        }
    }

    @Test("the llama file types are llama.cpp's llama_ftype values, each used once")
    func llamaFileTypes() {
        // llama.cpp include/llama.h: LLAMA_FTYPE_ALL_F32 0, LLAMA_FTYPE_MOSTLY_F16 1, Q4_0 2, Q4_1 3, Q8_0 7, Q5_0 8,
        // Q5_1 9, Q2_K 10, Q3_K_S 11, Q4_K_S 14, Q5_K_S 16, Q6_K 18, IQ4_NL 25, IQ4_XS 30, BF16 32.
        let expected: [SchemeName: UInt32] = [.f32: 0, .f16: 1, .q4_0: 2, .q4_1: 3, .q8_0: 7, .q5_0: 8, .q5_1: 9, .q2_K: 10, .q3_K: 11, .q4_K: 14,
                                              .q5_K: 16, .q6_K: 18, .iq4_NL: 25, .iq4_XS: 30, .bf16: 32]
        for d in Self.ggufSchemes { #expect(d.llamaFileType == expected[d.name], "\(d.name.rawValue)") }
        #expect(Set(Self.ggufSchemes.compactMap(\.llamaFileType)).count == Self.ggufSchemes.count)
    }

    @Test("the C kernel table encodes and decodes every GGUF scheme's type, and decodes every type dequantizeGGML documents",
          arguments: ggufSchemes.map(\.name))
    func kernelTableCoversGGUFSchemes(_ name: SchemeName) throws {
        let type = try #require(name.ggmlType)
        let kernels = qk_quant_ggml_kernels(type.id)
        #expect(kernels & (QK_GGML_ENCODES | QK_GGML_DECODES) == QK_GGML_ENCODES | QK_GGML_DECODES, "\(type.name)")
        // ggml's quantizer weights with an importance matrix for every type here but Q8_0, F16, BF16 and F32.
        #expect((kernels & QK_GGML_WEIGHTS != 0) == ![SchemeName.q8_0, .f16, .bf16, .f32].contains(name), "\(type.name)")
    }

    @Test("decode-only types have a decoder and no encoder; types without kernels have neither")
    func decodeOnlyTypes() throws {
        for name in ["Q8_1", "TQ1_0", "TQ2_0", "MXFP4"] {
            let type = try #require(GGMLType.named(name))
            #expect(qk_quant_ggml_kernels(type.id) == QK_GGML_DECODES, "\(name)")
        }
        let nvfp4 = try #require(GGMLType.named("NVFP4"))
        #expect(qk_quant_ggml_kernels(nvfp4.id) == 0)
        var out = [Float](repeating: 0, count: nvfp4.blockSize)
        let bytes = [UInt8](repeating: 0, count: nvfp4.bytesPerBlock)
        #expect(throws: QuantizeError.unsupportedLayout(tensor: "t", found: "ggml type NVFP4")) {
            try bytes.withUnsafeBytes { raw in
                try out.withUnsafeMutableBufferPointer { o throws(QuantizeError) in
                    try dequantizeGGML(nvfp4, bytes: raw, elementCount: nvfp4.blockSize, into: o, tensorName: "t")
                }
            }
        }
    }

    @Test("the scale offsets of the output check point at the FP16 scales a block encoder writes",
          arguments: ggufSchemes.filter { !$0.blockScaleOffsets.isEmpty }.map(\.name))
    func scaleOffsetsAreScales(_ name: SchemeName) throws {
        let type = try #require(name.ggmlType)
        let d = name.descriptor
        for offset in d.blockScaleOffsets { #expect(offset >= 0 && offset + 2 <= type.bytesPerBlock) }
        // Values too large for an FP16 scale: the encoder reports block 0, and one of the offsets
        // holds the infinity it wrote; ordinary weights give finite, non-zero scales there.
        let huge = [Float](repeating: 1e9, count: type.blockSize)
        var block = [UInt8](repeating: 0, count: type.bytesPerBlock)
        let status = huge.withUnsafeBufferPointer { x in block.withUnsafeMutableBufferPointer { qk_quant_ggml_encode_portable(type.id, x.baseAddress!, $0.baseAddress!, 1) } }
        #expect(status == 0)
        let scales = d.blockScaleOffsets.map { ElementConversion.float32(fromFloat16Bits: UInt16(block[$0]) | UInt16(block[$0 + 1]) << 8) }
        #expect(scales.contains { $0.isInfinite }, "\(type.name): \(scales)")
        let weights = KernelPatterns.weights.values(type.blockSize).map { $0 + 0.5 }
        _ = weights.withUnsafeBufferPointer { x in block.withUnsafeMutableBufferPointer { qk_quant_ggml_encode_portable(type.id, x.baseAddress!, $0.baseAddress!, 1) } }
        let first = ElementConversion.float32(fromFloat16Bits: UInt16(block[d.blockScaleOffsets[0]]) | UInt16(block[d.blockScaleOffsets[0] + 1]) << 8)
        #expect(first.isFinite && first != 0, "\(type.name): \(first)")
    }

    @Test("granularity requests follow each scheme's rules")
    func granularityRequests() throws {
        #expect(try Scheme(name: .fp8, requested: .tensor, groupSize: nil).granularity == .tensor)
        #expect(try Scheme(name: .fp8, requested: .block, groupSize: nil).granularity == .block(rows: 128, columns: 128))
        #expect(try Scheme(name: .fp8E5M2, requested: .block, groupSize: 64).granularity == .block(rows: 64, columns: 64))
        #expect(try Scheme(name: .int8, requested: .group, groupSize: 64).granularity == .group(size: 64))
        #expect(try Scheme(name: .int4, requested: nil, groupSize: 32).granularity == .group(size: 32))
        #expect(try Scheme(name: .int4, requested: .group, groupSize: nil).granularity == .group(size: 128))
        #expect(try Scheme(name: .int4, requested: .channel, groupSize: 64).granularity == .group(size: 128))
        #expect(try Scheme(name: .fp8, requested: nil, groupSize: 64).granularity == .channel)
        #expect(try Scheme(name: .q4_0, requested: nil, groupSize: 64).granularity == .group(size: 32))
        #expect(throws: SchemeRequestError.groupSizeNeeded(.int8)) { try Scheme(name: .int8, requested: .group, groupSize: nil) }
        #expect(throws: SchemeRequestError.granularityNotApplicable(.tensor, .int4)) { try Scheme(name: .int4, requested: .tensor, groupSize: nil) }
        #expect(throws: SchemeRequestError.granularityNotApplicable(.block, .int8)) { try Scheme(name: .int8, requested: .block, groupSize: nil) }
        #expect(throws: SchemeRequestError.groupSizeNotAllowed(.int4, size: 48, allowed: [32, 64, 128], reason: "compressed-tensors W4A16 presets")) {
            try Scheme(name: .int4, requested: nil, groupSize: 48)
        }
    }

    @Test("output labels name the variant: scheme, FP8 tensor/block scales, int4 groups other than 128, asymmetric int4")
    func outputLabels() {
        #expect(Scheme(name: .fp8, granularity: .tensor).outputLabel == "fp8-tensor")
        #expect(Scheme(name: .fp8E5M2, granularity: .block(rows: 128, columns: 128)).outputLabel == "fp8-e5m2-block")
        #expect(Scheme(name: .int4, granularity: .group(size: 64), symmetric: false).outputLabel == "int4-g64-asym")
        #expect(Scheme(name: .int4).outputLabel == "int4")
        #expect(Scheme(name: .int8, granularity: .group(size: 64)).outputLabel == "int8")
        #expect(Scheme(name: .q4_K).outputLabel == "q4_k")
    }

    @Test("the accuracy table is the descriptors' thresholds")
    func thresholdsFromDescriptors() {
        #expect(AccuracyThresholds.table == SchemeDescriptor.all.map(\.accuracy))
        #expect(AccuracyThresholds.maxRelativeError(for: .q6_K) == SchemeName.q6_K.descriptor.accuracy.maxRelativeError)
    }
}
