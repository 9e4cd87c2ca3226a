import Foundation

/// The type tag of a GGUF metadata value (`gguf_type` in ggml include/gguf.h; formats.md §2.1).
public enum GGUFValueType: UInt32, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// Unsigned 8-bit integer.
    case uint8 = 0
    /// Signed 8-bit integer.
    case int8 = 1
    /// Unsigned 16-bit integer.
    case uint16 = 2
    /// Signed 16-bit integer.
    case int16 = 3
    /// Unsigned 32-bit integer.
    case uint32 = 4
    /// Signed 32-bit integer.
    case int32 = 5
    /// IEEE binary32.
    case float32 = 6
    /// One byte, 0 or 1.
    case bool = 7
    /// u64 byte length followed by UTF-8 bytes, no terminator.
    case string = 8
    /// u32 element type, u64 element count, then the elements.
    case array = 9
    /// Unsigned 64-bit integer.
    case uint64 = 10
    /// Signed 64-bit integer.
    case int64 = 11
    /// IEEE binary64.
    case float64 = 12

    /// The lowercase name used in summaries and messages (`uint32`, `string`, …).
    public var description: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .float32: return "float32"
        case .bool: return "bool"
        case .string: return "string"
        case .array: return "array"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float64: return "float64"
        }
    }

    /// Bytes one value of this type occupies in a file at the least: its fixed size, 8 for a string
    /// (the length alone), 12 for an array (element type and count). Used to bound counts read from
    /// a file by the bytes left before anything is allocated.
    public var minimumEncodedSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}

/// One GGUF metadata value. Arrays carry their element type so that an empty array keeps it, and
/// hold scalars or strings only (ggml rejects nested arrays; formats.md §2.2).
public enum GGUFValue: Sendable, Hashable {
    /// An unsigned 8-bit integer.
    case uint8(UInt8)
    /// A signed 8-bit integer.
    case int8(Int8)
    /// An unsigned 16-bit integer.
    case uint16(UInt16)
    /// A signed 16-bit integer.
    case int16(Int16)
    /// An unsigned 32-bit integer.
    case uint32(UInt32)
    /// A signed 32-bit integer.
    case int32(Int32)
    /// An IEEE binary32 float.
    case float32(Float)
    /// A boolean.
    case bool(Bool)
    /// A UTF-8 string.
    case string(String)
    /// An array of values, all of `elementType` (never `.array`).
    case array(GGUFValueType, [GGUFValue])
    /// An unsigned 64-bit integer.
    case uint64(UInt64)
    /// A signed 64-bit integer.
    case int64(Int64)
    /// An IEEE binary64 float.
    case float64(Double)

    /// The type tag this value is stored with.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// The value of any integer type as `Int`, or nil for other types and for a `uint64` above `Int.max`.
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// The value of a float type as `Double` (a `float32` widened exactly), or of an integer type
    /// converted to the nearest `Double`; nil for bools, strings and arrays.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        case .uint64(let v): return Double(v)
        default: return int.map(Double.init)
        }
    }

    /// The string, or nil for any other type.
    public var string: String? {
        if case .string(let v) = self { return v }
        return nil
    }

    /// The bool, or nil for any other type.
    public var bool: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }

    /// The elements of an array, or nil for any other type.
    public var array: [GGUFValue]? {
        if case .array(_, let elements) = self { return elements }
        return nil
    }

    /// The element type of an array, or nil for any other type.
    public var elementType: GGUFValueType? {
        if case .array(let type, _) = self { return type }
        return nil
    }

    /// A one-line rendering for display: numbers as written, strings quoted, and arrays as
    /// `array<string>[128256]: ["<s>", "</s>", …]` with only the first few elements shown.
    public var summary: String {
        switch self {
        case .array(let type, let elements):
            var shown: [String] = []
            var length = 0
            for element in elements {
                let text = element.summary
                if shown.count >= 8 || (length + text.count > 60 && !shown.isEmpty) { break }
                shown.append(text)
                length += text.count + 2
            }
            if shown.count < elements.count { shown.append("…") }
            return "array<\(type)>[\(elements.count)]: [" + shown.joined(separator: ", ") + "]"
        case .string(let v):
            let limit = 60
            var text = v.count > limit ? String(v.prefix(limit)) + "…" : v
            text = text.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
            return "\"" + text + "\""
        case .bool(let v): return v ? "true" : "false"
        case .float32(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        case .uint64(let v): return "\(v)"
        default: return int.map { "\($0)" } ?? ""
        }
    }
}
