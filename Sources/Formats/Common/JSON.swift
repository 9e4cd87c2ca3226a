import Foundation

// A strict JSON (RFC 8259) parser and serializer over UTF-8 bytes, written by hand so that every
// error carries the byte offset, duplicate keys are refused, member order is kept, and integers
// stay exact up to Int64 — none of which Foundation's JSONSerialization guarantees.

extension FormatError.Code {
    /// Text that should be JSON is not (syntax error, nesting too deep, trailing garbage).
    public static let invalidJSON: Self = "invalidJSON"
    /// A JSON object has the same key twice.
    public static let duplicateKey: Self = "duplicateKey"
}

/// An exact JSON number: the nearest `Double`, plus the exact integer when the literal is one.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The value rounded to the nearest `Double`.
    public let double: Double
    /// The exact value when the literal is an integer (no fraction, no exponent) that fits `Int`
    /// (Int64); nil otherwise, so `4.0`, `1e3` and `2^70` are never mistaken for sizes.
    public let int: Int?
    /// Whether the literal had neither a fraction nor an exponent (true also for integers too
    /// large for `Int`).
    public let isIntegerLiteral: Bool

    /// An integer.
    public init(_ value: Int) {
        double = Double(value)
        int = value
        isIntegerLiteral = true
    }

    /// A floating-point number (serialized the way Python's `repr(float)` writes it).
    public init(_ value: Double) {
        double = value
        int = nil
        isIntegerLiteral = false
    }

    init(double: Double, int: Int?, isIntegerLiteral: Bool) {
        self.double = double
        self.int = int
        self.isIntegerLiteral = isIntegerLiteral
    }

    /// The number as JSON text: the exact integer, or the shortest round-trip decimal in Python's
    /// `repr` style (`1e-05`, `0.0001`, `1.0`, `1e+16`).
    public var description: String {
        if let int { return String(int) }
        if isIntegerLiteral, double.isFinite, double.rounded(.towardZero) == double {
            // Integer literals beyond Int64: the double's integer digits (not exact beyond 2^53).
            return String(format: "%.0f", double)
        }
        return JSONNumber.pythonRepr(double)
    }

    /// Formats a double exactly as CPython's `repr(float)` does (json.dumps uses it): shortest
    /// round-trip digits, exponent form when the decimal exponent is < -4 or >= 16.
    static func pythonRepr(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        // Swift's description already gives the shortest round-trip digits; re-layout them.
        var text = Substring(value.description)
        var negative = false
        if text.first == "-" { negative = true; text = text.dropFirst() }
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = text[..<e]
        }
        var digits: [Character] = []
        var pointPosition = text.count
        if let dot = text.firstIndex(of: ".") {
            pointPosition = text.distance(from: text.startIndex, to: dot)
        }
        for character in text where character != "." { digits.append(character) }
        var decimalPoint = pointPosition + exponent
        while let first = digits.first, first == "0" { digits.removeFirst(); decimalPoint -= 1 }
        while let last = digits.last, last == "0" { digits.removeLast() }
        let sign = negative ? "-" : ""
        if digits.isEmpty { return sign + "0.0" }
        if decimalPoint <= -4 || decimalPoint > 16 {
            var mantissa = String(digits[0])
            if digits.count > 1 { mantissa += "." + String(digits[1...]) }
            let e = decimalPoint - 1
            let magnitude = String(abs(e))
            return sign + mantissa + "e" + (e < 0 ? "-" : "+") + (magnitude.count < 2 ? "0" : "") + magnitude
        }
        if decimalPoint <= 0 {
            return sign + "0." + String(repeating: "0", count: -decimalPoint) + String(digits)
        }
        if decimalPoint >= digits.count {
            return sign + String(digits) + String(repeating: "0", count: decimalPoint - digits.count) + ".0"
        }
        return sign + String(digits[..<decimalPoint]) + "." + String(digits[decimalPoint...])
    }
}

/// One member of a JSON object: a key and its value (objects keep their members in file order).
public struct JSONMember: Sendable, Hashable {
    /// The key.
    public var key: String
    /// The value.
    public var value: JSONValue

    /// Creates a member.
    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}

