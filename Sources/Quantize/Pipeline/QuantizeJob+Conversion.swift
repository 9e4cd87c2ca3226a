import Formats

extension QuantizeJob {
    /// The plan of a conversion run (``Settings/conversion``): the twin's tensors (renamed, GGUF
    /// shapes, F32), typed by ``MixturePlanner`` as llama-quantize would type them in the twin — the
    /// mixture's rule, or `--pure` with the scheme's type for a single type — in llama-quantize's order.
    static func planConversion(_ conversion: ConversionPlan, checkpoint: Checkpoint, settings: Settings,
                               selection: TensorSelection, input: String) throws -> [PlannedTensor] {
        if !selection.patterns.isEmpty {
            throw QuantizeJobError(.unsupportedConversion,
                "--only and --skip do not combine with a conversion to GGUF: llama.cpp's rule decides which tensors are quantized. Use --tensor-type PATTERN=TYPE (GGUF names, e.g. attn_v=q8_0) to choose types")
        }
        let records = Dictionary(checkpoint.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let twin = conversion.tensors.map { MixtureTensor(name: $0.name, shape: $0.shape.reversed(), type: $0.type) }
        let decisions: [MixtureDecision]
        if let mixture = settings.mixture {
            decisions = try MixturePlanner.plan(mixture, model: try conversion.mixtureModel(), tensors: twin,
                                                overrides: settings.tensorTypes, pure: settings.pure,
                                                hasImportanceMatrix: (settings.importance?.matrix.entryCount ?? 0) > 0)
        } else {
            guard let type = settings.scheme.name.ggmlType, let fileType = settings.scheme.descriptor.llamaFileType else {
                throw QuantizeJobError(.unsupportedConversion, "\(settings.scheme.name.rawValue) is not a GGUF type; a conversion writes GGUF")
            }
            decisions = try MixturePlanner.plan(pure: type, label: LlamaFileTypeName.name(fileType) ?? type.name,
                                                tensors: twin, overrides: settings.tensorTypes)
        }
        let entries = Dictionary(conversion.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var planned: [PlannedTensor] = []
        for choice in decisions {
            guard let entry = entries[choice.name] else { continue }
            if let values = entry.values {
                // Computed by the converter (llama3's rope_freqs): no input bytes, kept F32 as
                // llama-quantize keeps every 1-D tensor.
                guard values.count == entry.shape.reduce(1, *), entry.type == .f32 else {
                    throw QuantizeJobError(.unsupportedConversion, "\(input): the computed tensor \(entry.name) has \(values.count) values for shape \(entry.shape)")
                }
                let record = TensorRecord(name: entry.source, type: .dtype(.f32), shape: entry.shape, elementCount: values.count,
                                          byteCount: 0, fileOffset: 0, fileIndex: 0)
                let output = OutputTensor(name: entry.name, type: .ggml(.f32), shape: entry.shape, byteCount: values.count * 4)
                planned.append(PlannedTensor(source: record, decision: TensorSelection.Decision(quantize: false, rule: "computed by the conversion (F32)"),
                                             outputs: [output], matrix: nil, scheme: settings.scheme, conversion: entry))
                continue
            }
            guard let source = records[entry.source] else {
                throw QuantizeJobError(.unsupportedConversion, "\(input) has no tensor '\(entry.source)' (planned as \(entry.name)); the checkpoint is incomplete")
            }
            if let decoding = entry.decoding {
                for part in decoding.parts where records[part.name] != part {
                    throw QuantizeJobError(.unsupportedConversion, "\(input) has no tensor '\(part.name)' (a stored part of \(entry.name)); the checkpoint is incomplete")
                }
            } else if source.shape.reduce(1, *) != entry.shape.reduce(1, *) {
                throw QuantizeJobError(.unsupportedConversion,
                    "\(entry.source) is \(source.type) \(source.shape); the conversion reads F32, F16 or BF16 tensors of the planned shape \(entry.shape)")
            }
            guard entry.decoding != nil || source.type == .dtype(.f32) || source.type == .dtype(.f16) || source.type == .dtype(.bf16) else {
                throw QuantizeJobError(.unsupportedConversion,
                    "\(entry.source) is \(source.type) \(source.shape); the conversion reads F32, F16 or BF16 tensors of the planned shape \(entry.shape)")
            }
            let elements = entry.shape.reduce(1, *)
            let kept = [OutputTensor(name: entry.name, type: .ggml(entry.type), shape: entry.shape, byteCount: elements * entry.type.bytesPerBlock / entry.type.blockSize)]
            guard choice.converts else {
                planned.append(PlannedTensor(source: source, decision: TensorSelection.Decision(quantize: false, rule: choice.reason),
                                             outputs: kept, matrix: nil, scheme: settings.scheme, conversion: entry))
                continue
            }
            guard let descriptor = SchemeDescriptor.writing(choice.type) else {
                throw QuantizeJobError(.unsupportedConversion,
                    "\(entry.name) would be written as \(choice.type.name) (\(choice.reason)), which this tool does not write; choose another type with --tensor-type")
            }
            let scheme = Scheme(name: descriptor.name)
            let columns = entry.shape.last ?? 0
            let rows = columns > 0 ? elements / columns : 0
            // The importance matrix is keyed by GGUF names (what llama-quantize sees in the twin).
            let (importance, rowsPerExpert) = try QuantizeJob.importance(settings.importance?.matrix, name: entry.name, shape: entry.shape, scheme: scheme)
            let quantizer = try TensorQuantizer(scheme: scheme, rows: rows, columns: columns, tensorName: entry.name, options: settings.options,
                                                importance: importance, rowsPerExpert: rowsPerExpert)
            let outputs = QuantizeJob.outputs(of: quantizer, name: entry.name, shape: entry.shape)
            planned.append(PlannedTensor(source: source, decision: TensorSelection.Decision(quantize: true, rule: choice.reason),
                                         outputs: outputs, matrix: (rows, columns), scheme: scheme, importance: importance,
                                         rowsPerExpert: rowsPerExpert, conversion: entry))
        }
        guard planned.count == conversion.tensors.count else {
            throw QuantizeJobError(.unsupportedConversion, "\(input): the conversion plan names \(conversion.tensors.count) tensors but \(planned.count) were planned (duplicate GGUF names?)")
        }
        return planned
    }

    /// The FP32 values of a conversion's quantized source weight (``ConversionPlan/Decoding``), decoded
    /// from its stored parts as the converter's `dequant_model` does (`weight.float() * scale`, the
    /// same FP32 products), each part copied out of the mapping under the SIGBUS guard.
    /// - Returns: the values (owned by the caller) and the source record re-typed as the F32 tensor
    ///   of the logical shape, which the rest of the tensor's processing reads.
    func decodedConversionSource(_ planned: PlannedTensor, decoding: ConversionPlan.Decoding) throws -> (UnsafeMutableBufferPointer<Float>, TensorRecord) {
        guard let entry = planned.conversion else { throw QuantizeJobError(.unsupportedConversion, "\(planned.source.name) is not part of a conversion") }
        let columns = entry.shape.count >= 2 ? entry.shape[entry.shape.count - 1] : (entry.shape.first ?? 0)
        let elements = entry.shape.reduce(1, *)
        let rows = columns > 0 ? elements / columns : 0
        var parts: [QuantizedTensor.Part] = []
        for record in decoding.parts {
            let suffix = record.name.split(separator: ".").last.map(String.init) ?? record.name
            if suffix == "weight_shape" {
                let stored = checkpoint.storedShape(record)
                guard stored == [rows, columns] else {
                    throw QuantizeJobError(.unsupportedConversion, "\(entry.source): its weight_shape says \(stored.map { "\($0)" } ?? "no two positive I64/I32 values"), but the conversion planned \(entry.shape)")
                }
            }
            let data = Array(try guardedData(for: record))
            parts.append(QuantizedTensor.Part(suffix: suffix, type: record.type, shape: record.shape, data: data))
        }
        let block = decoding.blockSize.flatMap { $0.count == 2 ? (rows: $0[0], columns: $0[1]) : nil }
        let values = try dequantized(QuantizedTensor(rows: rows, columns: columns, parts: parts), tensorName: entry.source,
                                     groupSize: decoding.groupSize, blockSize: block)
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
        _ = buffer.initialize(from: values)
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            buffer.deallocate()
            throw QuantizeError.nonFiniteWeight(tensor: entry.source, row: columns > 0 ? bad / columns : 0, column: columns > 0 ? bad % columns : bad, value: values[bad])
        }
        var record = planned.source
        record.type = .dtype(.f32)
        record.shape = entry.shape
        record.elementCount = elements
        record.byteCount = elements * 4
        return (buffer, record)
    }

    /// Copies `source` into `target` with llama.cpp's Q/K row permutation (`entry.permuteHeads`
    /// heads; formats.md §2.9), rows kept in their stored type.
    static func permuteRows(_ source: UnsafeRawBufferPointer, entry: ConversionPlan.Tensor, into target: UnsafeMutableRawBufferPointer) {
        guard let heads = entry.permuteHeads, let rows = entry.shape.first, rows > 0, let from = source.baseAddress,
              let to = target.baseAddress, target.count == source.count else { return }
        let rowBytes = source.count / rows
        for row in 0..<rows {
            let origin = ConversionPlan.permutedSourceRow(row, rows: rows, heads: heads)
            to.advanced(by: row * rowBytes).copyMemory(from: from.advanced(by: origin * rowBytes), byteCount: rowBytes)
        }
    }

    /// Writes a kept tensor of a conversion in the twin's type (F32): converted from the stored
    /// F16/BF16 (exact), copied when already F32.
    func writeConverted(_ source: UnsafeRawBufferPointer, planned: PlannedTensor, scratch floats: UnsafeMutableBufferPointer<Float>,
                        write: (OutputTensor, UnsafeRawBufferPointer) throws -> Void) throws {
        guard case .dtype(let dtype) = planned.source.type, dtype != .f32 else {
            try write(planned.outputs[0], source)
            return
        }
        try QuantizeJob.convertToFloat32(source, type: planned.source.type, into: floats, name: planned.source.name, threads: settings.threads)
        try write(planned.outputs[0], UnsafeRawBufferPointer(floats))
    }
}

/// llama.cpp's names of its file types (`llama-quantize`'s table), for messages and reasons.
enum LlamaFileTypeName {
    static func name(_ fileType: UInt32) -> String? {
        let names: [UInt32: String] = [0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
                                       12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
                                       25: "IQ4_NL", 30: "IQ4_XS", 32: "BF16"]
        return names[fileType]
    }
}
