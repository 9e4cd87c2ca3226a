import Formats

extension SentencePieceModel {
    /// A model of these pieces with the trainer and normalizer settings the tokenizer reads, as
    /// ``serialized()`` writes it (the inverse of ``init(bytes:path:)`` for those fields).
    init(pieces: [String], scores: [Float], types: [PieceType], algorithm: Algorithm, byteFallback: Bool,
         unknownID: Int32, bosID: Int32, eosID: Int32, addsDummyPrefix: Bool) {
        self.pieces = pieces
        self.scores = scores
        self.types = types
        self.algorithm = algorithm
        self.byteFallback = byteFallback
        self.unknownID = unknownID
        self.bosID = bosID
        self.eosID = eosID
        self.normalizerName = "identity"
        self.addsDummyPrefix = addsDummyPrefix
        self.removesExtraWhitespaces = false
        self.escapesWhitespaces = true
    }

    /// The model as a SentencePiece `ModelProto` (tokenizer.model), in sentencepiece_model.proto's
    /// field order: pieces (1: piece, 2: score, 3: type), trainer_spec (3 model_type, 4 vocab_size,
    /// 24 treat_whitespace_as_suffix, 35 byte_fallback, 40–43 unk/bos/eos/pad ids) and
    /// normalizer_spec (1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
    /// 4 remove_extra_whitespaces, 5 escape_whitespaces). Everything else keeps the proto's defaults.
    func serialized() -> [UInt8] {
        var out = ProtobufWriter()
        for index in pieces.indices {
            var piece = ProtobufWriter()
            piece.string(1, pieces[index])
            piece.fixed32(2, scores[index].bitPattern)
            piece.varint(3, UInt64(types[index].rawValue))
            out.message(1, piece)
        }
        var trainer = ProtobufWriter()
        trainer.varint(3, UInt64(algorithm.rawValue))
        trainer.varint(4, UInt64(pieces.count))
        if treatWhitespaceAsSuffix { trainer.varint(24, 1) }
        trainer.varint(35, byteFallback ? 1 : 0)
        trainer.varint(40, UInt64(bitPattern: Int64(unknownID)))
        trainer.varint(41, UInt64(bitPattern: Int64(bosID)))
        trainer.varint(42, UInt64(bitPattern: Int64(eosID)))
        trainer.varint(43, UInt64(bitPattern: -1))
        out.message(2, trainer)
        var normalizer = ProtobufWriter()
        normalizer.string(1, normalizerName)
        normalizer.bytes(2, precompiledCharsmap)
        normalizer.varint(3, addsDummyPrefix ? 1 : 0)
        normalizer.varint(4, removesExtraWhitespaces ? 1 : 0)
        normalizer.varint(5, escapesWhitespaces ? 1 : 0)
        out.message(3, normalizer)
        return out.bytes
    }
}

/// A writer of the protobuf wire format: the fields ``SentencePieceModel/serialized()`` needs.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    private mutating func raw(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    private mutating func key(_ field: Int, _ wire: UInt64) { raw(UInt64(field) << 3 | wire) }

    /// A varint field (wire type 0); negative int32 values are written as 64-bit two's complement, as protobuf does.
    mutating func varint(_ field: Int, _ value: UInt64) {
        key(field, 0)
        raw(value)
    }

    /// A fixed 32-bit field (wire type 5), little-endian.
    mutating func fixed32(_ field: Int, _ value: UInt32) {
        key(field, 5)
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    /// A length-delimited field (wire type 2) of raw bytes.
    mutating func bytes(_ field: Int, _ value: [UInt8]) {
        key(field, 2)
        raw(UInt64(value.count))
        bytes += value
    }

    /// A length-delimited UTF-8 string.
    mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }

    /// A nested message.
    mutating func message(_ field: Int, _ value: ProtobufWriter) { bytes(field, value.bytes) }
}