/// A JSON document or part of one. Objects keep their members in order, numbers keep exact
/// integers; parsing is strict (see ``parse(_:path:baseOffset:maxDepth:)``).
public enum JSONValue: Sendable, Hashable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number.
    case number(JSONNumber)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object, members in order; keys are unique when it comes from the parser.
    case object([JSONMember])

    /// The deepest nesting of arrays and objects the parser accepts (serde_json's limit).
    public static let defaultMaxDepth = 128

    /// The value of `key` when this is an object that has it (the first such member).
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        for member in members where member.key == key { return member.value }
        return nil
    }

    /// The element at `index` when this is an array that long.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    /// The exact integer when this is an integer literal that fits `Int`; nil for `4.0`, `1e3`,
    /// integers beyond Int64 and non-numbers.
    public var int: Int? {
        if case .number(let number) = self { return number.int }
        return nil
    }

    /// The numeric value as a `Double` when this is a number.
    public var double: Double? {
        if case .number(let number) = self { return number.double }
        return nil
    }

    /// The string when this is a string.
    public var string: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// The Boolean when this is `true` or `false`.
    public var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The elements when this is an array.
    public var array: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The members in order when this is an object.
    public var object: [JSONMember]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// Whether this is `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// A short name of the JSON type ("an object", "a string", …) for error messages.
    public var kindDescription: String {
        switch self {
        case .null: return "null"
        case .bool: return "a Boolean"
        case .number(let number): return number.isIntegerLiteral ? "an integer" : "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    // MARK: Parsing

    /// Parses one JSON document from UTF-8 `bytes`, strictly: invalid UTF-8, duplicate keys,
    /// trailing non-whitespace, nesting deeper than `maxDepth`, lone surrogates, control
    /// characters in strings and any syntax error are refused.
    /// - Parameters:
    ///   - path: the file the bytes come from, for error messages.
    ///   - baseOffset: the offset of `bytes` in that file, so error offsets are file offsets.
    /// - Throws: ``FormatError`` with code `.invalidJSON`, `.invalidUTF8` or `.duplicateKey`,
    ///   its `offset` the byte where the problem is.
    public static func parse(
        _ bytes: UnsafeRawBufferPointer, path: String = "<json>", baseOffset: Int = 0,
        maxDepth: Int = JSONValue.defaultMaxDepth
    ) throws(FormatError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, path: path, baseOffset: baseOffset, maxDepth: maxDepth)
        return try parser.parseDocument()
    }

    /// Parses one JSON document from an array of UTF-8 bytes (see ``parse(_:path:baseOffset:maxDepth:)``).
    public static func parse(_ bytes: [UInt8], path: String = "<json>") throws(FormatError) -> JSONValue {
        var result: Result<JSONValue, FormatError> = .success(.null)
        bytes.withUnsafeBytes { raw in
            do throws(FormatError) { result = .success(try parse(raw, path: path)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// Parses one JSON document from a string (see ``parse(_:path:baseOffset:maxDepth:)``).
    public static func parse(_ text: String, path: String = "<json>") throws(FormatError) -> JSONValue {
        try parse(Array(text.utf8), path: path)
    }

    /// Reads and parses the JSON file at `path` (mapped, not copied).
    /// - Throws: ``FormatError`` `.io` when it cannot be read, `.gitLFSPointer` for a Git LFS
    ///   pointer, `.notThisFormat` when it is empty, or a parse error.
    public static func parse(contentsOf path: String) throws(FormatError) -> JSONValue {
        let file = try MappedFile(path: path)
        if let size = GitLFSPointer.declaredSize(in: file.bytes) {
            throw GitLFSPointer.error(path: path, declaredSize: size)
        }
        if file.count == 0 {
            throw FormatError(.notThisFormat, path: path, offset: 0, message: "the file is empty, not JSON",
                              remedy: "download or regenerate the file")
        }
        return try parse(file.bytes, path: path)
    }

    // MARK: Serialization

    /// The document as UTF-8 bytes in `style`.
    public func serialized(_ style: JSONStyle = .compact) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        serialize(into: &output, style: style)
        return output
    }

    /// The document as a string in `style`.
    public func serializedString(_ style: JSONStyle = .compact) -> String {
        String(decoding: serialized(style), as: UTF8.self)
    }

    /// Appends the document's UTF-8 bytes in `style` to `output`.
    public func serialize(into output: inout [UInt8], style: JSONStyle = .compact) {
        write(into: &output, style: style, level: 0)
    }

    private func write(into output: inout [UInt8], style: JSONStyle, level: Int) {
        switch self {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let value): output.append(contentsOf: (value ? "true" : "false").utf8)
        case .number(let number): output.append(contentsOf: number.description.utf8)
        case .string(let text): JSONValue.writeString(text, into: &output, escapeNonASCII: style.escapeNonASCII)
        case .array(let elements):
            if elements.isEmpty { output.append(contentsOf: "[]".utf8); return }
            output.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                JSONValue.newline(into: &output, style: style, level: level + 1)
                element.write(into: &output, style: style, level: level + 1)
            }
            JSONValue.newline(into: &output, style: style, level: level)
            output.append(UInt8(ascii: "]"))
        case .object(var members):
            if members.isEmpty { output.append(contentsOf: "{}".utf8); return }
            if style.sortKeys {
                // Python's sort_keys orders by code point, which is UTF-8 byte order.
                members.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            }
            output.append(UInt8(ascii: "{"))
            for (position, member) in members.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                JSONValue.newline(into: &output, style: style, level: level + 1)
                JSONValue.writeString(member.key, into: &output, escapeNonASCII: style.escapeNonASCII)
                output.append(UInt8(ascii: ":"))
                if style.indent != nil { output.append(UInt8(ascii: " ")) }
                member.value.write(into: &output, style: style, level: level + 1)
            }
            JSONValue.newline(into: &output, style: style, level: level)
            output.append(UInt8(ascii: "}"))
        }
    }

    private static func newline(into output: inout [UInt8], style: JSONStyle, level: Int) {
        guard let indent = style.indent else { return }
        output.append(UInt8(ascii: "\n"))
        output.append(contentsOf: repeatElement(UInt8(ascii: " "), count: indent * level))
    }

    /// Appends `text` as a JSON string literal: `"` and `\` escaped, control characters as
    /// `\b \t \n \f \r` or `\u00xx` (serde_json and Python agree on this), and, when
    /// `escapeNonASCII`, every non-ASCII scalar and DEL as `\uxxxx` (surrogate pairs above
    /// U+FFFF), as Python's `ensure_ascii` does.
    public static func writeString(_ text: String, into output: inout [UInt8], escapeNonASCII: Bool = false) {
        output.append(UInt8(ascii: "\""))
        let hex = Array("0123456789abcdef".utf8)
        func unicodeEscape(_ unit: UInt16) {
            output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"),
                                       hex[Int(unit >> 12)], hex[Int((unit >> 8) & 0xF)],
                                       hex[Int((unit >> 4) & 0xF)], hex[Int(unit & 0xF)]])
        }
        if escapeNonASCII {
            for scalar in text.unicodeScalars {
                let value = scalar.value
                if value >= 0x20, value < 0x7F, value != 0x22, value != 0x5C {
                    output.append(UInt8(value))
                } else if value < 0x80, let short = shortEscape(UInt8(value)) {
                    output.append(contentsOf: [UInt8(ascii: "\\"), short])
                } else if value <= 0xFFFF {
                    unicodeEscape(UInt16(value))
                } else {
                    let offset = value - 0x10000
                    unicodeEscape(UInt16(0xD800 + (offset >> 10)))
                    unicodeEscape(UInt16(0xDC00 + (offset & 0x3FF)))
                }
            }
        } else {
            for byte in text.utf8 {
                if byte >= 0x20, byte != 0x22, byte != 0x5C {
                    output.append(byte)
                } else if let short = shortEscape(byte) {
                    output.append(contentsOf: [UInt8(ascii: "\\"), short])
                } else {
                    unicodeEscape(UInt16(byte))
                }
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    private static func shortEscape(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x22: return UInt8(ascii: "\"")
        case 0x5C: return UInt8(ascii: "\\")
        case 0x08: return UInt8(ascii: "b")
        case 0x0C: return UInt8(ascii: "f")
        case 0x0A: return UInt8(ascii: "n")
        case 0x0D: return UInt8(ascii: "r")
        case 0x09: return UInt8(ascii: "t")
        default: return nil
        }
    }
}

