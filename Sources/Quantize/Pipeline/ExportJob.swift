import CKernels
import Dispatch
import Formats
import Foundation

/// One `quantize --to bf16 model.gguf -o model-dir/` run: a GGUF file decoded tensor by tensor
/// (any type ``dequantizeGGML(_:bytes:elementCount:into:tensorName:)`` reads) into a Hugging Face
/// model directory — safetensors shards (an index above one shard), config.json and the side
/// files of an ``ExportPlan`` — staged and moved into place in one transaction.
///
/// With a safetensors ``Settings/scheme`` (`--to fp8|int8|int4 model.gguf -o model-dir/`) the
/// linear weights the selection rule picks are decoded to FP32 and quantized straight into the
/// scheme's compressed-tensors layout (config.json gets its `quantization_config`), and the other
/// tensors are written as ``Settings/dtype`` (BF16): one pass, no intermediate BF16 directory.
///
/// Memory: the input is mapped; each kept tensor is decoded in bands of rows into a buffer of at
/// most ``chunkBytes`` of output plus 512 kB of FP32 per core, so resident memory does not follow
/// the model; a quantized weight is decoded whole to FP32 (the largest linear weight's FP32 size).
public final class ExportJob {
    /// What a run is asked to do.
    public struct Settings: Sendable {
        /// The stored type of every tensor: F32, F16 or BF16.
        public var dtype: DType
        /// The output directory.
        public var output: String
        /// Whether an existing output (one of ours) may be replaced.
        public var overwrite: Bool
        /// The shard limit in bytes of tensor data (transformers' `max_shard_size`, 50 GB by default
        /// in transformers 5); one shard is written without an index.
        public var maxShardByteCount: Int
        /// Worker threads (nil: every core). The bytes written do not depend on it.
        public var threads: Int?
        /// A safetensors scheme (fp8, int8, int4 …) for the selected linear weights; nil writes
        /// every tensor as ``dtype``.
        public var scheme: Scheme? = nil
        /// The scheme's options.
        public var options = QuantizeOptions()
        /// Which tensors the scheme quantizes (Hugging Face names; `--only`/`--skip`).
        public var selection = TensorSelection()

        /// Creates settings.
        public init(dtype: DType, output: String, overwrite: Bool = false, maxShardByteCount: Int = 50_000_000_000, threads: Int? = nil) {
            self.dtype = dtype
            self.output = output
            self.overwrite = overwrite
            self.maxShardByteCount = maxShardByteCount
            self.threads = threads
        }
    }

    /// What a finished run reports.
    public struct Summary: Sendable {
        /// The output directory.
        public var output: String
        /// The shard files written, in order.
        public var shardNames: [String]
        /// Tensors written.
        public var tensorCount: Int
        /// Input tensor bytes read.
        public var inputBytes: Int
        /// Output tensor bytes written.
        public var outputBytes: Int
        /// Wall time of the run in seconds.
        public var seconds: Double
        /// Peak resident memory of the process in bytes, where known.
        public var peakResidentBytes: Int?
        /// What the run noticed (metadata not carried over, cleaned-up leftovers).
        public var notes: [String]
    }

    /// Output bytes decoded before each write (8 MiB): large enough to amortise the write, small
    /// enough to keep memory flat.
    public static let chunkBytes = 8 << 20

    /// The input.
    public let checkpoint: Checkpoint
    /// The plan.
    public let plan: ExportPlan
    /// The settings.
    public let settings: Settings
    /// The shards as planned (names and tensors).
    public let shards: [SafetensorsShardedWriter.PlannedShard]
    /// Per planned tensor (by its Hugging Face name): what the selection decided, and for a
    /// quantized weight its matrix and output parts (the weight's own name first).
    public let fates: [String: Fate]
    private let records: [String: TensorRecord]

