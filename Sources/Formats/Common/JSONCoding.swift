import Foundation

// Codable on top of JSONValue, so that every JSON document the tool reads or writes — Codable
// reports and catalogs as well as hand-built ones — goes through one parser and one serializer
// (one spacing, one number format, one set of error messages).

extension JSONStyle {
    /// The style of every JSON document a command prints or writes for people and scripts
    /// (`--json`, reports): two-space indentation, `"key": value`, UTF-8 as is, keys in the
    /// order the document gives them.
    public static let document = JSONStyle(indent: 2, sortKeys: false, escapeNonASCII: false)
}

/// Encodes `Encodable` values to ``JSONValue``.
///
/// Integers stay exact; `Double`/`Float` become ``JSONNumber`` doubles written the way Python's
/// `repr` writes them, except whole numbers below 2^53, which are written as integers; optionals encoded with `encode` become `null` and with `encodeIfPresent`
/// are left out. Non-finite numbers throw, as JSON has none.
public struct JSONValueEncoder {
    /// Whether object keys are sorted by code point (on by default, so documents do not depend on
    /// declaration order).
    public var sortsKeys: Bool

    /// Creates an encoder.
    public init(sortsKeys: Bool = true) { self.sortsKeys = sortsKeys }

    /// The value as a JSON document.
    public func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        let encoder = ValueEncoder(codingPath: [])
        try value.encode(to: encoder)
        return encoder.box.value(sortsKeys: sortsKeys)
    }

    /// The value serialized in `style` (``JSONStyle/document`` by default).
    public func encodeBytes<T: Encodable>(_ value: T, style: JSONStyle = .document) throws -> [UInt8] {
        try encode(value).serialized(style)
    }
}

/// Decodes `Decodable` values from ``JSONValue`` (or JSON text, parsed by ``JSONValue/parse(_:path:)``).
///
/// Integers decode from integer literals (or doubles that are whole numbers), floating-point
/// types from any number; a missing key or a `null` decodes as nil for optionals.
public struct JSONValueDecoder {
    /// Creates a decoder.
    public init() {}

    /// Decodes a value from a parsed document.
    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try T(from: ValueDecoder(value: value, codingPath: []))
    }

    /// Parses `bytes` (errors name `path`) and decodes a value.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], path: String = "<json>") throws -> T {
        try decode(type, from: try JSONValue.parse(bytes, path: path))
    }
}

// MARK: - Encoding

private final class Box {
    enum Kind { case value(JSONValue), object, array }
    var kind: Kind = .value(.null)
    var members: [(String, Box)] = []
    var elements: [Box] = []

    func value(sortsKeys: Bool) -> JSONValue {
        switch kind {
        case .value(let value): return value
        case .array: return .array(elements.map { $0.value(sortsKeys: sortsKeys) })
        case .object:
            var list = members
            if sortsKeys { list.sort { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) } }
            return .object(list.map { JSONMember($0.0, $0.1.value(sortsKeys: sortsKeys)) })
        }
    }

    func makeObject() { if case .object = kind {} else { kind = .object; members = [] } }
    func makeArray() { if case .array = kind {} else { kind = .array; elements = [] } }

    func member(_ key: String) -> Box {
        if let existing = members.first(where: { $0.0 == key }) { return existing.1 }
        let box = Box()
        members.append((key, box))
        return box
    }
}

private struct IndexKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ index: Int) { stringValue = "Index \(index)"; intValue = index }
    init?(stringValue: String) { self.stringValue = stringValue; intValue = nil }
    init?(intValue: Int) { self.init(intValue) }
}

private func number<T: BinaryFloatingPoint>(_ value: T, _ path: [CodingKey]) throws -> JSONValue {
    let double = Double(value)
    guard double.isFinite else {
        throw EncodingError.invalidValue(double, EncodingError.Context(codingPath: path, debugDescription: "JSON has no NaN or infinity"))
    }
    // Whole numbers print as integers (byte counts are computed in Double), as Foundation's
    // JSONEncoder has always written them here; within 2^53 the integer is exact.
    if double.rounded(.towardZero) == double, abs(double) < 9_007_199_254_740_992 { return .number(JSONNumber(Int(double))) }
    return .number(JSONNumber(double))
}

private func integer<T: BinaryInteger>(_ value: T, _ path: [CodingKey]) throws -> JSONValue {
    guard let exact = Int(exactly: value) else {
        throw EncodingError.invalidValue(value, EncodingError.Context(codingPath: path, debugDescription: "the integer does not fit 64 bits"))
    }
    return .number(JSONNumber(exact))
}

