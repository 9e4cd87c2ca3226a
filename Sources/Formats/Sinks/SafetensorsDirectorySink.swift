import Foundation

/// A Hugging Face model directory as a sink: safetensors shards (the caller's file names and
/// placement, through ``SafetensorsShardedWriter``), the shard index, config.json and the side
/// files (tokenizer, generation config, …), all staged in one transaction that ``commit()`` moves
/// into place as the output directory.
public final class SafetensorsDirectorySink: CheckpointSink {
    /// The staging transaction.
    public let transaction: OutputTransaction
    /// The tensors in write order, shard by shard.
    public let writeOrder: [String]

    private let writer: SafetensorsShardedWriter
    /// The side files ``copySideFiles(from:)`` copied, as inputs of the manifest (their path in the
    /// input, size and SHA-256, computed while they were copied).
    public private(set) var copiedSideFiles: [IntegrityManifest.FileEntry] = []

    /// The index document's style as transformers writes it but with UTF-8 kept as is
    /// (`indent=2, sort_keys=True`), which is how quantize has always written indexes.
    public static let indexStyle = JSONStyle(indent: 2, sortKeys: true, escapeNonASCII: false)
    /// config.json's style: `indent=2`, keys in the input's order, UTF-8 as is.
    public static let configStyle = JSONStyle(indent: 2, sortKeys: false, escapeNonASCII: false)

    /// Stages the directory `target` with these shards (each laid out in `order`) and, when
    /// `indexFileName` is given, an index whose `metadata` holds `indexMetadata` plus `total_size`.
    /// - Throws: ``FormatError`` from ``OutputTransaction/init(target:)`` and ``SafetensorsShardedWriter``.
    public init(target: String, shards: [SafetensorsShardedWriter.PlannedShard], order: SafetensorsWriter.Order = .given,
                indexFileName: String?, indexMetadata: [JSONMember] = [],
                indexStyle: JSONStyle = SafetensorsDirectorySink.indexStyle) throws(FormatError) {
        transaction = try OutputTransaction(target: target, directory: true)
        do {
            writer = try SafetensorsShardedWriter(directory: transaction.stagingDirectory, shards: shards, order: order,
                                                  indexFileName: indexFileName, indexMetadata: indexMetadata, indexStyle: indexStyle)
        } catch { throw transaction.publicError(error) }
        writeOrder = writer.shards.flatMap { $0.tensors.map(\.name) }
    }

    /// Appends bytes of the next tensor.
    public func write(_ chunk: UnsafeRawBufferPointer, for name: String) throws(FormatError) {
        do { try writer.write(chunk, for: name) } catch { throw transaction.publicError(error) }
    }

    /// Completes every shard and the index in the staging directory; returns the shards' staged paths.
    public func finishTensors() throws(FormatError) -> [String] {
        do { try writer.finish() } catch { throw transaction.publicError(error) }
        return writer.shards.map { transaction.path($0.fileName) }
    }

    /// Copies the side files of a model directory: every regular, non-hidden file except weights
    /// (`*.safetensors`, the index, `*.bin`, `*.pt`, `*.pth`, `*.gguf`), config.json (written
    /// by ``writeConfig(_:)``) and the input's checksums (`quantize-manifest.json`, `*.sha256`),
    /// in name order.
    ///
    /// A symbolic link (the Hugging Face cache keeps `snapshots/REV/NAME` as links into `blobs/`)
    /// is copied as the contents of the file it points to when that file lies inside the input
    /// directory's tree or in the cache's `blobs/` of the same model (``isTrustedLink(_:in:)``);
    /// a link that points anywhere else (say `/etc/passwd`) or dangles is skipped, with a warning.
    /// - Returns: one warning per skipped link.
    @discardableResult
    public func copySideFiles(from directory: String) throws(FormatError) -> [String] {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
        var warnings: [String] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            if name.hasSuffix(".safetensors") || name.hasSuffix(".safetensors.index.json") || name == "config.json" { continue }
            if name.hasSuffix(".bin") || name.hasSuffix(".pt") || name.hasSuffix(".pth") || name.hasSuffix(".gguf") { continue }
            if CompressedContainer.isWeightFile(CompressedFormat.originalName(name)) { continue }  // compressed shards
            // Checksums of the input's files describe the input, not this output (which gets its own manifest).
            if name == IntegrityManifest.directoryFileName || name.hasSuffix(IntegrityManifest.fileSuffix) || name.hasSuffix(".sha256") { continue }
            let path = directory + "/" + name
            if let destination = try? fm.destinationOfSymbolicLink(atPath: path) {
                guard SafetensorsDirectorySink.isTrustedLink(path, in: directory) else {
                    let shown = DisplayText.shortened(name)
                    warnings.append(fm.fileExists(atPath: path)
                        ? "skipped the side file \(shown): it is a symbolic link to \(DisplayText.shortened(destination)), outside the input model and its Hugging Face cache, so it is not copied"
                        : "skipped the side file \(shown): it is a symbolic link to \(DisplayText.shortened(destination)), which does not exist")
                    continue
                }
            }
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            copiedSideFiles.append(try transaction.copy(path, named: name))
        }
        return warnings
    }

    /// Whether the symbolic link `path` in the model directory `directory` resolves to an existing
    /// file inside `directory`'s tree, or inside `…/models--ORG--NAME/blobs/` when `directory` is a
    /// Hugging Face cache snapshot (`…/models--ORG--NAME/snapshots/REV`).
    public static func isTrustedLink(_ path: String, in directory: String) -> Bool {
        let fm = FileManager.default
        guard fm.fileExists(atPath: path) else { return false }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let root = URL(fileURLWithPath: directory).resolvingSymlinksInPath()
        func inside(_ base: String) -> Bool { resolved.hasPrefix(base.hasSuffix("/") ? base : base + "/") }
        if inside(root.path) { return true }
        let snapshots = root.deletingLastPathComponent()
        let model = snapshots.deletingLastPathComponent()
        if snapshots.lastPathComponent == "snapshots", model.lastPathComponent.hasPrefix("models--") {
            return inside(model.appendingPathComponent("blobs").path)
        }
        return false
    }

    /// Writes config.json (``configStyle`` plus a newline).
    public func writeConfig(_ config: JSONValue) throws(FormatError) {
        try writeDocument(config, named: "config.json", style: SafetensorsDirectorySink.configStyle)
    }

    /// Writes a JSON document into the directory (`style` plus a newline).
    public func writeDocument(_ document: JSONValue, named name: String, style: JSONStyle) throws(FormatError) {
        try transaction.write(document.serialized(style) + [UInt8(ascii: "\n")], named: name)
    }

    /// Moves the directory into place.
    public func commit() throws(FormatError) { try transaction.commit(.directory) }
}
