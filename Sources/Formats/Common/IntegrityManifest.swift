import Crypto
import Foundation

extension FormatError.Code {
    /// A file's bytes differ from the SHA-256 its manifest or `.sha256` sidecar records.
    public static let checksumDiffers: Self = "checksumDiffers"
    /// A manifest is not valid JSON of the manifest schema (formats/integrity.md).
    public static let invalidManifest: Self = "invalidManifest"
}

/// The integrity record of an output (formats/integrity.md): the SHA-256 and size of every file
/// written, the tool and the options that made it, and the checksums of the inputs.
///
/// Written as `quantize-manifest.json` inside an output directory, or `NAME.quantize-manifest.json`
/// next to a single-file output. Output hashes come from ``OutputFile/sha256`` (computed while
/// the bytes are written, no second read); ``verify(relativeTo:)`` re-reads the files and names
/// the first that differs.
public struct IntegrityManifest: Codable, Sendable, Equatable {
    /// One file and its checksum.
    public struct FileEntry: Codable, Sendable, Equatable {
        /// The file name, relative to the manifest's directory (outputs) or as given (inputs).
        public var name: String
        /// Bytes in the file.
        public var bytes: Int
        /// SHA-256 of the bytes, 64 lowercase hex digits.
        public var sha256: String

        /// Creates an entry.
        public init(name: String, bytes: Int, sha256: String) {
            self.name = name
            self.bytes = bytes
            self.sha256 = sha256
        }
    }

    /// The schema version this code writes and reads.
    public static let currentVersion = 1
    /// The version of quantize recorded as ``toolVersion`` (also what `quantize --version` prints).
    public static let quantizeVersion = "0.1.0"
    /// The manifest's name inside an output directory.
    public static let directoryFileName = "quantize-manifest.json"
    /// The suffix of a single-file output's manifest (`out.gguf.quantize-manifest.json`).
    public static let fileSuffix = ".quantize-manifest.json"

    /// Schema version (``currentVersion``).
    public var version: Int
    /// The tool that wrote the output (`quantize`).
    public var tool: String
    /// The tool's version.
    public var toolVersion: String
    /// The scheme the output was made with (`q4_k`, `int4`), nil for a plain copy or compression.
    public var scheme: String?
    /// The options that shaped the bytes, as `name: value` strings.
    public var options: [String: String]
    /// The outputs, in the order written.
    public var files: [FileEntry]
    /// The inputs read, with their checksums.
    public var inputs: [FileEntry]

    /// Creates a manifest.
    public init(tool: String = "quantize", toolVersion: String = IntegrityManifest.quantizeVersion, scheme: String?, options: [String: String] = [:],
                files: [FileEntry], inputs: [FileEntry] = []) {
        version = IntegrityManifest.currentVersion
        self.tool = tool
        self.toolVersion = toolVersion
        self.scheme = scheme
        self.options = options
        self.files = files
        self.inputs = inputs
    }

