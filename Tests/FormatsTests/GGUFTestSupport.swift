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
             GGUFSHA256.hex(file.data(for: tensor))]
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
        let root = Fixtures.repositoryRoot
        let python = root.appendingPathComponent(".venv/bin/python")
        try #require(FileManager.default.isExecutableFile(atPath: python.path),
                     "the Python oracle environment is missing (\(python.path)): run tools/setup.sh")
        let process = Process()
        process.executableURL = python
        process.arguments = [root.appendingPathComponent("tools/oracle_read_gguf.py").path, path]
        let output = Pipe()
        let errors = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0,
                     "tools/oracle_read_gguf.py \(path) exited with status \(process.terminationStatus)")
        return try GGUFListing(oracleJSON: data)
    }
}

/// SHA-256 (FIPS 180-4), for comparing tensor bytes with the sha256 the oracle prints; Foundation on
/// Linux has no digest API and the package has no crypto dependency.
enum GGUFSHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    /// The digest of `bytes` as 64 lowercase hex digits.
    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var message = Array(bytes)
        let bitLength = UInt64(message.count) * 8
        message.append(0x80)
        while message.count % 64 != 56 { message.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { message.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var w = [UInt32](repeating: 0, count: 64)
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        for chunk in stride(from: 0, to: message.count, by: 64) {
            for i in 0..<16 {
                w[i] = (0..<4).reduce(0) { ($0 << 8) | UInt32(message[chunk + 4 * i + $1]) }
            }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0..<64 {
                let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let t1 = hh &+ s1 &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
                let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let t2 = s0 &+ ((a & b) ^ (a & c) ^ (b & c))
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            for (i, v) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ v }
        }
        return h.map { word in
            let text = String(word, radix: 16)
            return String(repeating: "0", count: 8 - text.count) + text
        }.joined()
    }

    /// The digest of an array of bytes.
    static func hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { hex($0) } }
}

/// Reads a whole (small) file into an array, for byte comparisons in tests.
func ggufReadBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}
