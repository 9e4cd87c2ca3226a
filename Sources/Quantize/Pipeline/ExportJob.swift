import CKernels
import Dispatch
import Formats
import Foundation

/// One `quantize --to bf16 model.gguf -o model-dir/` run: a GGUF file decoded tensor by tensor
/// (any type ``dequantizeGGML(_:bytes:elementCount:into:tensorName:)`` reads) into a Hugging Face
/// model directory — safetensors shards (an index above one shard), config.json and the side
/// files of an ``ExportPlan`` — staged and moved into place in one transaction.
///
/// Memory: the input is mapped; each tensor is decoded in bands of rows into a buffer of at most
/// ``chunkBytes`` of output plus 512 kB of FP32 per core, so resident memory does not follow the
/// model or even the largest tensor.
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
    private let records: [String: TensorRecord]

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

        let entries = plan.tensors.map { SafetensorsEntry(name: $0.name, dtype: settings.dtype, shape: $0.shape) }
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
    public var outputBytes: Int { plan.tensors.reduce(0) { $0 + $1.shape.reduce(1, *) * settings.dtype.bitWidth / 8 } }

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
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ExportJob.chunkBytes, alignment: 64)
        defer { buffer.deallocate() }
        for (index, name) in sink.writeOrder.enumerated() {
            guard let entry = entries[name], let record = records[entry.source] else { continue }
            progress?(index + 1, sink.writeOrder.count, name)
            let source = try checkpoint.readData(for: record)
            try write(entry, record: record, source: source, buffer: buffer) { try sink.write($0, for: name) }
            checkpoint.release(record)
        }
        let staged = try sink.finishTensors()
        // Read the staged shards back: every planned tensor, with its dtype and shape, once.
        let written = try Checkpoint(path: sink.transaction.stagingDirectory)
        let expected = Dictionary(plan.tensors.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first })
        guard written.tensors.count == plan.tensors.count, written.tensors.allSatisfy({ expected[$0.name] == $0.shape && $0.type == .dtype(settings.dtype) }) else {
            throw QuantizeJobError(.outputCheckFailed, "the staged shards do not hold the \(plan.tensors.count) planned tensors with their shapes; nothing was written")
        }

        var config = plan.config
        if case .object(var members) = config {
            members.removeAll { $0.key == "dtype" || $0.key == "torch_dtype" }
            let dtypeName = settings.dtype == .bf16 ? "bfloat16" : settings.dtype == .f16 ? "float16" : "float32"
            let at = members.firstIndex { $0.key > "dtype" } ?? members.count
            members.insert(JSONMember("dtype", .string(dtypeName)), at: at)
            config = .object(members)
        }
        try sink.writeConfig(config)
        for file in plan.files { try sink.transaction.write(file.bytes, named: file.name) }

        let digest = InputDigest(file: checkpoint.mappedFile(0))
        let input = try digest.finish()
        sink.transaction.manifest = IntegrityManifest(scheme: settings.dtype.rawValue.lowercased(),
                                                      options: ["export": "huggingface", "max_shard_bytes": "\(settings.maxShardByteCount)"],
                                                      files: [], inputs: [input])
        try sink.commit()
        return Summary(output: settings.output, shardNames: staged.map { URL(fileURLWithPath: $0).lastPathComponent }, tensorCount: plan.tensors.count,
                       inputBytes: inputBytes, outputBytes: outputBytes, seconds: Date().timeIntervalSince(start),
                       peakResidentBytes: ProcessMemory.peakResidentBytes(), notes: sink.transaction.notes + plan.notes)
    }

    /// Decodes one tensor in chunks of whole rows (Hugging Face row order: the GGUF row holding
    /// each row is found through ``ExportPlan/ggufRow(holding:rows:heads:)``) and hands each chunk to `write`.
    private func write(_ entry: ExportPlan.Tensor, record: TensorRecord, source: UnsafeRawBufferPointer, buffer: UnsafeMutableRawBufferPointer,
                       write: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard case .ggml(let type) = record.type else { return }
        let columns = entry.shape.last ?? 1
        let rows = entry.shape.reduce(1, *) / columns
        guard rows > 0, let sourceRowBytes = type.byteCount(elementCount: columns), sourceRowBytes * rows == source.count else {
            throw QuantizeJobError(.unsupportedConversion, "\(entry.source): \(source.count) bytes do not hold \(rows) rows of \(columns) \(type.name) elements")
        }
        let dtype = settings.dtype
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
