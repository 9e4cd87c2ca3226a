import Dispatch
import Formats
import Foundation

/// A run's integrity state (formats/integrity.md, formats/reliability.md): the owned copy each
/// tensor's input bytes are read into under the SIGBUS guard, and the SHA-256 of every input file,
/// each computed on its own thread reading the file in order ahead of the job (``ReadAheadDigest``).
final class JobIntegrity {
    /// One digest per input file (``Checkpoint/files``), nil for a compressed container (its
    /// chunks carry their own checksums, checked as they are decoded).
    var digests: [ReadAheadDigest?] = []
    /// What each input file's sidecar, manifest or cache blob name records, if anything.
    var expected: [IntegrityManifest.ExpectedChecksum?] = []
    private var storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var pieces = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var finished = false

    /// A buffer of `count` bytes (contents undefined), reused from tensor to tensor.
    func buffer(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if storage.count < count {
            storage.deallocate()
            storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 64), alignment: 64)
        }
        return UnsafeMutableRawBufferPointer(rebasing: storage[0..<count])
    }

    /// A buffer of at least `count` bytes for piecewise copies, kept for the job's life.
    func pieceBuffer(_ count: Int) -> UnsafeMutableRawPointer {
        if pieces.count < count {
            pieces.deallocate()
            pieces = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 64)
        }
        return pieces.baseAddress!
    }

    /// Marks the digests as collected (they are not stopped when the job ends).
    func markFinished() { finished = true }

    deinit {
        // A job that failed: stop the digest threads still reading.
        if !finished { digests.forEach { $0?.cancel() } }
        storage.deallocate()
        pieces.deallocate()
    }
}

extension QuantizeJob {
    /// Starts the input digests (one thread per input file, formats/integrity.md) and looks up
    /// the checksums the inputs carry (a `.sha256` sidecar, the manifest of an earlier quantize
    /// output, a Hugging Face cache blob name).
    /// - Throws: ``FormatError`` `.invalidManifest` for a sidecar or manifest that cannot be read,
    ///   `.io` for an input that cannot be opened.
    func startInputDigests() throws {
        integrity.expected = try checkpoint.files.indices.map { index in
            checkpoint.mappedFile(index).compressed != nil ? nil : try IntegrityManifest.expectedChecksum(forInput: checkpoint.files[index])
        }
        integrity.digests = try checkpoint.files.indices.map { index throws(FormatError) in
            let file = checkpoint.mappedFile(index)
            return file.compressed == nil ? try ReadAheadDigest(path: file.path, byteCount: file.count) : nil
        }
    }

    /// The bytes of `tensor`, copied out of the mapped input under the SIGBUS guard into memory
    /// the job owns (valid until the next call); the file's digest may read ahead past them.
    /// - Throws: ``FormatError`` `.truncated` when the input shrank while it was read.
    func guardedData(for tensor: TensorRecord) throws -> UnsafeRawBufferPointer {
        let file = checkpoint.mappedFile(tensor.fileIndex)
        let range = tensor.fileOffset..<(tensor.fileOffset + tensor.byteCount)
        if tensor.fileIndex < integrity.digests.count, let digest = integrity.digests[tensor.fileIndex] {
            digest.allow(through: range.upperBound)
        }
        guard file.isMapping else { return try checkpoint.readData(for: tensor) }
        let copy = integrity.buffer(tensor.byteCount)
        // Copied in 16 MiB pieces, each piece's mapped pages dropped once copied: the job works on
        // the copy, and the tensor is then never resident twice (the mapping's pages of a 262 MB
        // BF16 embedding plus its copy made the peak RSS of a 1.4 GB conversion 654 MB).
        if let base = copy.baseAddress {
            let piece = 16 << 20
            var offset = range.lowerBound
            while offset < range.upperBound {
                let end = min(range.upperBound, offset + piece)
                try file.copyGuarded(offset..<end, into: base + (offset - range.lowerBound))
                file.advise(offset..<end, willNeed: false)
                offset = end
            }
        }
        return UnsafeRawBufferPointer(copy)
    }

