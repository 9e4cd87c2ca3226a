import Fit
import Formats
import Model
import Quantize

/// The body of each ``FuzzTarget``: the tool's own parsing calls, on an in-memory copy of the input.
enum FuzzEntries {
    /// Texts every tokenizer target encodes: ASCII, punctuation and digits, multi-byte UTF-8, a
    /// control token spelling, whitespace runs.
    static let sampleTexts = [
        "Hello world, 123 tokens!", "  leading  and\ttrailing \n\n", "ünïcödé — 你好 🤖 <s></s><|endoftext|>", "",
    ]
    /// Elements decoded per tensor (enough for several blocks of every type, bounded per input).
    static let decodedElementLimit = 4096

    // MARK: Formats

    static func safetensors(_ bytes: UnsafeRawBufferPointer, path: String) throws -> FuzzOutcome {
        let file = try SafetensorsFile(file: MappedFile(copying: bytes, path: path))
        var checksum = 0
        for tensor in file.tensors {
            precondition(file.tensor(named: tensor.name) == tensor, "a tensor is not found by its own name")
            let data = try file.readData(for: tensor)
            checksum &+= digest(data)
            if ElementConversion.canConvertToFloat32(tensor.dtype), tensor.elementCount > 0 {
                // A whole number of bytes for a prefix of the elements (F4 packs two per byte).
                let perByte = tensor.dtype.bitWidth < 8 ? 8 / tensor.dtype.bitWidth : 1
                let count = min(tensor.elementCount, decodedElementLimit) / perByte * perByte
                let byteCount = count * tensor.dtype.bitWidth / 8
                if count > 0, byteCount <= data.count {
                    var values = [Float](repeating: 0, count: count)
                    try values.withUnsafeMutableBufferPointer { output throws(FormatError) in
                        try ElementConversion.toFloat32(UnsafeRawBufferPointer(rebasing: data[0..<byteCount]), from: tensor.dtype, into: output)
                    }
                }
            }
        }
        let records = file.records(fileIndex: 0)
        if let text = file.metadata?["quantization_config"] { _ = try? JSONValue.parse(text, path: "quantization_config") }
        return .accepted("\(records.count) tensors, \(file.dataByteCount) data bytes, digest \(checksum)")
    }

    static func gguf(_ bytes: UnsafeRawBufferPointer, path: String) throws -> FuzzOutcome {
        let file = try GGUFFile(file: MappedFile(copying: bytes, path: path))
        return try readGGUF(file)
    }

    /// Everything the tool reads from an opened GGUF file.
    static func readGGUF(_ file: GGUFFile) throws -> FuzzOutcome {
        var summaryBytes = 0
        for entry in file.metadata {
            summaryBytes += entry.value.summary.utf8.count
            _ = entry.value.int
            _ = entry.value.double
        }
        var checksum = 0
        for tensor in file.tensors {
            precondition(file.tensor(named: tensor.name) == tensor, "a tensor is not found by its own name")
            let data = try file.readData(for: tensor)
            checksum &+= digest(data)
            try decodePrefix(of: tensor, data: data)
        }
        let checkpoint = Checkpoint(gguf: file, directory: ".")
        _ = checkpoint.logicalTensors
        _ = checkpoint.quantization?.summary
        _ = try? ModelShape(checkpoint: checkpoint).parameterCount
        if let configuration = try? TransformerConfiguration(checkpoint: checkpoint) {
            _ = configuration.inverseFrequencies()
        }
        var tokens = 0
        if let tokenizer = try? TokenizerLoader.load(gguf: file) { tokens = try exercise(tokenizer) }
        return .accepted("\(file.tensors.count) tensors, \(file.metadata.count) keys (\(summaryBytes) summary bytes), \(tokens) sample tokens, digest \(checksum)")
    }

    /// Decodes the first whole blocks of a GGUF tensor (up to ``decodedElementLimit`` elements).
    static func decodePrefix(of tensor: GGUFTensorInfo, data: UnsafeRawBufferPointer) throws {
        let type = tensor.type
        let blocks = min(tensor.elementCount, decodedElementLimit) / type.blockSize
        guard blocks > 0, blocks * type.bytesPerBlock <= data.count else { return }
        var output = [Float](repeating: 0, count: blocks * type.blockSize)
        do {
            try output.withUnsafeMutableBufferPointer { out throws(QuantizeError) in
                try dequantizeGGML(type, bytes: UnsafeRawBufferPointer(rebasing: data[0..<(blocks * type.bytesPerBlock)]),
                                   elementCount: blocks * type.blockSize, into: out, tensorName: tensor.name)
            }
        } catch .unsupportedLayout {
            // A type without a decoder is refused by name; the tensor itself is fine.
        }
    }

