import Formats
import Foundation

/// Checks written outputs before they are moved into place: each file reads back through the
/// strict readers, and every quantized tensor has finite, positive scales and codes that are not
/// all the same byte (unless its input was constant) — the silent failures users of other tools
/// report (NaN scales, constant packed weights).
enum OutputVerifier {
    /// Verifies the staged files against the plan.
    /// - Throws: ``QuantizeJobError`` `.outputCheckFailed` naming the tensor, or the reader's
    ///   ``FormatError`` when a file does not read back.
    static func verify(files: [String], plan: [QuantizeJob.PlannedTensor], checkpoint: Checkpoint) throws {
        var lookup: [String: (UnsafeRawBufferPointer, TensorType)] = [:]
        var mapped: [String: MappedFile] = [:]
        var holders: [AnyObject] = []
        for path in files {
            if CompressedFormat.originalName(path).hasSuffix(".gguf") {
                let file = try GGUFFile(path: path)
                holders.append(file)
                for tensor in file.tensors {
                    lookup[tensor.name] = (try file.readData(for: tensor), .ggml(tensor.type))
                    mapped[tensor.name] = file.file
                }
            } else {
                let file = try SafetensorsFile(path: path)
                holders.append(file)
                for tensor in file.tensors {
                    lookup[tensor.name] = (try file.readData(for: tensor), .dtype(tensor.dtype))
                    mapped[tensor.name] = file.file
                }
            }
        }
        // Pages of the output read for the checks are released tensor by tensor, so checking a
        // large output does not grow resident memory with the model.
        func release(_ name: String) {
            guard let (bytes, _) = lookup[name], let file = mapped[name], let base = bytes.baseAddress,
                  let start = file.bytes.baseAddress else { return }
            let offset = base - start
            file.advise(offset..<(offset + bytes.count), willNeed: false)
        }
        for item in plan {
            for output in item.outputs {
                guard let (bytes, type) = lookup[output.name], type == output.type, bytes.count == output.byteCount else {
                    throw QuantizeJobError(.outputCheckFailed, "the written output lacks tensor '\(output.name)' (\(output.type), \(output.byteCount) bytes) or holds it with another type or size; this is a bug in quantize, please report it")
                }
            }
            guard item.decision.quantize else { continue }
            defer { item.outputs.forEach { release($0.name) } }
            for output in item.outputs {
                let (bytes, type) = lookup[output.name]!
                if output.name.hasSuffix("_scale") || output.name.hasSuffix("_scale_inv") {
                    if let bad = firstBadScale(bytes, type: type) {
                        throw QuantizeJobError(.outputCheckFailed, "tensor '\(output.name)' holds the scale \(bad) (element \(bad.index)); a non-finite or non-positive scale would decode to NaN or zeros. Check the input tensor '\(item.source.name)' for extreme values, or quantize with --allow-non-finite")
                    }
                } else if case .ggml(let ggml) = type, let bad = firstBadBlockScale(bytes, type: ggml) {
                    throw QuantizeJobError(.outputCheckFailed, "tensor '\(output.name)': block \(bad.block) has the scale \(bad.value); a non-finite scale decodes to NaN. Check the input for extreme values")
                } else if output.name == item.source.name || output.name.hasSuffix("weight_packed") {
                    if bytes.count > 1, allSame(bytes), !allSame(try checkpoint.readData(for: item.source)) {
                        throw QuantizeJobError(.outputCheckFailed, "tensor '\(output.name)' is one repeated byte although its input varies: the quantized weights carry no information. This is a bug in quantize, please report it")
                    }
                }
            }
        }
        precondition(holders.count == files.count)  // keeps the mapped files alive until here
    }

    private struct BadScale: CustomStringConvertible {
        var value: Float
        var index: Int
        var description: String { "\(value)" }
    }

    private static func firstBadScale(_ bytes: UnsafeRawBufferPointer, type: TensorType) -> BadScale? {
        guard case .dtype(let dtype) = type else { return nil }
        let width = dtype.bitWidth / 8
        let count = bytes.count / max(width, 1)
        for i in 0..<count {
            let value: Float
            switch dtype {
            case .f32: value = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            case .bf16: value = ElementConversion.float32(fromBFloat16Bits: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            case .f16: value = ElementConversion.float32(fromFloat16Bits: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            default: return nil
            }
            if !value.isFinite || value <= 0 { return BadScale(value: value, index: i) }
        }
        return nil
    }

    private static func firstBadBlockScale(_ bytes: UnsafeRawBufferPointer, type: GGMLType) -> (block: Int, value: Float)? {
        // The FP16 scale fields of the block, from the descriptor of the scheme that writes `type`.
        let offsets = SchemeDescriptor.writing(type)?.blockScaleOffsets ?? []
        guard !offsets.isEmpty else { return nil }
        let blocks = bytes.count / type.bytesPerBlock
        for block in 0..<blocks {
            for offset in offsets {
                let bits = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: block * type.bytesPerBlock + offset, as: UInt16.self))
                let value = ElementConversion.float32(fromFloat16Bits: bits)
                if !value.isFinite { return (block, value) }
            }
        }
        return nil
    }

    private static func allSame(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let first = bytes.first else { return true }
        return !bytes.contains { $0 != first }
    }
}
