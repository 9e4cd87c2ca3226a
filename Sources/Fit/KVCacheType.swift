/// The element type of the KV cache (`--kv-dtype`): how many bytes each cached key or value takes.
public enum KVCacheType: String, Sendable, Hashable, CaseIterable {
    /// 16-bit floats (FP16; BF16 and engines' `auto` take the same space).
    case fp16
    /// BFloat16.
    case bf16
    /// 8-bit floats (E4M3 or E5M2).
    case fp8

    /// Other spellings the engines use, by the type they mean.
    public static let aliases: [String: KVCacheType] = [
        "f16": .fp16, "auto": .fp16, "fp8_e4m3": .fp8, "fp8-e4m3": .fp8, "fp8_e5m2": .fp8,
    ]

    /// The type named `name` (case-insensitive, aliases included), or nil.
    public init?(name: String) {
        let key = name.lowercased()
        guard let type = KVCacheType(rawValue: key) ?? KVCacheType.aliases[key] else { return nil }
        self = type
    }

    /// Bytes one cached element takes.
    public var bytesPerElement: Int {
        switch self {
        case .fp16, .bf16: return 2
        case .fp8: return 1
        }
    }
}