/// Encodes scalars directly and everything else through a nested encoder.
private func encodeAny<T: Encodable>(_ value: T, into box: Box, path: [CodingKey]) throws {
    switch value {
    case let v as String: box.kind = .value(.string(v))
    case let v as Bool: box.kind = .value(.bool(v))
    case let v as Double: box.kind = .value(try number(v, path))
    case let v as Float: box.kind = .value(try number(v, path))
    case let v as Int: box.kind = .value(.number(JSONNumber(v)))
    case let v as any BinaryInteger: box.kind = .value(try integer(v, path))
    case let v as JSONValue: box.kind = .value(v)
    default: try value.encode(to: ValueEncoder(box: box, codingPath: path))
    }
}

private final class ValueEncoder: Encoder {
    let box: Box
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(box: Box = Box(), codingPath: [CodingKey]) {
        self.box = box
        self.codingPath = codingPath
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        box.makeObject()
        return KeyedEncodingContainer(KeyedEncoder<Key>(box: box, codingPath: codingPath))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer {
        box.makeArray()
        return UnkeyedEncoder(box: box, codingPath: codingPath)
    }

    func singleValueContainer() -> SingleValueEncodingContainer { SingleEncoder(box: box, codingPath: codingPath) }
}

private struct KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let box: Box
    let codingPath: [CodingKey]

    mutating func encodeNil(forKey key: Key) throws { box.member(key.stringValue).kind = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encodeAny(value, into: box.member(key.stringValue), path: codingPath + [key])
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let child = box.member(key.stringValue)
        child.makeObject()
        return KeyedEncodingContainer(KeyedEncoder<NestedKey>(box: child, codingPath: codingPath + [key]))
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        let child = box.member(key.stringValue)
        child.makeArray()
        return UnkeyedEncoder(box: child, codingPath: codingPath + [key])
    }
    mutating func superEncoder() -> Encoder { ValueEncoder(box: box.member("super"), codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> Encoder { ValueEncoder(box: box.member(key.stringValue), codingPath: codingPath + [key]) }
}

private struct UnkeyedEncoder: UnkeyedEncodingContainer {
    let box: Box
    let codingPath: [CodingKey]
    var count: Int { box.elements.count }

    private func next() -> Box {
        let child = Box()
        box.elements.append(child)
        return child
    }
    mutating func encodeNil() throws { next().kind = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = codingPath + [IndexKey(count)]
        try encodeAny(value, into: next(), path: path)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = codingPath + [IndexKey(count)]
        let child = next()
        child.makeObject()
        return KeyedEncodingContainer(KeyedEncoder<NestedKey>(box: child, codingPath: path))
    }
    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
        let path = codingPath + [IndexKey(count)]
        let child = next()
        child.makeArray()
        return UnkeyedEncoder(box: child, codingPath: path)
    }
    mutating func superEncoder() -> Encoder { ValueEncoder(box: next(), codingPath: codingPath) }
}

private struct SingleEncoder: SingleValueEncodingContainer {
    let box: Box
    let codingPath: [CodingKey]

    mutating func encodeNil() throws { box.kind = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws { try encodeAny(value, into: box, path: codingPath) }
}

// MARK: - Decoding

private func mismatch(_ type: Any.Type, _ value: JSONValue, _ path: [CodingKey]) -> DecodingError {
    .typeMismatch(type, DecodingError.Context(codingPath: path, debugDescription: "expected \(type), found \(value.kindDescription)"))
}

private func decodeScalar<T: Decodable>(_ type: T.Type, from value: JSONValue, path: [CodingKey]) throws -> T {
    switch type {
    case is String.Type:
        guard let string = value.string else { throw mismatch(type, value, path) }
        return string as! T
    case is Bool.Type:
        guard let bool = value.bool else { throw mismatch(type, value, path) }
        return bool as! T
    case is Double.Type:
        guard let double = value.double else { throw mismatch(type, value, path) }
        return double as! T
    case is Float.Type:
        guard let double = value.double else { throw mismatch(type, value, path) }
        return Float(double) as! T
    case is JSONValue.Type:
        return value as! T
    case let integerType as any (BinaryInteger & Decodable).Type:
        guard case .number(let number) = value else { throw mismatch(type, value, path) }
        let exact: Int? = number.int ?? (number.double.rounded(.towardZero) == number.double && abs(number.double) < 9.0e15 ? Int(number.double) : nil)
        guard let exact, let converted = integerType.init(exactly: exact) else {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: path, debugDescription: "\(number) is not a whole number that fits \(type)"))
        }
        return converted as! T
    default:
        return try T(from: ValueDecoder(value: value, codingPath: path))
    }
}