    /// Where the manifest of `output` lives: inside it for a directory, next to it for a file.
    public static func path(forOutput output: String) -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory), isDirectory.boolValue {
            return (output as NSString).appendingPathComponent(directoryFileName)
        }
        return output + fileSuffix
    }

    /// The entry of a committed output file (its name relative to `directory`).
    public static func entry(for file: OutputFile, relativeTo directory: String) -> FileEntry? {
        guard let sha256 = file.sha256 else { return nil }
        let name = file.path.hasPrefix(directory + "/") ? String(file.path.dropFirst(directory.count + 1)) : (file.path as NSString).lastPathComponent
        return FileEntry(name: name, bytes: file.position, sha256: sha256)
    }

    /// The manifest as the JSON document written to disk.
    public func encoded() throws -> [UInt8] {
        try JSONValueEncoder().encodeBytes(self) + [0x0A]
    }

    /// Writes the manifest atomically to `path`.
    public func write(to path: String, overwrite: Bool = true) throws {
        let file = try OutputFile(path: path, overwrite: overwrite)
        do {
            try file.write(encoded())
            try file.commit()
        } catch {
            file.discard()
            throw error
        }
    }

    /// Reads and checks the manifest at `path`.
    /// - Throws: ``FormatError`` `.invalidManifest` naming what is wrong, or the read error.
    public static func read(_ path: String) throws(FormatError) -> IntegrityManifest {
        let document = try JSONValue.parse(contentsOf: path)
        let manifest: IntegrityManifest
        do {
            manifest = try JSONValueDecoder().decode(IntegrityManifest.self, from: document)
        } catch {
            throw FormatError(.invalidManifest, path: path, message: "the manifest does not follow formats/integrity.md (\(error))",
                              remedy: "regenerate the output, or remove the manifest to skip the check")
        }
        guard manifest.version == currentVersion else {
            throw FormatError(.invalidManifest, path: path, message: "the manifest is version \(manifest.version); this build reads version \(currentVersion)",
                              remedy: "check it with the quantize that wrote it")
        }
        for entry in manifest.files + manifest.inputs where !isHexDigest(entry.sha256) || entry.bytes < 0 {
            throw FormatError(.invalidManifest, path: path, message: "the entry of \(DisplayText.shortened(entry.name)) has no valid sha256 and size",
                              remedy: "regenerate the output")
        }
        for entry in manifest.files where entry.name.isEmpty || entry.name.hasPrefix("/") || entry.name.split(separator: "/").contains("..") {
            throw FormatError(.invalidManifest, path: path, message: "the manifest lists \"\(DisplayText.shortened(entry.name))\", which is not a file inside the output",
                              remedy: "regenerate the output")
        }
        return manifest
    }

    /// Re-reads every output file (relative to `directory`) and checks its size and SHA-256.
    /// - Returns: the number of files checked.
    /// - Throws: ``FormatError`` `.checksumDiffers` (or `.io` / `.truncated`) naming the first file
    ///   that differs.
    @discardableResult
    public func verify(relativeTo directory: String) throws(FormatError) -> Int {
        for entry in files {
            let path = (directory as NSString).appendingPathComponent(entry.name)
            try IntegrityManifest.check(path: path, bytes: entry.bytes, sha256: entry.sha256, source: "the manifest")
        }
        return files.count
    }

    /// Checks the file at `path` against a recorded size (nil: not recorded) and SHA-256.
    /// - Throws: ``FormatError`` `.checksumDiffers` naming the file and both digests.
    public static func check(path: String, bytes: Int?, sha256 expected: String, source: String) throws(FormatError) {
        let file = try MappedFile(uncompressedPath: path)
        if let bytes, file.count != bytes {
            throw FormatError(.checksumDiffers, path: path,
                              message: "the file is \(file.count) bytes but \(source) records \(bytes): it was changed, truncated or replaced",
                              remedy: "copy or download the file again")
        }
        let found = sha256(file.bytes)
        guard found == expected.lowercased() else {
            throw FormatError(.checksumDiffers, path: path,
                              message: "its SHA-256 is \(found) but \(source) records \(expected.lowercased()): the bytes were changed",
                              remedy: "copy or download the file again")
        }
    }

    /// Checks `path` against its sidecar `path.sha256` (the `sha256sum` format: the digest first on
    /// the line), when one exists.
    /// - Returns: whether a sidecar was found and matched.
    /// - Throws: ``FormatError`` `.checksumDiffers`, or `.invalidManifest` for a sidecar without a digest.
    @discardableResult
    public static func verifySidecar(of path: String) throws(FormatError) -> Bool {
        let sidecar = path + ".sha256"
        guard FileManager.default.fileExists(atPath: sidecar) else { return false }
        try check(path: path, bytes: nil, sha256: sidecarDigest(sidecar), source: (sidecar as NSString).lastPathComponent)
        return true
    }

    /// The digest a `sha256sum`-format sidecar records (the first word of its first line), lowercased.
    /// - Throws: ``FormatError`` `.invalidManifest` when it does not begin with 64 hex digits.
    static func sidecarDigest(_ sidecar: String) throws(FormatError) -> String {
        let file = try MappedFile(uncompressedPath: sidecar)
        let text = String(decoding: file.bytes.prefix(4096), as: UTF8.self)
        guard let digest = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).first.map({ String($0).lowercased() }),
              isHexDigest(digest) else {
            throw FormatError(.invalidManifest, path: sidecar, message: "the sidecar does not begin with a SHA-256 digest (64 hex digits)",
                              remedy: "regenerate it with `sha256sum FILE > FILE.sha256`, or remove it")
        }
        return digest
    }

    /// Verifies everything that records a checksum for the checkpoint at `path` with data files
    /// `files`: its manifest (``path(forOutput:)``), then each file's `.sha256` sidecar.
    /// - Returns: one line per check done (empty when nothing records a checksum).
    /// - Throws: ``FormatError`` `.checksumDiffers` naming the first file that differs.
    public static func verifyChecksums(of path: String, files: [String]) throws(FormatError) -> [String] {
        var done: [String] = []
        let manifestPath = IntegrityManifest.path(forOutput: path)
        let directory = (path as NSString).deletingLastPathComponent
        let enclosing = (directory.isEmpty ? "." : directory) + "/" + directoryFileName
        if FileManager.default.fileExists(atPath: manifestPath) {
            let manifest = try read(manifestPath)
            let count = try manifest.verify(relativeTo: (manifestPath as NSString).deletingLastPathComponent)
            done.append("\(count) file\(count == 1 ? "" : "s") match \((manifestPath as NSString).lastPathComponent)")
        } else if manifestPath != enclosing, FileManager.default.fileExists(atPath: enclosing) {
            // A file inside a directory output: its entry in the directory's manifest.
            let manifest = try read(enclosing)
            let name = (path as NSString).lastPathComponent
            if let entry = manifest.files.first(where: { $0.name == name }) {
                try check(path: path, bytes: entry.bytes, sha256: entry.sha256, source: "the directory's \(directoryFileName)")
                done.append("\(name) matches the directory's \(directoryFileName)")
            }
        }
        for file in files where try verifySidecar(of: file) {
            done.append("\((file as NSString).lastPathComponent) matches its .sha256 sidecar")
        }
        return done
    }

    /// SHA-256 of `bytes` (swift-crypto), 64 lowercase hex digits.
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> String {
        hex(Crypto.SHA256.hash(data: bytes))
    }

    /// A digest as lowercase hex.
    static func hex<D: Sequence<UInt8>>(_ digest: D) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static func isHexDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