/// How ``JSONValue`` is written.
public struct JSONStyle: Sendable, Hashable {
    /// Spaces per nesting level, or nil for the compact form (no whitespace at all).
    public var indent: Int?
    /// Whether object keys are sorted (by code point, as Python's `sort_keys=True`).
    public var sortKeys: Bool
    /// Whether non-ASCII characters are written as `\uxxxx` (Python's default `ensure_ascii`).
    public var escapeNonASCII: Bool

    /// Creates a style.
    public init(indent: Int? = nil, sortKeys: Bool = false, escapeNonASCII: Bool = false) {
        self.indent = indent
        self.sortKeys = sortKeys
        self.escapeNonASCII = escapeNonASCII
    }

    /// No whitespace, keys in the given order, UTF-8 as is: byte-identical to serde_json's
    /// `to_string` (what the safetensors reference writer uses for headers).
    public static let compact = JSONStyle()
    /// Python's `json.dumps(value, indent=2, sort_keys=True)`, as transformers writes
    /// `model.safetensors.index.json` and `config.json`.
    public static let pythonIndented = JSONStyle(indent: 2, sortKeys: true, escapeNonASCII: true)
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    /// `null`.
    public init(nilLiteral: ()) { self = .null }
    /// A Boolean.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// An integer.
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    /// A floating-point number.
    public init(floatLiteral value: Double) { self = .number(JSONNumber(value)) }
    /// A string.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An array.
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// An object with the members in the order written.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(elements.map { JSONMember($0.0, $0.1) })
    }
}