private struct ValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch([String: Any].self, value, codingPath) }
        return KeyedDecodingContainer(KeyedDecoder<Key>(members: members, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .array(let elements) = value else { throw mismatch([Any].self, value, codingPath) }
        return UnkeyedDecoder(elements: elements, codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { SingleDecoder(value: value, codingPath: codingPath) }
}

private struct KeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [JSONMember]
    let codingPath: [CodingKey]

    var allKeys: [Key] { members.compactMap { Key(stringValue: $0.key) } }
    func contains(_ key: Key) -> Bool { members.contains { $0.key == key.stringValue } }

    private func value(_ key: Key) throws -> JSONValue {
        guard let member = members.first(where: { $0.key == key.stringValue }) else {
            throw DecodingError.keyNotFound(key, DecodingError.Context(codingPath: codingPath, debugDescription: "no value for the key \"\(key.stringValue)\""))
        }
        return member.value
    }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key).isNull }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decodeScalar(type, from: try value(key), path: codingPath + [key])
    }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let member = members.first(where: { $0.key == key.stringValue }), !member.value.isNull else { return nil }
        return try decodeScalar(type, from: member.value, path: codingPath + [key])
    }
    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try ValueDecoder(value: try value(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try ValueDecoder(value: try value(key), codingPath: codingPath + [key]).unkeyedContainer()
    }
    func superDecoder() throws -> Decoder {
        ValueDecoder(value: members.first { $0.key == "super" }?.value ?? .null, codingPath: codingPath)
    }
    func superDecoder(forKey key: Key) throws -> Decoder { ValueDecoder(value: try value(key), codingPath: codingPath + [key]) }
}

private struct UnkeyedDecoder: UnkeyedDecodingContainer {
    let elements: [JSONValue]
    let codingPath: [CodingKey]
    var currentIndex = 0
    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    init(elements: [JSONValue], codingPath: [CodingKey]) {
        self.elements = elements
        self.codingPath = codingPath
    }

    private mutating func next(_ type: Any.Type) throws -> (JSONValue, [CodingKey]) {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, DecodingError.Context(codingPath: codingPath + [IndexKey(currentIndex)],
                                                                           debugDescription: "the array has only \(elements.count) elements"))
        }
        defer { currentIndex += 1 }
        return (elements[currentIndex], codingPath + [IndexKey(currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, elements[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (value, path) = try next(type)
        return try decodeScalar(type, from: value, path: path)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (value, path) = try next([String: Any].self)
        return try ValueDecoder(value: value, codingPath: path).container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        let (value, path) = try next([Any].self)
        return try ValueDecoder(value: value, codingPath: path).unkeyedContainer()
    }
    mutating func superDecoder() throws -> Decoder {
        let (value, path) = try next(Any.self)
        return ValueDecoder(value: value, codingPath: path)
    }
}

private struct SingleDecoder: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [CodingKey]

    func decodeNil() -> Bool { value.isNull }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeScalar(type, from: value, path: codingPath) }
}

extension JSONValue: Codable {
    /// Decodes any JSON value (through ``JSONValueDecoder`` it is the value itself).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null; return }
        if let bool = try? container.decode(Bool.self) { self = .bool(bool); return }
        if let int = try? container.decode(Int.self) { self = .number(JSONNumber(int)); return }
        if let double = try? container.decode(Double.self) { self = .number(JSONNumber(double)); return }
        if let string = try? container.decode(String.self) { self = .string(string); return }
        if let array = try? container.decode([JSONValue].self) { self = .array(array); return }
        let object = try container.decode([String: JSONValue].self)
        self = .object(object.keys.sorted().map { JSONMember($0, object[$0]!) })
    }

    /// Encodes the value (through ``JSONValueEncoder`` it is inserted as it is).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let number): if let int = number.int { try container.encode(int) } else { try container.encode(number.double) }
        case .string(let value): try container.encode(value)
        case .array(let elements): try container.encode(elements)
        case .object(let members):
            var object: [String: JSONValue] = [:]
            for member in members { object[member.key] = member.value }
            try container.encode(object)
        }
    }
}
