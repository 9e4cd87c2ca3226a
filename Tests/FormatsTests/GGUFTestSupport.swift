import Foundation
import Testing
import Formats
import TestSupport

/// What a GGUF file holds, in the canonical form tools/oracle_read_gguf.py prints: integers as
/// decimal strings, floats as IEEE bit patterns in hex, bools as "true"/"false". Both our reader and
/// gguf-py's GGUFReader are turned into this, so a test compares them field by field.
struct GGUFListing: Equatable {
    var version: Int
    var alignment: Int
    var dataOffset: Int
    /// One row per key: [key, TYPE, value] or [key, "ARRAY", ELEMENT_TYPE, count, values…].
    var metadata: [[String]]
    /// One row per tensor: [name, type, type id, ggml dims, relative offset, absolute offset, bytes, sha256].
    var tensors: [[String]]

    /// The listing of a file as our reader sees it.
    init(_ file: GGUFFile) {
        version = Int(file.version)
        alignment = file.alignment
        dataOffset = file.dataStart
        metadata = file.metadata.map { entry in
            if case .array(let elementType, let elements) = entry.value {
                return [entry.key, "ARRAY", elementType.description.uppercased(), "\(elements.count)"]
                    + elements.map(Self.canonical)
            }
            return [entry.key, entry.value.type.description.uppercased(), Self.canonical(entry.value)]
        }
        tensors = file.tensors.map { tensor in
            [tensor.name, tensor.type.name, "\(tensor.type.id)", tensor.dimensions.map(String.init).joined(separator: ","),
             "\(tensor.offset)", "\(file.dataStart + tensor.offset)", "\(tensor.byteCount)",
             SHA256.hex(file.data(for: tensor))]
        }
    }

    /// The listing printed by tools/oracle_read_gguf.py (or stored as a fixture's expected JSON).
    init(oracleJSON data: Data) throws {
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        version = try #require(root["version"] as? Int)
        alignment = try #require(root["alignment"] as? Int)
        dataOffset = try #require(root["data_offset"] as? Int)
        let entries = try #require(root["metadata"] as? [[String: Any]])
        metadata = try entries.map { entry in
            let key = try #require(entry["key"] as? String)
            let type = try #require(entry["type"] as? String)
            if type == "ARRAY" {
                let elementType = try #require(entry["element_type"] as? String)
                let count = try #require(entry["count"] as? Int)
                let values = try #require(entry["values"] as? [Any])
                return [key, type, elementType, "\(count)"] + (try values.map { try Self.canonical(json: $0, type: elementType) })
            }
            return [key, type, try Self.canonical(json: try #require(entry["value"]), type: type)]
        }
        let tensorEntries = try #require(root["tensors"] as? [[String: Any]])
        tensors = try tensorEntries.map { tensor in
            let dims = try #require(tensor["dims"] as? [Int])
            return [try #require(tensor["name"] as? String), try #require(tensor["type"] as? String),
                    "\(try #require(tensor["type_id"] as? Int))", dims.map(String.init).joined(separator: ","),
                    "\(try #require(tensor["offset"] as? Int))", "\(try #require(tensor["data_offset"] as? Int))",
                    "\(try #require(tensor["n_bytes"] as? Int))", try #require(tensor["sha256"] as? String)]
        }
    }

    static func canonical(_ value: GGUFValue) -> String {
        switch value {
        case .float32(let v): return "0x" + hex(UInt64(v.bitPattern), digits: 8)
        case .float64(let v): return "0x" + hex(v.bitPattern, digits: 16)
        case .bool(let v): return v ? "true" : "false"
        case .string(let v): return v
        case .uint64(let v): return "\(v)"
        case .array: return "<nested array>"
        default: return value.int.map(String.init) ?? "<not an integer>"
        }
    }

    private static func canonical(json: Any, type: String) throws -> String {
        if type == "BOOL" { return try #require(json as? Bool) ? "true" : "false" }
        return try #require(json as? String)
    }

    private static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}

/// Runs gguf-py through tools/oracle_read_gguf.py.
enum GGUFOracle {
    /// The listing gguf-py's GGUFReader reads from `path`. Fails the test (never skips) when the
    /// Python environment is missing.
    static func read(_ path: String) throws -> GGUFListing {
        let data = try OraclePython.run("oracle_read_gguf.py", [path])
        return try GGUFListing(oracleJSON: data)
    }
}

/// Reads a whole (small) file into an array, for byte comparisons in tests.
func ggufReadBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}