    /// Whether `planned` is encoded piece by piece from the mapped input (``encodeInChunks``)
    /// instead of from a guarded copy of the whole tensor: a large float tensor of a GGUF output
    /// whose rows need no reordering, no calibrated values and no tensor-wide pass.
    func encodesInChunks(_ planned: PlannedTensor) -> Bool {
        guard outputKind == .gguf, planned.decision.quantize, let matrix = planned.matrix, matrix.rows > 0,
              planned.source.byteCount >= settings.chunkedEncodingBytes, planned.conversion?.permuteHeads == nil,
              planned.conversion?.decoding == nil, settings.calibrated == nil, planned.source.byteCount % matrix.rows == 0,
              case .dtype(let dtype) = planned.source.type, [.f32, .f16, .bf16].contains(dtype),
              checkpoint.mappedFile(planned.source.fileIndex).isMapping else { return false }
        return true
    }

    /// Encodes `planned` from its mapped input in pieces of about ``Settings/chunkedEncodingBytes`` / 4 of
    /// whole rows (aligned to the quantizer's rows), each copied under the SIGBUS guard and its
    /// pages dropped once encoded, so resident memory holds one piece of the input, not the
    /// tensor. The check's rows (`checkedRows`, every row when nil; none when empty) are converted
    /// to FP32 into `weights` as their piece goes by.
    func encodeInChunks(_ planned: PlannedTensor, quantizer: TensorQuantizer, into buffers: [UnsafeMutableRawBufferPointer],
                        checkedRows: [Int]?, weights: UnsafeMutableBufferPointer<Float>) throws {
        let tensor = planned.source
        let rows = quantizer.rows, columns = quantizer.columns
        let rowBytes = tensor.byteCount / rows
        let align = max(1, quantizer.rowAlignment)
        let chunkRows = max(align, (settings.chunkedEncodingBytes / 4 / max(rowBytes, 1)) / align * align)
        let file = checkpoint.mappedFile(tensor.fileIndex)
        let digest = tensor.fileIndex < integrity.digests.count ? integrity.digests[tensor.fileIndex] : nil
        let copy = integrity.buffer(min(rows, chunkRows) * rowBytes)
        var checked: [Int: Int] = [:]  // row → its place in `weights`
        if let checkedRows { for (i, row) in checkedRows.enumerated() { checked[row] = i } }
        var r0 = 0
        while r0 < rows {
            let r1 = min(rows, r0 + chunkRows)
            let range = (tensor.fileOffset + r0 * rowBytes)..<(tensor.fileOffset + r1 * rowBytes)
            digest?.allow(through: range.upperBound)
            try file.copyGuarded(range, into: copy.baseAddress!)
            file.advise(range, willNeed: false)
            let piece = UnsafeRawBufferPointer(rebasing: copy[0..<((r1 - r0) * rowBytes)])
            try QuantizeJob.encodeStreaming(piece, type: tensor.type, with: quantizer, into: buffers, rows: r0..<r1, threads: settings.threads)
            for row in r0..<r1 {
                guard let place = checkedRows == nil ? row : checked[row] else { continue }
                try QuantizeJob.convertToFloat32(UnsafeRawBufferPointer(rebasing: piece[((row - r0) * rowBytes)..<((row - r0 + 1) * rowBytes)]),
                                                 type: tensor.type,
                                                 into: UnsafeMutableBufferPointer(rebasing: weights[(place * columns)..<((place + 1) * columns)]),
                                                 name: tensor.name, threads: 1)
            }
            r0 = r1
        }
    }