    static func index(_ bytes: UnsafeRawBufferPointer, path: String) throws -> FuzzOutcome {
        let index = try SafetensorsCheckpoint.parseIndex(JSONValue.parse(bytes, path: path), path: path)
        return .accepted("\(index.weightMap.count) tensors in \(Set(index.weightMap.map(\.file)).count) files")
    }

    static func config(_ bytes: UnsafeRawBufferPointer, path: String) throws -> FuzzOutcome {
        let config = try JSONValue.parse(bytes, path: path)
        let reader = ModelConfig(config)
        var found = 0
        for key in ModelConfig.Key.allCases where reader.int(key) != nil { found += 1 }
        let architecture = ModelArchitecture(config: config)
        var notes: [String] = ["\(found) sizes"]
        do {
            let shape = try ModelShape(config: config, path: path)
            try shape.validate(path: path)
            notes.append("shape: \(shape.parameterCount) parameters, \(shape.kvBytesPerToken(bytesPerElement: 2)) KV bytes/token")
        } catch {
            notes.append("shape refused: \(try clear(error))")
        }
        if let architecture, let shape = try? ModelShape(architecture: architecture, path: path) {
            notes.append("architecture shape: \(shape.parameterCount) parameters")
        }
        do {
            let configuration = try TransformerConfiguration(config: config, directory: ".")
            notes.append("forward pass: \(configuration.family), \(configuration.inverseFrequencies().count) frequencies")
        } catch {
            notes.append("forward pass refused: \(try clear(error))")
        }
        return .accepted(notes.joined(separator: "; "))
    }

    // MARK: Tokenizers

    static func tokenizerJSON(_ bytes: UnsafeRawBufferPointer, path: String) throws -> FuzzOutcome {
        let json = try JSONValue.parse(bytes, path: path)
        let tokenizer = try TokenizerJSON.tokenizer(json, config: nil, path: path, options: TokenizerOptions())
        return .accepted("\(tokenizer.summary): \(tokenizer.vocabularySize) ids, \(try exercise(tokenizer)) sample tokens")
    }

    static func sentencePiece(_ bytes: UnsafeRawBufferPointer, path: String) throws -> FuzzOutcome {
        let tokenizer = try SentencePieceTokenizer(modelBytes: bytes, path: path, config: nil)
        return .accepted("\(tokenizer.summary): \(tokenizer.vocabularySize) ids, \(try exercise(tokenizer)) sample tokens")
    }

    /// Encodes and decodes the sample texts; returns how many ids they gave.
    static func exercise(_ tokenizer: any TextTokenizer) throws -> Int {
        var total = 0
        for text in sampleTexts {
            let ids = try tokenizer.encode(text)
            for id in ids {
                precondition(id >= 0 && Int(id) < tokenizer.vocabularySize, "encode gave id \(id) outside the vocabulary of \(tokenizer.vocabularySize)")
            }
            _ = tokenizer.decode(ids)
            total += ids.count
        }
        let probe = Int32(truncatingIfNeeded: tokenizer.vocabularySize)
        _ = tokenizer.decode([0, probe - 1, probe, -1].filter { _ in tokenizer.vocabularySize > 0 })
        _ = tokenizer.tokenText(probe)
        _ = tokenizer.tokenText(-1)
        return total
    }

    // MARK: Containers

    static func compressed(_ bytes: UnsafeRawBufferPointer, path: String) throws -> FuzzOutcome {
        var input = Array(bytes)
        fixUpContainerChecksums(&input)
        let container = try input.withUnsafeBytes { raw throws(FormatError) in
            try CompressedFile(container: MappedFile(copying: raw, path: path))
        }
        try container.materialize(0..<container.originalByteCount)
        let original = MappedFile(container: container)
        switch container.originalFormat {
        case .gguf:
            return try readGGUF(GGUFFile(file: original))
        case .safetensors, .other:
            let file = try SafetensorsFile(file: original)
            for tensor in file.tensors { _ = try file.readData(for: tensor) }
            return .accepted("\(container.chunkCount) chunks holding \(file.tensors.count) tensors")
        }
    }