    /// What becomes of one planned tensor.
    public struct Fate: Sendable {
        /// Quantize or keep, and why.
        public var decision: TensorSelection.Decision
        /// Rows and columns of the quantized matrix, nil when kept.
        public var matrix: (rows: Int, columns: Int)?
        /// The tensors written for it: itself as ``Settings/dtype`` when kept, the scheme's parts when quantized.
        public var outputs: [QuantizeJob.OutputTensor]
    }

    /// Opens the GGUF input and checks the plan against it; nothing is written.
    /// - Throws: ``FormatError`` for an unreadable input, ``QuantizeJobError`` for a plan that names
    ///   a missing tensor or a shape that does not match, a type without a decoder, an output that
    ///   exists (without `overwrite`) or would replace the input.
    public init(input: String, plan: ExportPlan, settings: Settings) throws {
        let checkpoint = try Checkpoint(path: input)
        guard checkpoint.format == .gguf else {
            throw QuantizeJobError(.unsupportedConversion, "\(input) is not a GGUF file; the Hugging Face export reads GGUF")
        }
        guard settings.dtype == .f32 || settings.dtype == .f16 || settings.dtype == .bf16 else {
            throw QuantizeJobError(.unsupportedConversion, "the Hugging Face export writes F32, F16 or BF16 tensors, not \(settings.dtype.rawValue)")
        }
        if let scheme = settings.scheme, scheme.descriptor.container != .safetensors {
            throw QuantizeJobError(.unsupportedConversion, "the Hugging Face export quantizes to safetensors schemes (fp8, int8, int4 …), not \(scheme.name.rawValue)")
        }
        guard settings.maxShardByteCount > 0 else {
            throw QuantizeJobError(.unsupportedConversion, "the shard size limit must be positive")
        }
        self.checkpoint = checkpoint
        self.plan = plan
        self.settings = settings
        let records = Dictionary(checkpoint.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.records = records
        var seen = Set<String>()
        for entry in plan.tensors {
            guard seen.insert(entry.name).inserted else {
                throw QuantizeJobError(.unsupportedConversion, "\(input): the export plan names '\(entry.name)' twice")
            }
            guard let record = records[entry.source] else {
                throw QuantizeJobError(.unsupportedConversion, "\(input) has no tensor '\(entry.source)' (planned as \(entry.name)); the GGUF is incomplete")
            }
            guard case .ggml(let type) = record.type, qk_quant_ggml_kernels(type.id) & QK_GGML_DECODES != 0 else {
                throw QuantizeJobError(.unsupportedConversion, "\(entry.source) is stored as \(record.type), which quantize cannot decode; the export needs a type it reads (F32, F16, BF16, Q4_0 … Q8_0, the k-quants, IQ4_NL/XS, TQ1_0/TQ2_0, MXFP4)")
            }
            let columns = entry.shape.last ?? 0
            guard entry.shape.reduce(1, *) == record.elementCount, columns > 0, columns % type.blockSize == 0 else {
                throw QuantizeJobError(.unsupportedConversion, "\(entry.source) has \(record.elementCount) elements in rows of \(record.shape.last ?? 0); the plan asks for the shape \(entry.shape)")
            }
            if let heads = entry.unpermuteHeads {
                let rows = entry.shape.first ?? 0
                guard entry.shape.count == 2, heads > 0, rows % (2 * heads) == 0 else {
                    throw QuantizeJobError(.unsupportedConversion, "\(entry.source) has shape \(entry.shape), whose rows do not split into \(heads) heads of two halves to undo llama.cpp's Q/K permutation")
                }
            }
        }

        let unmatched = settings.selection.unmatchedPatterns(in: plan.tensors.map(\.name))
        if !unmatched.isEmpty {
            throw QuantizeJobError(.patternMatchedNothing,
                "\(unmatched.map(\.label).joined(separator: ", ")) matched no tensor of the exported model; its Hugging Face names look like \(plan.tensors.prefix(3).map { "'\($0.name)'" }.joined(separator: ", ")). Check them with --dry-run")
        }
        var fates: [String: Fate] = [:]
        for entry in plan.tensors {
            let kept = [QuantizeJob.OutputTensor(name: entry.name, type: .dtype(settings.dtype), shape: entry.shape,
                                     byteCount: entry.shape.reduce(1, *) * settings.dtype.bitWidth / 8)]
            guard let scheme = settings.scheme else {
                fates[entry.name] = Fate(decision: TensorSelection.Decision(quantize: false, rule: "exported as \(settings.dtype.rawValue)"), matrix: nil, outputs: kept)
                continue
            }
            // The GGUF blocks are decoded to FP32 first, so the rule sees a float tensor.
            var decision = settings.selection.decide(name: entry.name, type: .dtype(.f32), shape: entry.shape)
            var fate = Fate(decision: decision, matrix: nil, outputs: kept)
            if decision.quantize {
                let columns = entry.shape.last ?? 0
                let rows = columns > 0 ? entry.shape.reduce(1, *) / columns : 0
                switch Result(catching: { () throws(QuantizeError) in
                    try TensorQuantizer(scheme: scheme, rows: rows, columns: columns, tensorName: entry.name, options: settings.options)
                }) {
                case .success(let quantizer):
                    fate.matrix = (rows, columns)
                    fate.outputs = QuantizeJob.outputs(of: quantizer, name: entry.name, shape: entry.shape)
                case .failure(.shapeNotDivisible(_, _, let blockSize)):
                    decision = TensorSelection.Decision(quantize: false, rule: "rows of \(columns) are not a multiple of the \(blockSize)-element block (kept)")
                    fate.decision = decision
                case .failure(let error):
                    throw error
                }
            }
            fates[entry.name] = fate
        }
        if settings.scheme != nil, !fates.values.contains(where: { $0.decision.quantize }) {
            throw QuantizeJobError(.nothingToQuantize, "no tensor of \(input) would be quantized (\(plan.tensors.count) tensors, none a 2-D linear weight the rules select); see --dry-run for each tensor's rule")
        }
        self.fates = fates
        let entries = plan.tensors.flatMap { entry in
            (fates[entry.name]?.outputs ?? []).compactMap { output -> SafetensorsEntry? in
                guard case .dtype(let dtype) = output.type else { return nil }
                return SafetensorsEntry(name: output.name, dtype: dtype, shape: output.shape)
            }
        }
        let groups = try SafetensorsShardedWriter.planShards(entries, maxShardByteCount: settings.maxShardByteCount, path: settings.output)
        let count = max(groups.count, 1)
        func five(_ value: Int) -> String { let text = String(value); return String(repeating: "0", count: max(0, 5 - text.count)) + text }
        shards = (0..<count).map { position in
            SafetensorsShardedWriter.PlannedShard(fileName: count == 1 ? "model.safetensors" : "model-\(five(position + 1))-of-\(five(count)).safetensors",
                                                  tensors: position < groups.count ? groups[position] : [], metadata: ["format": "pt"])
        }

        try QuantizeJob.checkOutputSpares(input: input, checkpoint: checkpoint, kind: .gguf, output: settings.output)
        if FileManager.default.fileExists(atPath: settings.output) {
            guard settings.overwrite else {
                throw QuantizeJobError(.outputExists, "the output \(settings.output) already exists; pass --force to replace it, or name another output with -o")
            }
            try checkReplaceable()
        }
    }

    /// With `--force`, refuses to replace anything but a model directory holding only what an
    /// export writes (weights, the index, config.json, the plan's side files, the manifest).
    private func checkReplaceable() throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        _ = fm.fileExists(atPath: settings.output, isDirectory: &isDirectory)
        guard isDirectory.boolValue else {
            throw QuantizeJobError(.outputNotOurs, "--force would replace \(settings.output), which is a file, with a model directory; quantize only replaces its own outputs. Remove it yourself or name another output with -o")
        }
        let ours = Set(plan.files.map(\.name) + ["config.json", SafetensorsCheckpoint.indexFileName, IntegrityManifest.directoryFileName])
        let foreign = ((try? fm.contentsOfDirectory(atPath: settings.output)) ?? []).sorted().filter { name in
            !(ours.contains(name) || name.hasSuffix(".safetensors"))
        }
        if !foreign.isEmpty {
            throw QuantizeJobError(.outputNotOurs, "--force would replace the directory \(settings.output), which holds \(foreign.prefix(3).map { "'\(DisplayText.shortened($0))'" }.joined(separator: ", ")) that an export does not write; move them out, or name another output with -o")
        }
    }

