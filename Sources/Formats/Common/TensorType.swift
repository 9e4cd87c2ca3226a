/// The storage type of one tensor: a safetensors element type or a ggml block type.
public enum TensorType: Hashable, Sendable, CustomStringConvertible {
    /// A safetensors element type.
    case dtype(DType)
    /// A ggml type (F32, F16, Q4_K, …) as stored in GGUF.
    case ggml(GGMLType)

    /// The name users see: the safetensors string (`BF16`) or the ggml name (`Q4_K`).
    public var description: String {
        switch self {
        case .dtype(let dtype): return dtype.rawValue
        case .ggml(let type): return type.name
        }
    }
}

/// One tensor of a checkpoint, as its header describes it; the data stays in the mapped file.
public struct TensorRecord: Sendable, Hashable {
    /// The tensor's name as stored.
    public var name: String
    /// How its elements are stored.
    public var type: TensorType
    /// The shape, outermost dimension first (row-major, as numpy/PyTorch write it; GGUF's ggml
    /// order is reversed into this order).
    public var shape: [Int]
    /// The number of elements (the product of `shape`; 1 for a 0-rank tensor).
    public var elementCount: Int
    /// Bytes the data occupies on disk.
    public var byteCount: Int
    /// Absolute offset of the first data byte in its file.
    public var fileOffset: Int
    /// Which file of the checkpoint holds it (index into ``Checkpoint/files``).
    public var fileIndex: Int

    /// Creates a record.
    public init(name: String, type: TensorType, shape: [Int], elementCount: Int, byteCount: Int,
                fileOffset: Int, fileIndex: Int) {
        self.name = name
        self.type = type
        self.shape = shape
        self.elementCount = elementCount
        self.byteCount = byteCount
        self.fileOffset = fileOffset
        self.fileIndex = fileIndex
    }
}
