import Formats

/// A Hugging Face checkpoint → GGUF conversion as data, the way llama.cpp's
/// `convert_hf_to_gguf.py --outtype f32` would write the model (its "F32 twin"): the GGUF metadata
/// in the converter's order and, per output tensor, where it comes from, its llama.cpp name, the
/// Q/K row permutation and the twin's type. A run with a plan writes, in one pass, what
/// `llama-quantize TWIN OUT TYPE` would write from that twin. The Model module builds plans
/// (it knows config.json and tokenizers); Quantize only executes them.
public struct ConversionPlan: Sendable {
    /// One output tensor of the twin.
    public struct Tensor: Sendable, Hashable {
        /// The safetensors tensor it is read from.
        public var source: String
        /// Its GGUF name (`blk.0.attn_q.weight`).
        public var name: String
        /// Its row-major shape (the GGUF dims reversed).
        public var shape: [Int]
        /// The head count of llama.cpp's Q/K `permute` (formats.md §2.9), nil when rows stay in order.
        public var permuteHeads: Int?
        /// The twin's storage type (F32 for `--outtype f32`).
        public var type: GGMLType
        /// How a quantized source weight is decoded to FP32 first, nil for an F32/F16/BF16 source.
        public var decoding: Decoding? = nil
        /// The values of a tensor the converter computes instead of reading one (llama3's
        /// `rope_freqs`), in row-major order; nil for a tensor read from `source`. Always kept F32.
        public var values: [Float]? = nil

        /// Creates a tensor entry.
        public init(source: String, name: String, shape: [Int], permuteHeads: Int? = nil, type: GGMLType = .f32) {
            self.source = source
            self.name = name
            self.shape = shape
            self.permuteHeads = permuteHeads
            self.type = type
        }

        /// Creates the entry of a computed F32 tensor (`source` is only a label for reports).
        public init(generated name: String, values: [Float], shape: [Int]) {
            self.init(source: name + " (computed by the conversion)", name: name, shape: shape, type: .f32)
            self.values = values
        }
    }

    /// The stored parts of a quantized source weight (fp8 or compressed-tensors) and the layout
    /// facts from its `quantization_config` that decoding needs (partial last groups or blocks).
    public struct Decoding: Sendable, Hashable {
        /// The safetensors tensors of the weight, values first (`X.weight` or `X.weight_packed`),
        /// then its `weight_scale`/`weight_scale_inv`, `weight_zero_point`, `weight_shape`.
        public var parts: [TensorRecord]
        /// The config's `group_size`.
        public var groupSize: Int?
        /// The config's `weight_block_size` / `block_structure` (rows, columns).
        public var blockSize: [Int]?

        /// Creates a decoding entry.
        public init(parts: [TensorRecord], groupSize: Int? = nil, blockSize: [Int]? = nil) {
            self.parts = parts
            self.groupSize = groupSize
            self.blockSize = blockSize
        }
    }

    /// The twin's metadata in the converter's order, without `general.file_type` and
    /// `general.quantization_version` (the GGUF sink appends those, as llama-quantize does).
    public var metadata: [(key: String, value: GGUFValue)]
    /// The twin's tensors in the converter's order.
    public var tensors: [Tensor]

    /// Creates a plan.
    public init(metadata: [(key: String, value: GGUFValue)], tensors: [Tensor]) {
        self.metadata = metadata.filter { $0.key != "general.file_type" && $0.key != "general.quantization_version" }
        self.tensors = tensors
    }

    /// The model facts llama-quantize's rule reads, from the plan's metadata.
    public func mixtureModel() throws(QuantizeJobError) -> MixtureModel {
        try MixtureModel(metadata: Dictionary(metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first }))
    }

    /// The source row that lands at row `row` after llama.cpp's permute with `heads` heads of a
    /// tensor with `rows` rows: `W.reshape(h, 2, rows/h/2, cols).swapaxes(1, 2).reshape(rows, cols)`.
    /// - Precondition: `rows` is a multiple of `2 * heads` (checked when the plan is built).
    public static func permutedSourceRow(_ row: Int, rows: Int, heads: Int) -> Int {
        let perHead = rows / heads, half = perHead / 2
        let head = row / perHead, within = row % perHead
        return head * perHead + (within % 2) * half + within / 2
    }
}
