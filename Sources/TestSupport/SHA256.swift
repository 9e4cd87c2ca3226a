import Formats

/// SHA-256, for comparing tensor bytes with the sha256 the oracles print: swift-crypto's, through
/// Formats (``IntegrityManifest/sha256(_:)``), which also hashes every output the tool writes.
public enum SHA256 {
    /// The digest of `bytes` as 64 lowercase hex digits.
    public static func hex(_ bytes: UnsafeRawBufferPointer) -> String { IntegrityManifest.sha256(bytes) }

    /// The digest of `bytes` as 64 lowercase hex digits.
    public static func hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { hex($0) } }
}