    /// Rewrites the start header's, the kept header's and the index's XXH64 fields to match the
    /// bytes (formats/compressed.md §2), so a mutation is judged by the structure checks behind them;
    /// chunk checksums stay as they are (they cover decompressed bytes).
    static func fixUpContainerChecksums(_ bytes: inout [UInt8]) {
        let start = CompressedFormat.startHeaderByteCount, footer = CompressedFormat.footerByteCount
        guard bytes.count >= start + footer, bytes.starts(with: CompressedFormat.magic) else { return }
        func u64(_ offset: Int) -> UInt64 {
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
        }
        func store(_ value: UInt64, at offset: Int) {
            for byte in 0..<8 { bytes[offset + byte] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(byte))) }
        }
        func sum(_ range: Range<Int>) -> UInt64 {
            bytes.withUnsafeBytes { CompressedFormat.checksum(UnsafeRawBufferPointer(rebasing: $0[range])) }
        }
        let prefix = u64(24)
        if prefix <= UInt64(bytes.count - start - footer) {
            store(sum(start..<(start + Int(prefix))), at: 32)
        }
        store(sum(0..<40), at: 40)
        let footerStart = bytes.count - footer
        let indexCount = u64(footerStart + 8)
        if indexCount <= UInt64(footerStart) {
            store(sum((footerStart - Int(indexCount))..<footerStart), at: footerStart + 16)
        }
    }

    // MARK: Decoders

    /// The layouts beyond the ggml types: compressed-tensors / vLLM FP8, INT8 and packed INT4/INT8.
    enum TensorLayout: CaseIterable {
        case fp8E4M3, fp8E5M2, fp8Block, int8, int8ZeroPoint, packed, packedZeroPoint
    }

    static func decoders(_ bytes: UnsafeRawBufferPointer) throws -> FuzzOutcome {
        guard bytes.count >= 2 else { return .rejected("fewer than 2 bytes: no type and size mode") }
        let selector = Int(bytes[0]) % (GGMLType.all.count + TensorLayout.allCases.count)
        let mode = bytes[1]
        let payload = UnsafeRawBufferPointer(rebasing: bytes[2...])
        if selector < GGMLType.all.count {
            return try decodeGGML(GGMLType.all[selector], mode: mode, payload: payload)
        }
        return try decodeLayout(TensorLayout.allCases[selector - GGMLType.all.count], mode: mode, payload: payload)
    }

    /// Mode % 4: 0 the payload cut to whole blocks with the exact count; 1 the whole payload with
    /// the count of its whole blocks (wrong when the payload has a partial block); 2 a count that
    /// is not a whole number of blocks; 3 an output buffer one element short.
    static func decodeGGML(_ type: GGMLType, mode: UInt8, payload: UnsafeRawBufferPointer) throws -> FuzzOutcome {
        let blocks = payload.count / type.bytesPerBlock
        var elementCount = blocks * type.blockSize
        var data = UnsafeRawBufferPointer(rebasing: payload[0..<(blocks * type.bytesPerBlock)])
        var outputCount = elementCount
        switch mode % 4 {
        case 1: data = payload
        case 2: elementCount += 1 + Int(mode / 4) % max(1, type.blockSize - 1); outputCount = elementCount
        case 3: outputCount = max(0, elementCount - 1)
        default: break
        }
        let sizesAreRight = data.count == blocks * type.bytesPerBlock && elementCount == blocks * type.blockSize
            && outputCount >= elementCount
        var output = [Float](repeating: 0, count: outputCount)
        do {
            try output.withUnsafeMutableBufferPointer { out throws(QuantizeError) in
                try dequantizeGGML(type, bytes: data, elementCount: elementCount, into: out, tensorName: "fuzz.\(type.name)")
            }
        } catch {
            if case .unsupportedLayout = error { return .rejected(error.description) }
            if sizesAreRight { return .violation("\(type.name): \(blocks) whole blocks were refused: \(error)") }
            return .rejected(error.description)
        }
        if !sizesAreRight {
            return .violation("\(type.name): \(data.count) bytes decoded as \(elementCount) elements into \(outputCount) without an error")
        }
        return .accepted("\(type.name): \(blocks) blocks")
    }

    /// A compressed-tensors layout of `rows × columns` (from the mode byte and the first payload
    /// byte) whose parts are cut from the payload.
    static func decodeLayout(_ layout: TensorLayout, mode: UInt8, payload: UnsafeRawBufferPointer) throws -> FuzzOutcome {
        guard payload.count >= 2 else { return .rejected("no shape bytes") }
        let rows = 1 + Int(mode % 16), columns = 1 + Int(payload[0] % 64)
        let scaleChoice = Int(payload[1])
        var rest = Array(payload[2...])
        func take(_ count: Int) -> [UInt8] {
            let n = min(count, rest.count)
            defer { rest.removeFirst(n) }
            return Array(rest[0..<n])
        }
        let scaleTypes: [DType] = [.f32, .bf16, .f16, .i8]
        let scaleType = scaleTypes[scaleChoice % scaleTypes.count]
        let scaleWidth = max(1, scaleType.bitWidth / 8)
        // Per tensor, per row, per group of 32 (ceil), or a 2-D block grid.
        let groups = (columns + 31) / 32
        let scaleShapes: [[Int]] = [[1], [rows, 1], [rows, groups], [(rows + 7) / 8, (columns + 7) / 8], [rows + 1, 1]]
        let scaleShape = scaleShapes[(scaleChoice / 4) % scaleShapes.count]
        let scaleCount = scaleShape.reduce(1, *)
        var parts: [QuantizedTensor.Part] = []
        switch layout {
        case .fp8E4M3, .fp8E5M2, .fp8Block:
            let dtype: DType = layout == .fp8E5M2 ? .f8E5M2 : .f8E4M3
            parts.append(.init(suffix: "weight", type: .dtype(dtype), shape: [rows, columns], data: take(rows * columns)))
            parts.append(.init(suffix: layout == .fp8Block ? "weight_scale_inv" : "weight_scale", type: .dtype(scaleType),
                               shape: scaleShape, data: take(scaleCount * scaleWidth)))
        case .int8, .int8ZeroPoint:
            parts.append(.init(suffix: "weight", type: .dtype(.i8), shape: [rows, columns], data: take(rows * columns)))
            parts.append(.init(suffix: "weight_scale", type: .dtype(scaleType), shape: scaleShape, data: take(scaleCount * scaleWidth)))
            if layout == .int8ZeroPoint {
                parts.append(.init(suffix: "weight_zero_point", type: .dtype(.i8), shape: scaleShape, data: take(scaleCount)))
            }
        case .packed, .packedZeroPoint:
            let words = (scaleChoice / 32) % 2 == 0 ? (columns + 7) / 8 : (columns + 3) / 4
            parts.append(.init(suffix: "weight_packed", type: .dtype(.i32), shape: [rows, words], data: take(rows * words * 4)))
            parts.append(.init(suffix: "weight_scale", type: .dtype(scaleType), shape: scaleShape, data: take(scaleCount * scaleWidth)))
            if layout == .packedZeroPoint {
                let zeroGroups = max(1, scaleCount / rows)
                parts.append(.init(suffix: "weight_zero_point", type: .dtype(.i32), shape: [(rows + 7) / 8, zeroGroups],
                                   data: take((rows + 7) / 8 * zeroGroups * 4)))
            }
        }
        let tensor = QuantizedTensor(rows: rows, columns: columns, parts: parts)
        let values = try dequantized(tensor, tensorName: "fuzz.\(layout)")
        guard values.count == rows * columns else {
            return .violation("\(layout): \(values.count) values for \(rows)×\(columns)")
        }
        return .accepted("\(layout): \(rows)×\(columns)")
    }

    // MARK: Helpers

    /// A cheap sum of the bytes, so reading them cannot be optimised away.
    static func digest(_ bytes: UnsafeRawBufferPointer) -> Int {
        var sum = 0
        var index = 0
        // Every 61st byte: touching the whole range matters, not hashing it.
        while index < bytes.count { sum &+= Int(bytes[index]); index += 61 }
        if let last = bytes.last { sum &+= Int(last) }
        return sum
    }

    /// The message of an error that a caller reports and carries on from; a message that is not
    /// clear becomes the outcome.
    static func clear(_ error: any Error) throws -> String {
        let message = String(describing: error)
        if let problem = FuzzOutcome.rejected(message).problem { throw UnclearError(problem: problem) }
        return message
    }
}

/// A caught error whose message breaks the rules of ``FuzzOutcome/isClear``.
struct UnclearError: Error, CustomStringConvertible {
    var problem: String
    var description: String { problem }
}