    /// Input tensor bytes of the planned tensors.
    public var inputBytes: Int { plan.tensors.reduce(0) { $0 + (records[$1.source]?.byteCount ?? 0) } }
    /// Output tensor bytes.
    public var outputBytes: Int { fates.values.reduce(0) { $0 + $1.outputs.reduce(0) { $0 + $1.byteCount } } }
    /// Tensors the scheme quantizes.
    public var quantizedCount: Int { fates.values.filter(\.decision.quantize).count }

    /// Decodes every tensor into the staged directory, writes config.json and the side files, reads
    /// the shards back, and moves the directory into place.
    /// - Throws: ``FormatError``, ``QuantizeError`` (an undecodable block); nothing is left at the
    ///   output path when it throws.
    public func run(progress: ((_ index: Int, _ count: Int, _ name: String) -> Void)? = nil) throws -> Summary {
        let start = Date()
        let totalParameters = plan.tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let sink = try SafetensorsDirectorySink(target: settings.output, shards: shards, order: .reference,
                                                indexFileName: shards.count > 1 ? SafetensorsCheckpoint.indexFileName : nil,
                                                indexMetadata: [JSONMember("total_parameters", .number(JSONNumber(totalParameters)))])
        sink.transaction.replacesExisting = settings.overwrite
        do {
            return try run(into: sink, start: start, progress: progress)
        } catch let error as FormatError {
            throw sink.transaction.publicError(error)
        } catch let error as QuantizeJobError {
            throw QuantizeJobError(error.code, sink.transaction.publicText(error.message))
        }
    }