// MARK: - Parser

/// The recursive-descent parser behind ``JSONValue/parse(_:path:baseOffset:maxDepth:)``.
struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    let path: String
    let baseOffset: Int
    let maxDepth: Int
    var index = 0
    private var memberStack: [JSONMember] = []
    private var valueStack: [JSONValue] = []

    init(bytes: UnsafeRawBufferPointer, path: String, baseOffset: Int, maxDepth: Int) {
        self.bytes = bytes
        self.path = path
        self.baseOffset = baseOffset
        self.maxDepth = maxDepth
    }

    mutating func parseDocument() throws(FormatError) -> JSONValue {
        skipWhitespace()
        let value = try parseValue(depth: 0)
        try expectEnd()
        return value
    }

    /// Parses a document that must be an object, handing each member's key (and the absolute
    /// offset of the key) to `body`, which must read the value from the parser passed to it —
    /// so a caller can read big documents member by member without building the whole tree.
    /// Duplicate keys at this level are left to `body`.
    /// - Returns: false (without consuming anything) when the document is not an object.
    mutating func parseTopLevelObject(
        _ body: (inout JSONParser, String, Int) throws(FormatError) -> Void
    ) throws(FormatError) -> Bool {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return false }
        index += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
        } else {
            while true {
                skipWhitespace()
                let keyOffset = baseOffset + index
                guard peek() == UInt8(ascii: "\"") else { throw syntax("expected a string key") }
                let key = try parseString()
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw syntax("expected ':' after the key") }
                index += 1
                skipWhitespace()
                try body(&self, key, keyOffset)
                skipWhitespace()
                guard let next = peek() else { throw syntax("expected ',' or '}' in an object") }
                index += 1
                if next == UInt8(ascii: ",") { continue }
                if next == UInt8(ascii: "}") { break }
                index -= 1
                throw syntax("expected ',' or '}' in an object")
            }
        }
        try expectEnd()
        return true
    }

    private mutating func expectEnd() throws(FormatError) {
        skipWhitespace()
        if index < bytes.count {
            throw syntax("unexpected text after the end of the JSON value")
        }
    }

    @inline(__always)
    func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    @inline(__always)
    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    func syntax(_ message: String, at position: Int? = nil) -> FormatError {
        let at = position ?? index
        let found: String
        if at >= bytes.count {
            found = " (found the end of the text)"
        } else {
            let byte = bytes[at]
            found = byte >= 0x20 && byte < 0x7F ? " (found '\(Character(Unicode.Scalar(byte)))')" : " (found byte 0x\(String(byte, radix: 16)))"
        }
        return FormatError(.invalidJSON, path: path, offset: baseOffset + at, message: "invalid JSON: \(message)\(found)",
                           remedy: "the file is damaged or was not written by a JSON writer; regenerate or download it again")
    }

    mutating func parseValue(depth: Int) throws(FormatError) -> JSONValue {
        guard let byte = peek() else { throw syntax("expected a value") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw syntax("expected a value")
        }
    }

    private mutating func literal(_ word: StaticString) throws(FormatError) {
        let count = word.utf8CodeUnitCount
        let start = index
        guard bytes.count - index >= count else { throw syntax("expected '\(word)'") }
        let expected = UnsafeRawBufferPointer(start: word.utf8Start, count: count)
        for k in 0..<count where bytes[index + k] != expected[k] {
            throw syntax("expected '\(word)'", at: start + k)
        }
        index += count
    }

    private mutating func checkDepth(_ depth: Int) throws(FormatError) {
        if depth > maxDepth {
            throw syntax("arrays and objects are nested more than \(maxDepth) levels deep")
        }
    }

    private mutating func parseObject(depth: Int) throws(FormatError) -> JSONValue {
        try checkDepth(depth)
        index += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { index += 1; return .object([]) }
        // Members collect on a stack shared by all levels, so each object costs one exact-size
        // allocation instead of a growing array.
        let base = memberStack.count
        defer { memberStack.removeSubrange(base...) }
        var seen: NameTable? = nil
        while true {
            skipWhitespace()
            let keyOffset = index
            guard peek() == UInt8(ascii: "\"") else { throw syntax("expected a string key") }
            let key = try parseString()
            // Linear search is faster for the small objects that are the norm; switch to a hash
            // table once an object grows.
            if seen != nil {
                if seen!.insert(key) != nil { throw duplicate(key, at: keyOffset) }
            } else {
                for position in base..<memberStack.count where memberStack[position].key == key {
                    throw duplicate(key, at: keyOffset)
                }
                if memberStack.count - base >= 16 {
                    var table = NameTable(expectedCount: 64)
                    for position in base..<memberStack.count { _ = table.insert(memberStack[position].key) }
                    _ = table.insert(key)
                    seen = table
                }
            }
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw syntax("expected ':' after the key") }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            memberStack.append(JSONMember(key, value))
            skipWhitespace()
            guard let next = peek() else { throw syntax("expected ',' or '}' in an object") }
            index += 1
            if next == UInt8(ascii: ",") { continue }
            if next == UInt8(ascii: "}") { return .object(Array(memberStack[base...])) }
            index -= 1
            throw syntax("expected ',' or '}' in an object")
        }
    }

    private func duplicate(_ key: String, at offset: Int) -> FormatError {
        FormatError(.duplicateKey, path: path, offset: baseOffset + offset,
                    message: "the key \"\(key)\" appears twice in the same JSON object",
                    remedy: "the file is ambiguous; regenerate it with a writer that does not repeat keys")
    }

    private mutating func parseArray(depth: Int) throws(FormatError) -> JSONValue {
        try checkDepth(depth)
        index += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "]") { index += 1; return .array([]) }
        let base = valueStack.count
        defer { valueStack.removeSubrange(base...) }
        while true {
            skipWhitespace()
            let value = try parseValue(depth: depth)
            valueStack.append(value)
            skipWhitespace()
            guard let next = peek() else { throw syntax("expected ',' or ']' in an array") }
            index += 1
            if next == UInt8(ascii: ",") { continue }
            if next == UInt8(ascii: "]") { return .array(Array(valueStack[base...])) }
            index -= 1
            throw syntax("expected ',' or ']' in an array")
        }
    }

    mutating func parseNumber() throws(FormatError) -> JSONNumber {
        let start = index
        var negative = false
        if bytes[index] == UInt8(ascii: "-") { negative = true; index += 1 }
        guard let first = peek(), first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else {
            throw syntax("expected a digit")
        }
        var magnitude: Int = 0
        var fits = true
        if first == UInt8(ascii: "0") {
            index += 1
            if let next = peek(), next >= UInt8(ascii: "0"), next <= UInt8(ascii: "9") {
                throw syntax("numbers must not have leading zeros")
            }
        } else {
            while let digit = peek(), digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") {
                if fits {
                    // Accumulate negatively so Int.min is representable.
                    let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                    let (next, o2) = times10.subtractingReportingOverflow(Int(digit - UInt8(ascii: "0")))
                    if o1 || o2 { fits = false } else { magnitude = next }
                }
                index += 1
            }
        }
        var isInteger = true
        if peek() == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard let digit = peek(), digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else {
                throw syntax("expected a digit after the decimal point")
            }
            while let d = peek(), d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") { index += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index += 1 }
            guard let digit = peek(), digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else {
                throw syntax("expected a digit in the exponent")
            }
            while let d = peek(), d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") { index += 1 }
        }
        if isInteger, fits {
            if negative { return JSONNumber(magnitude) }
            if magnitude != Int.min { return JSONNumber(-magnitude) }
        }
        let text = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
        let value = JSONParser.strtodBytes(text)
        return JSONNumber(double: value, int: nil, isIntegerLiteral: isInteger)
    }

    private static func strtodBytes(_ text: UnsafeRawBufferPointer) -> Double {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: text.count + 1) { buffer in
            for k in 0..<text.count { buffer[k] = CChar(bitPattern: text[k]) }
            buffer[text.count] = 0
            return strtod(buffer.baseAddress!, nil)
        }
    }

    mutating func parseString() throws(FormatError) -> String {
        let open = index
        index += 1
        let start = index
        var ascii = true
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                index += 1
                if ascii { return String(decoding: slice, as: UTF8.self) }
                if let text = String(validating: slice, as: UTF8.self) { return text }
                throw invalidUTF8(in: slice, at: start)
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw syntax("control characters must be escaped inside strings") }
            if byte >= 0x80 { ascii = false }
            index += 1
        }
        if index >= bytes.count { throw syntax("the string that starts here is not closed", at: open) }
        // Slow path: decode escapes into a byte buffer, then validate it.
        var buffer = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while true {
            guard index < bytes.count else { throw syntax("the string that starts here is not closed", at: open) }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") { index += 1; break }
            if byte < 0x20 { throw syntax("control characters must be escaped inside strings") }
            if byte != UInt8(ascii: "\\") {
                buffer.append(byte)
                index += 1
                continue
            }
            index += 1
            guard let escape = peek() else { throw syntax("the string that starts here is not closed", at: open) }
            index += 1
            switch escape {
            case UInt8(ascii: "\""): buffer.append(0x22)
            case UInt8(ascii: "\\"): buffer.append(0x5C)
            case UInt8(ascii: "/"): buffer.append(0x2F)
            case UInt8(ascii: "b"): buffer.append(0x08)
            case UInt8(ascii: "f"): buffer.append(0x0C)
            case UInt8(ascii: "n"): buffer.append(0x0A)
            case UInt8(ascii: "r"): buffer.append(0x0D)
            case UInt8(ascii: "t"): buffer.append(0x09)
            case UInt8(ascii: "u"):
                let escapeStart = index - 2
                var scalar = UInt32(try hex4())
                if scalar >= 0xD800, scalar < 0xDC00 {
                    guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"),
                          bytes[index + 1] == UInt8(ascii: "u") else {
                        throw syntax("a high surrogate escape must be followed by a low surrogate escape", at: escapeStart)
                    }
                    index += 2
                    let low = UInt32(try hex4())
                    guard low >= 0xDC00, low < 0xE000 else {
                        throw syntax("a high surrogate escape must be followed by a low surrogate escape", at: escapeStart)
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00, scalar < 0xE000 {
                    throw syntax("lone low surrogate escape", at: escapeStart)
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw syntax("invalid \\u escape", at: escapeStart) }
                buffer.append(contentsOf: UTF8.encode(unicode)!)
            default:
                throw syntax("invalid escape sequence", at: index - 1)
            }
        }
        if let text = String(validating: buffer, as: UTF8.self) { return text }
        // Escapes only produce valid UTF-8, so the bad bytes are raw ones: find them in the file.
        let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<(index - 1)])
        throw invalidUTF8(in: slice, at: start)
    }

    private mutating func hex4() throws(FormatError) -> UInt16 {
        guard bytes.count - index >= 4 else { throw syntax("expected four hex digits after \\u") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw syntax("expected four hex digits after \\u")
            }
            value = value << 4 | UInt16(digit)
            index += 1
        }
        return value
    }

    private func invalidUTF8(in slice: UnsafeRawBufferPointer, at start: Int) -> FormatError {
        let bad = JSONParser.firstInvalidUTF8(slice) ?? 0
        return FormatError(.invalidUTF8, path: path, offset: baseOffset + start + bad,
                           message: "a JSON string contains bytes that are not valid UTF-8",
                           remedy: "the file is damaged or was written with another text encoding; regenerate or download it again")
    }

    /// The offset of the first byte that does not start or continue a well-formed UTF-8
    /// sequence (overlong forms, surrogates and values above U+10FFFF included), or nil.
    static func firstInvalidUTF8(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var i = 0
        let n = bytes.count
        func continuation(_ k: Int) -> Bool { k < n && bytes[k] & 0xC0 == 0x80 }
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; continue }
            if b0 >= 0xC2, b0 <= 0xDF {
                guard continuation(i + 1) else { return i }
                i += 2
            } else if b0 >= 0xE0, b0 <= 0xEF {
                guard continuation(i + 1), continuation(i + 2) else { return i }
                let b1 = bytes[i + 1]
                if b0 == 0xE0, b1 < 0xA0 { return i }
                if b0 == 0xED, b1 >= 0xA0 { return i }
                i += 3
            } else if b0 >= 0xF0, b0 <= 0xF4 {
                guard continuation(i + 1), continuation(i + 2), continuation(i + 3) else { return i }
                let b1 = bytes[i + 1]
                if b0 == 0xF0, b1 < 0x90 { return i }
                if b0 == 0xF4, b1 >= 0x90 { return i }
                i += 4
            } else {
                return i
            }
        }
        return nil
    }
}

