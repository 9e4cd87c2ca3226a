import Formats

extension QuantizeJob {
    /// The plan of a mixture run: ``MixturePlanner``'s type for every tensor of a GGUF input (with
    /// `--tensor-type` overrides and `--pure`), in llama-quantize's order; `--skip` keeps tensors in
    /// their input type. A tensor the rule converts but that is already quantized in the input is
    /// an error (llama-quantize refuses to requantize too), as is a planned type this tool does not
    /// write.
    static func planMixture(_ mixture: MixtureDescriptor, checkpoint: Checkpoint, settings: Settings,
                            selection: TensorSelection, input: String) throws -> [PlannedTensor] {
        guard let gguf = checkpoint.gguf else {
            throw QuantizeJobError(.unsupportedConversion, "\(mixture.llamaName) is a llama.cpp GGUF mixture; \(input) is not a GGUF file")
        }
        if selection.patterns.contains(where: \.quantize) {
            throw QuantizeJobError(.unsupportedConversion,
                "--only does not combine with a mixture (\(mixture.name.rawValue)): the mixture's rule decides which tensors are quantized. Use --tensor-type PATTERN=TYPE to choose types, or --skip to keep tensors unquantized")
        }
        let metadata = Dictionary(gguf.metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        let model = try MixtureModel(metadata: metadata)
        let decisions = try MixturePlanner.plan(mixture, model: model,
                                                tensors: checkpoint.ggufTensors.map { MixtureTensor(name: $0.name, shape: $0.dimensions, type: $0.type) },
                                                overrides: settings.tensorTypes, pure: settings.pure,
                                                hasImportanceMatrix: (settings.importance?.matrix.entryCount ?? 0) > 0)
        let records = Dictionary(checkpoint.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var planned: [PlannedTensor] = []
        planned.reserveCapacity(decisions.count)
        for choice in decisions {
            guard let tensor = records[choice.name] else { continue }
            let kept = [OutputTensor(name: tensor.name, type: tensor.type, shape: tensor.shape, byteCount: tensor.byteCount)]
            let defaultScheme = settings.scheme
            if let skip = selection.patterns.first(where: { !$0.quantize && Glob.matches($0.glob, tensor.name) }) {
                planned.append(PlannedTensor(source: tensor, decision: TensorSelection.Decision(quantize: false, rule: skip.label + " (the mixture chose \(choice.type.name))"),
                                             outputs: kept, matrix: nil, scheme: defaultScheme))
                continue
            }
            guard choice.converts else {
                planned.append(PlannedTensor(source: tensor, decision: TensorSelection.Decision(quantize: false, rule: choice.reason),
                                             outputs: kept, matrix: nil, scheme: defaultScheme))
                continue
            }
            guard case .ggml(let stored) = tensor.type, stored == .f32 || stored == .f16 || stored == .bf16 else {
                throw QuantizeJobError(.unsupportedConversion,
                    "\(DisplayText.shortened(tensor.name)) is stored as \(tensor.type) and \(mixture.llamaName) would make it \(choice.type.name) (\(choice.reason)); mixtures start from an F32, F16 or BF16 GGUF (llama-quantize refuses to requantize too). Convert the original model with --outtype f16")
            }
            guard let descriptor = SchemeDescriptor.writing(choice.type) else {
                throw QuantizeJobError(.unsupportedConversion,
                    "\(DisplayText.shortened(tensor.name)) would be written as \(choice.type.name) (\(choice.reason)), which this tool does not write; choose another type with --tensor-type")
            }
            let scheme = Scheme(name: descriptor.name)
            let columns = tensor.shape.last ?? 0
            let rows = columns > 0 ? tensor.elementCount / columns : 0
            let (importance, rowsPerExpert) = try QuantizeJob.importance(settings.importance?.matrix, name: tensor.name, shape: tensor.shape, scheme: scheme)
            let quantizer = try TensorQuantizer(scheme: scheme, rows: rows, columns: columns, tensorName: tensor.name, options: settings.options,
                                                importance: importance, rowsPerExpert: rowsPerExpert)
            let outputs = QuantizeJob.outputs(of: quantizer, name: tensor.name, shape: tensor.shape)
            planned.append(PlannedTensor(source: tensor, decision: TensorSelection.Decision(quantize: true, rule: choice.reason),
                                         outputs: outputs, matrix: (rows, columns), scheme: scheme,
                                         importance: importance, rowsPerExpert: rowsPerExpert))
        }
        guard planned.count == checkpoint.tensors.count else {
            throw QuantizeJobError(.unsupportedConversion, "\(input): the mixture plan covers \(planned.count) of \(checkpoint.tensors.count) tensors (duplicate tensor names?)")
        }
        return planned
    }

    /// The importance-matrix values of the weight `name` (row-major `shape`) for a GGUF scheme
    /// (``ImportanceMatrix/quantizationWeights(forTensor:columns:experts:)``: what llama-quantize
    /// passes ggml), with the rows per expert slice of a 3-D expert tensor; (nil, nil) without a
    /// matrix, for a safetensors scheme, or without an entry for the tensor.
    static func importance(_ matrix: ImportanceMatrix?, name: String, shape: [Int], scheme: Scheme) throws -> ([Float]?, Int?) {
        guard let matrix, scheme.descriptor.container == .gguf, let columns = shape.last, columns > 0 else { return (nil, nil) }
        let experts = shape.count == 3 ? shape[0] : 1
        guard let values = try matrix.quantizationWeights(forTensor: name, columns: columns, experts: experts) else { return (nil, nil) }
        return (values, experts > 1 ? shape.reduce(1, *) / columns / experts : nil)
    }
}