    private func run(into sink: SafetensorsDirectorySink, start: Date, progress: ((Int, Int, String) -> Void)?) throws -> Summary {
        let entries = Dictionary(plan.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        // Output tensor name → the planned tensor it belongs to (a quantized weight has several).
        var owners: [String: String] = [:]
        for (name, fate) in fates { for output in fate.outputs { owners[output.name] = name } }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ExportJob.chunkBytes, alignment: 64)
        defer { buffer.deallocate() }
        // The encoded parts of a quantized weight wait here until the sink asks for each.
        var pending: [String: [UInt8]] = [:]
        for (index, name) in sink.writeOrder.enumerated() {
            if let bytes = pending.removeValue(forKey: name) {
                try bytes.withUnsafeBytes { try sink.write($0, for: name) }
                continue
            }
            guard let owner = owners[name], let entry = entries[owner], let record = records[entry.source], let fate = fates[owner] else { continue }
            progress?(index + 1, sink.writeOrder.count, owner)
            let source = try checkpoint.readData(for: record)
            if let matrix = fate.matrix, let scheme = settings.scheme {
                let parts = try quantize(entry, record: record, source: source, matrix: matrix, scheme: scheme, buffer: buffer)
                for (output, bytes) in zip(fate.outputs, parts) { pending[output.name] = bytes }
                if let bytes = pending.removeValue(forKey: name) { try bytes.withUnsafeBytes { try sink.write($0, for: name) } }
            } else {
                try write(entry, record: record, source: source, dtype: settings.dtype, buffer: buffer) { try sink.write($0, for: name) }
            }
            checkpoint.release(record)
        }
        let staged = try sink.finishTensors()
        // Read the staged shards back: every planned output tensor, with its dtype and shape, once.
        let written = try Checkpoint(path: sink.transaction.stagingDirectory)
        let outputs = fates.values.flatMap(\.outputs)
        let expected = Dictionary(outputs.map { ($0.name, ($0.shape, $0.type)) }, uniquingKeysWith: { first, _ in first })
        guard written.tensors.count == outputs.count, written.tensors.allSatisfy({ tensor in expected[tensor.name].map { shape, type in shape == tensor.shape && type == tensor.type } ?? false }) else {
            throw QuantizeJobError(.outputCheckFailed, "the staged shards do not hold the \(outputs.count) planned tensors with their shapes; nothing was written")
        }

        var config = plan.config
        if case .object(var members) = config {
            members.removeAll { $0.key == "dtype" || $0.key == "torch_dtype" || $0.key == "quantization_config" }
            let dtypeName = settings.dtype == .bf16 ? "bfloat16" : settings.dtype == .f16 ? "float16" : "float32"
            let at = members.firstIndex { $0.key > "dtype" } ?? members.count
            members.insert(JSONMember("dtype", .string(dtypeName)), at: at)
            if let scheme = settings.scheme {
                let kept = plan.tensors.filter { fates[$0.name]?.decision.quantize == false }.map { ($0.name, $0.shape) }
                let tied = plan.config["tie_word_embeddings"]?.bool == true && fates["lm_head.weight"]?.decision.quantize != true
                if let quantization = scheme.quantizationConfig(ignore: QuantizeJob.ignoredModules(kept, tiedHead: tied), options: settings.options) {
                    members.append(JSONMember("quantization_config", quantization))
                }
            }
            config = .object(members)
        }
        try sink.writeConfig(config)
        for file in plan.files { try sink.transaction.write(file.bytes, named: file.name) }

        let digest = InputDigest(file: checkpoint.mappedFile(0))
        let input = try digest.finish()
        sink.transaction.manifest = IntegrityManifest(scheme: settings.scheme?.name.rawValue ?? settings.dtype.rawValue.lowercased(),
                                                      options: ["export": "huggingface", "max_shard_bytes": "\(settings.maxShardByteCount)"],
                                                      files: [], inputs: [input])
        try sink.commit()
        return Summary(output: settings.output, shardNames: staged.map { URL(fileURLWithPath: $0).lastPathComponent }, tensorCount: plan.tensors.count,
                       inputBytes: inputBytes, outputBytes: outputBytes, seconds: Date().timeIntervalSince(start),
                       peakResidentBytes: ProcessMemory.peakResidentBytes(), notes: sink.transaction.notes + plan.notes)
    }

