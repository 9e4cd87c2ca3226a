import Formats

/// The parts of a SentencePiece `ModelProto` (tokenizer.model) the tokenizer needs, read from the
/// protobuf wire format directly (sentencepiece_model.proto: pieces = 1, trainer_spec = 2,
/// normalizer_spec = 3).
struct SentencePieceModel: Sendable {
    /// A piece's type (`ModelProto.SentencePiece.Type`).
    enum PieceType: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// The segmentation algorithm (`TrainerSpec.ModelType`).
    enum Algorithm: Int, Sendable {
        case unigram = 1, bpe = 2, word = 3, character = 4
    }

    var pieces: [String] = []
    var scores: [Float] = []
    var types: [PieceType] = []
    var algorithm: Algorithm = .unigram
    var byteFallback = false
    var treatWhitespaceAsSuffix = false
    var unknownID: Int32 = 0
    var bosID: Int32 = 1
    var eosID: Int32 = 2
    var normalizerName = ""
    var precompiledCharsmap: [UInt8] = []
    var addsDummyPrefix = true
    var removesExtraWhitespaces = true
    var escapesWhitespaces = true

    /// Parses `bytes`; `path` names the file in errors.
    init(bytes: UnsafeRawBufferPointer, path: String) throws(ModelError) {
        var reader = ProtobufReader(bytes: bytes, path: path)
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (1, 2):
                var inner = try reader.message()
                var piece = "", score: Float = 0, type = PieceType.normal
                while let (innerField, innerWire) = try inner.nextField() {
                    switch (innerField, innerWire) {
                    case (1, 2): piece = try inner.string()
                    case (2, 5): score = Float(bitPattern: try inner.fixed32())
                    case (3, 0):
                        let raw = Int(try inner.varint())
                        guard let known = PieceType(rawValue: raw) else {
                            throw .unsupportedTokenizer(path: path, reason: "piece \(pieces.count) ('\(piece)') has unknown type \(raw)")
                        }
                        type = known
                    default: try inner.skip(innerWire)
                    }
                }
                pieces.append(piece)
                scores.append(score)
                types.append(type)
            case (2, 2):
                var inner = try reader.message()
                while let (innerField, innerWire) = try inner.nextField() {
                    switch (innerField, innerWire) {
                    case (3, 0):
                        let raw = Int(try inner.varint())
                        guard let known = Algorithm(rawValue: raw) else {
                            throw .unsupportedTokenizer(path: path, reason: "trainer_spec.model_type \(raw) is unknown")
                        }
                        algorithm = known
                    case (24, 0): treatWhitespaceAsSuffix = try inner.varint() != 0
                    case (35, 0): byteFallback = try inner.varint() != 0
                    case (40, 0): unknownID = Int32(truncatingIfNeeded: try inner.varint())
                    case (41, 0): bosID = Int32(truncatingIfNeeded: try inner.varint())
                    case (42, 0): eosID = Int32(truncatingIfNeeded: try inner.varint())
                    default: try inner.skip(innerWire)
                    }
                }
            case (3, 2):
                var inner = try reader.message()
                while let (innerField, innerWire) = try inner.nextField() {
                    switch (innerField, innerWire) {
                    case (1, 2): normalizerName = try inner.string()
                    case (2, 2): precompiledCharsmap = try inner.byteArray()
                    case (3, 0): addsDummyPrefix = try inner.varint() != 0
                    case (4, 0): removesExtraWhitespaces = try inner.varint() != 0
                    case (5, 0): escapesWhitespaces = try inner.varint() != 0
                    default: try inner.skip(innerWire)
                    }
                }
            default:
                try reader.skip(wire)
            }
        }
        if pieces.isEmpty {
            throw .unsupportedTokenizer(path: path, reason: "holds no pieces; it is not a SentencePiece model")
        }
    }
}

/// A reader of the protobuf wire format (varints, fixed 32/64-bit, length-delimited fields).
struct ProtobufReader {
    private let bytes: UnsafeRawBufferPointer
    private var offset: Int
    private let end: Int
    private let path: String

    init(bytes: UnsafeRawBufferPointer, path: String, range: Range<Int>? = nil) {
        self.bytes = bytes
        self.path = path
        offset = range?.lowerBound ?? 0
        end = range?.upperBound ?? bytes.count
    }

    private func truncated() -> ModelError {
        .unsupportedTokenizer(path: path, reason: "is truncated or not a SentencePiece model (protobuf field runs past byte \(end))")
    }

    mutating func varint() throws(ModelError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end, shift < 64 else { throw truncated() }
            let byte = bytes[offset]
            offset += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// The next field's number and wire type, nil at the end.
    mutating func nextField() throws(ModelError) -> (Int, Int)? {
        guard offset < end else { return nil }
        let key = try varint()
        return (Int(key >> 3), Int(key & 7))
    }

    mutating func fixed32() throws(ModelError) -> UInt32 {
        guard offset + 4 <= end else { throw truncated() }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        offset += 4
        return UInt32(littleEndian: value)
    }

    private mutating func lengthDelimited() throws(ModelError) -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(end - offset) else { throw truncated() }
        let range = offset..<(offset + Int(length))
        offset += Int(length)
        return range
    }

    mutating func message() throws(ModelError) -> ProtobufReader {
        ProtobufReader(bytes: bytes, path: path, range: try lengthDelimited())
    }

    mutating func string() throws(ModelError) -> String {
        let range = try lengthDelimited()
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    mutating func byteArray() throws(ModelError) -> [UInt8] {
        let range = try lengthDelimited()
        return [UInt8](UnsafeRawBufferPointer(rebasing: bytes[range]))
    }

    mutating func skip(_ wire: Int) throws(ModelError) {
        switch wire {
        case 0: _ = try varint()
        case 1:
            guard offset + 8 <= end else { throw truncated() }
            offset += 8
        case 2: _ = try lengthDelimited()
        case 5:
            guard offset + 4 <= end else { throw truncated() }
            offset += 4
        default:
            throw .unsupportedTokenizer(path: path, reason: "has protobuf wire type \(wire), which tokenizer.model files do not use; it is not a SentencePiece model")
        }
    }
}