// MARK: - Name table

/// An insert-only hash table from strings to positions (0, 1, 2, … in insertion order), several
/// times faster than `Dictionary<String, Int>` for the hundreds of thousands of names a large
/// header holds: a multiply-mix hash over 8-byte words of the UTF-8 bytes with a per-process
/// random seed (so crafted files cannot aim for collisions), and open addressing with linear
/// probing on a power-of-two table that keeps each slot's full hash.
struct NameTable: Sendable {
    private(set) var keys: [String] = []
    /// Each key's full hash, by position (read only when the table grows).
    private var hashes: [UInt64] = []
    /// Per slot: the high 32 bits of the key's hash, then position + 1 in the low 32 bits
    /// (0 = empty) — one array, so a probe touches one cache line.
    private var slots: [UInt64] = []
    private var mask = 0

    private static let seed = UInt64.random(in: 1...UInt64.max)

    init(expectedCount: Int = 0) {
        var capacity = 16
        while capacity < expectedCount * 2 { capacity <<= 1 }
        slots = [UInt64](repeating: 0, count: capacity)
        mask = capacity - 1
        keys.reserveCapacity(expectedCount)
        hashes.reserveCapacity(expectedCount)
    }

    var count: Int { keys.count }

    @inline(__always)
    static func hash(_ key: String) -> UInt64 {
        var key = key
        return key.withUTF8 { bytes in
            var h = seed ^ (UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15)
            var i = 0
            let raw = UnsafeRawBufferPointer(bytes)
            while i + 8 <= bytes.count {
                let word = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                h = (h ^ word) &* 0xBF58_476D_1CE4_E5B9
                h ^= h >> 31
                i += 8
            }
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < bytes.count {
                tail |= UInt64(bytes[i]) << shift
                shift += 8
                i += 1
            }
            h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
            h ^= h >> 29
            h = h &* 0xBF58_476D_1CE4_E5B9
            return h ^ (h >> 32)
        }
    }