    /// Decodes one weight whole to FP32 (Hugging Face row order) and encodes it with `scheme`.
    /// - Returns: the bytes of each output part, in the order of its ``Fate/outputs``.
    private func quantize(_ entry: ExportPlan.Tensor, record: TensorRecord, source: UnsafeRawBufferPointer, matrix: (rows: Int, columns: Int),
                          scheme: Scheme, buffer: UnsafeMutableRawBufferPointer) throws -> [[UInt8]] {
        let floats = UnsafeMutableRawBufferPointer.allocate(byteCount: matrix.rows * matrix.columns * 4, alignment: 64)
        defer { floats.deallocate() }
        var offset = 0
        try write(entry, record: record, source: source, dtype: .f32, buffer: buffer) { chunk in
            guard offset + chunk.count <= floats.count else {
                throw QuantizeJobError(.unsupportedConversion, "\(entry.source) decodes to more than its \(matrix.rows)×\(matrix.columns) weights")
            }
            UnsafeMutableRawBufferPointer(rebasing: floats[offset..<(offset + chunk.count)]).copyMemory(from: chunk)
            offset += chunk.count
        }
        let quantizer = try TensorQuantizer(scheme: scheme, rows: matrix.rows, columns: matrix.columns, tensorName: entry.name, options: settings.options)
        let parts = quantizer.layouts.map { UnsafeMutableRawBufferPointer.allocate(byteCount: $0.byteCount, alignment: 64) }
        defer { for part in parts { part.deallocate() } }
        for part in parts { part.initializeMemory(as: UInt8.self, repeating: 0) }
        try QuantizeJob.encodeStreaming(UnsafeRawBufferPointer(floats), type: .dtype(.f32), with: quantizer, into: parts, threads: settings.threads)
        return parts.map { [UInt8]($0) }
    }