    /// Hands the bytes of `tensor` to `body` in pieces of at most 16 MiB, each copied out of the
    /// mapped input under the SIGBUS guard (valid during the call) and released from memory after.
    /// - Throws: ``FormatError`` `.truncated` when the input shrank while it was read, or what `body` throws.
    func copyGuardedPieces(of tensor: TensorRecord, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let file = checkpoint.mappedFile(tensor.fileIndex)
        let digest = tensor.fileIndex < integrity.digests.count ? integrity.digests[tensor.fileIndex] : nil
        let pieceBytes = 16 << 20
        var bytes: UnsafeRawBufferPointer? = nil
        if !file.isMapping { bytes = try checkpoint.readData(for: tensor) }
        let buffer = integrity.pieceBuffer(pieceBytes)
        var offset = 0
        repeat {
            let end = min(tensor.byteCount, offset + pieceBytes)
            let range = (tensor.fileOffset + offset)..<(tensor.fileOffset + end)
            if let bytes {
                try body(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            } else {
                digest?.allow(through: range.upperBound)
                try file.copyGuarded(range, into: buffer)
                try body(UnsafeRawBufferPointer(start: buffer, count: end - offset))
                file.advise(range, willNeed: false)
            }
            offset = end
        } while offset < tensor.byteCount
    }

    /// Completes every input digest and checks it against what the input carries.
    /// - Returns: the entries of the input files, for the manifest.
    /// - Throws: ``FormatError`` `.checksumDiffers` naming the input that differs (before anything
    ///   is committed), `.truncated` when an input shrank.
    func finishInputDigests() throws -> [IntegrityManifest.FileEntry] {
        var entries: [IntegrityManifest.FileEntry] = []
        for (index, digest) in integrity.digests.enumerated() {
            guard let digest else { continue }
            let entry = try digest.finish()
            if let expected = integrity.expected[index] { try IntegrityManifest.check(input: entry, against: expected) }
            entries.append(entry)
        }
        integrity.markFinished()
        return entries
    }

    /// Bytes of the input files hashed so far, over every digest (each file's whole size once
    /// ``finishInputDigests()`` has returned).
    var inputBytesHashed: Int {
        integrity.digests.reduce(0) { $0 + ($1?.bytesHashed ?? 0) }
    }

    /// The manifest of this run's output (formats/integrity.md): the scheme (a mixture's name for
    /// a mixture), the options that shape the bytes, and the inputs with their checksums.
    func manifestTemplate(inputs: [IntegrityManifest.FileEntry]) -> IntegrityManifest {
        var options: [String: String] = [:]
        let scheme = settings.scheme
        switch scheme.granularity {
        case .tensor: options["granularity"] = "tensor"
        case .channel: options["granularity"] = "channel"
        case .block(let rows, let columns): options["granularity"] = "block \(rows)x\(columns)"
        case .group(let size): options["granularity"] = "group"; options["group_size"] = "\(size)"
        }
        if scheme.descriptor.container == .safetensors {
            options["symmetric"] = "\(scheme.symmetric)"
            options["scale_dtype"] = settings.options.scaleType.rawValue
            options["search"] = "\(settings.options.search)"
            if case .integer(bits: 8) = scheme.descriptor.kernel { options["int8_layout"] = settings.options.packInt8 ? "pack-quantized" : "int-quantized" }
            if settings.options.int8Activations { options["activations"] = "int8 dynamic per-token" }
        }
        options["allow_non_finite"] = "\(settings.options.allowNonFinite)"
        if !settings.selection.patterns.isEmpty {
            options["selection"] = settings.selection.patterns.map(\.label).joined(separator: " ")
        }
        if settings.mixture != nil {
            options["default_type"] = scheme.name.rawValue
            if settings.pure { options["pure"] = "true" }
            if !settings.tensorTypes.isEmpty { options["tensor_type"] = settings.tensorTypes.map { "\($0.pattern)=\($0.type.name)" }.joined(separator: " ") }
        }
        if let importance = settings.importance { options["imatrix"] = importance.path }
        if let calibrated = settings.calibrated { options["method"] = calibrated.method }
        if settings.conversion != nil { options["conversion"] = "hf-to-gguf" }
        if settings.compressOutput { options["compress"] = "true" }
        options["check"] = settings.check == nil ? "false" : "true"
        return IntegrityManifest(scheme: settings.mixture?.name.rawValue ?? scheme.name.rawValue, options: options,
                                 files: [], inputs: inputs)
    }

    /// The entries of small inputs read whole when the checkpoint was opened or the job was set up
    /// (config.json, the `--imatrix` file): hashed by reading them again (kilobytes to a few MB).
    func smallInputEntries() throws -> [IntegrityManifest.FileEntry] {
        var paths: [String] = []
        if checkpoint.format == .safetensors, checkpoint.config != nil { paths.append(checkpoint.directory + "/config.json") }
        if let importance = settings.importance { paths.append(importance.path) }
        return try paths.map { path throws(FormatError) in try InputDigest.checkedEntry(ofFileAt: path) }
    }
}