    /// The position of `key`, if present.
    func position(of key: String) -> Int? {
        guard !keys.isEmpty else { return nil }
        let h = NameTable.hash(key)
        let tag = h & 0xFFFF_FFFF_0000_0000
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let stored = slots[slot]
            if stored == 0 { return nil }
            let position = Int(stored & 0xFFFF_FFFF) - 1
            if stored & 0xFFFF_FFFF_0000_0000 == tag, keys[position] == key { return position }
            slot = (slot + 1) & mask
        }
    }

    /// Adds `key` at the next position, or returns the position it already has (and adds nothing).
    mutating func insert(_ key: String) -> Int? {
        if (keys.count + 1) * 2 > slots.count { grow() }
        let h = NameTable.hash(key)
        let tag = h & 0xFFFF_FFFF_0000_0000
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let stored = slots[slot]
            if stored == 0 { break }
            let position = Int(stored & 0xFFFF_FFFF) - 1
            if stored & 0xFFFF_FFFF_0000_0000 == tag, keys[position] == key { return position }
            slot = (slot + 1) & mask
        }
        keys.append(key)
        hashes.append(h)
        slots[slot] = tag | UInt64(keys.count)
        return nil
    }

    /// Doubles the table.
    private mutating func grow() {
        let capacity = slots.count * 2
        var newSlots = [UInt64](repeating: 0, count: capacity)
        let newMask = capacity - 1
        for (position, h) in hashes.enumerated() {
            var slot = Int(truncatingIfNeeded: h) & newMask
            while newSlots[slot] != 0 { slot = (slot + 1) & newMask }
            newSlots[slot] = (h & 0xFFFF_FFFF_0000_0000) | UInt64(position + 1)
        }
        slots = newSlots
        mask = newMask
    }
}