    /// Decodes one tensor in chunks of whole rows of `dtype` (Hugging Face row order: the GGUF row holding
    /// each row is found through ``ExportPlan/ggufRow(holding:rows:heads:)``) and hands each chunk to `write`.
    private func write(_ entry: ExportPlan.Tensor, record: TensorRecord, source: UnsafeRawBufferPointer, dtype: DType,
                       buffer: UnsafeMutableRawBufferPointer, write: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard case .ggml(let type) = record.type else { return }
        let columns = entry.shape.last ?? 1
        let rows = entry.shape.reduce(1, *) / columns
        guard rows > 0, let sourceRowBytes = type.byteCount(elementCount: columns), sourceRowBytes * rows == source.count else {
            throw QuantizeJobError(.unsupportedConversion, "\(entry.source): \(source.count) bytes do not hold \(rows) rows of \(columns) \(type.name) elements")
        }
        let rowBytes = columns * dtype.bitWidth / 8
        let copies = (type == .f32 && dtype == .f32) || (type == .f16 && dtype == .f16) || (type == .bf16 && dtype == .bf16)
        let chunkRows = max(1, ExportJob.chunkBytes / max(rowBytes, 1))
        // A row wider than the chunk buffer gets its own buffer.
        let chunkBuffer = rowBytes > buffer.count ? UnsafeMutableRawBufferPointer.allocate(byteCount: rowBytes, alignment: 64) : buffer
        defer { if chunkBuffer.baseAddress != buffer.baseAddress { chunkBuffer.deallocate() } }
        let heads = entry.unpermuteHeads
        let bandRows = max(1, QuantizeJob.bandFloats / columns)
        let failure = UncheckedSendable(value: ErrorBox())
        var r0 = 0
        while r0 < rows {
            let r1 = min(rows, r0 + chunkRows)
            let shared = UncheckedSendable(value: (source, chunkBuffer))
            let bands = (r1 - r0 + bandRows - 1) / bandRows
            let name = entry.source, start = r0
            QuantizeJob.perform(iterations: bands, threads: settings.threads) { band in
                let b0 = start + band * bandRows, b1 = min(r1, b0 + bandRows)
                let (source, target) = shared.value
                withUnsafeTemporaryAllocation(of: Float.self, capacity: copies ? 0 : columns) { floats in
                    for row in b0..<b1 {
                        let from = heads.map { ExportPlan.ggufRow(holding: row, rows: rows, heads: $0) } ?? row
                        let input = UnsafeRawBufferPointer(rebasing: source[(from * sourceRowBytes)..<((from + 1) * sourceRowBytes)])
                        let output = UnsafeMutableRawBufferPointer(rebasing: target[((row - start) * rowBytes)..<((row - start + 1) * rowBytes)])
                        if copies {
                            output.copyMemory(from: input)
                            continue
                        }
                        do {
                            try dequantizeGGML(type, bytes: input, elementCount: columns, into: floats, tensorName: name)
                            try ElementConversion.fromFloat32(UnsafeBufferPointer(floats), to: dtype, into: output)
                        } catch let error as QuantizeError {
                            failure.value.record(error, chunk: row)
                            return
                        } catch {
                            failure.value.record(.unsupportedLayout(tensor: name, found: "\(error)"), chunk: row)
                            return
                        }
                    }
                }
            }
            if let error = failure.value.first { throw error }
            try write(UnsafeRawBufferPointer(rebasing: chunkBuffer[0..<((r1 - r0) * rowBytes)]))
            r0 = r1
        }
    }
}
