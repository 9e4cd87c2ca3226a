import Formats

/// A GGUF → Hugging Face directory export as data: per output tensor, the GGUF tensor it is
/// decoded from, its Hugging Face name and shape and the inverse of llama.cpp's Q/K row
/// permutation; and the side files (config.json, generation_config.json, the tokenizer files)
/// as bytes. The Model module builds plans (it knows config.json and tokenizers); Quantize only
/// executes them (``ExportJob``), the inverse of ``ConversionPlan``.
public struct ExportPlan: Sendable {
    /// One output tensor.
    public struct Tensor: Sendable, Hashable {
        /// The GGUF tensor it is decoded from (`blk.0.attn_q.weight`).
        public var source: String
        /// Its Hugging Face name (`model.layers.0.self_attn.q_proj.weight`).
        public var name: String
        /// Its row-major shape (the GGUF dims reversed).
        public var shape: [Int]
        /// The head count of llama.cpp's Q/K permutation to undo (formats.md §2.9), nil when rows stay in order.
        public var unpermuteHeads: Int?

        /// Creates a tensor entry.
        public init(source: String, name: String, shape: [Int], unpermuteHeads: Int? = nil) {
            self.source = source
            self.name = name
            self.shape = shape
            self.unpermuteHeads = unpermuteHeads
        }
    }

    /// One side file written into the directory beside the weights.
    public struct File: Sendable, Hashable {
        /// Its name inside the directory (`config.json`, `tokenizer.model`).
        public var name: String
        /// Its bytes.
        public var bytes: [UInt8]

        /// Creates a side file.
        public init(name: String, bytes: [UInt8]) {
            self.name = name
            self.bytes = bytes
        }
    }

    /// The output tensors, in the order they are planned into shards.
    public var tensors: [Tensor]
    /// config.json as a document (the job adds `dtype` and, for a quantized scheme, `quantization_config`).
    public var config: JSONValue
    /// The other side files (generation_config.json, tokenizer files), in the order written.
    public var files: [File]
    /// What the plan could not carry over from the GGUF metadata, as sentences for the user.
    public var notes: [String]

    /// Creates a plan.
    public init(tensors: [Tensor], config: JSONValue, files: [File], notes: [String] = []) {
        self.tensors = tensors
        self.config = config
        self.files = files
        self.notes = notes
    }

    /// The GGUF row that holds row `row` of the Hugging Face tensor: the inverse of
    /// ``ConversionPlan/permutedSourceRow(_:rows:heads:)`` (llama.cpp's permute moves Hugging Face
    /// row `permutedSourceRow(i)` to GGUF row `i`).
    /// - Precondition: `rows` is a multiple of `2 * heads` (checked when the plan is built).
    public static func ggufRow(holding row: Int, rows: Int, heads: Int) -> Int {
        let perHead = rows / heads, half = perHead / 2
        let head = row / perHead, within = row % perHead
        // within = (i % 2) * half + i / 2 for the GGUF row i of this head.
        return head * perHead + (within < half ? 2 * within : 2 * (within - half) + 1)
    }
}
