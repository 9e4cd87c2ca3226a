import Foundation
import Testing
import TestSupport
@testable import Formats

/// A malformed JSON text and where the parser must say the problem is.
struct BadJSON: CustomTestStringConvertible, Sendable {
    let bytes: [UInt8]
    let code: FormatError.Code
    let offset: Int
    let phrase: String
    var testDescription: String { String(decoding: bytes, as: UTF8.self).debugDescription }

    init(_ text: String, _ code: FormatError.Code, at offset: Int, _ phrase: String) {
        self.init(Array(text.utf8), code, at: offset, phrase)
    }

    init(_ bytes: [UInt8], _ code: FormatError.Code, at offset: Int, _ phrase: String) {
        self.bytes = bytes
        self.code = code
        self.offset = offset
        self.phrase = phrase
    }

    static let all: [BadJSON] = [
        BadJSON("", .invalidJSON, at: 0, "expected a value"),
        BadJSON("  ", .invalidJSON, at: 2, "expected a value"),
        BadJSON("{\"a\":1,\"a\":2}", .duplicateKey, at: 7, "\"a\" appears twice"),
        BadJSON("[1,2]x", .invalidJSON, at: 5, "after the end"),
        BadJSON("[01]", .invalidJSON, at: 2, "leading zeros"),
        BadJSON("{\"a\" 1}", .invalidJSON, at: 5, "expected ':'"),
        BadJSON("{\"a\":1,}", .invalidJSON, at: 7, "expected a string key"),
        BadJSON("[1,]", .invalidJSON, at: 3, "expected a value"),
        BadJSON("[1 2]", .invalidJSON, at: 3, "expected ',' or ']'"),
        BadJSON("{\"a\":tru}", .invalidJSON, at: 8, "expected 'true'"),
        BadJSON("\"abc", .invalidJSON, at: 0, "not closed"),
        BadJSON("\"\\ud800\"", .invalidJSON, at: 1, "surrogate"),
        BadJSON("\"\\udc00\"", .invalidJSON, at: 1, "lone low surrogate"),
        BadJSON("\"\\x\"", .invalidJSON, at: 2, "invalid escape"),
        BadJSON("\"\\u12g4\"", .invalidJSON, at: 5, "four hex digits"),
        BadJSON([0x22, 0x61, 0x01, 0x22], .invalidJSON, at: 2, "control characters"),
        BadJSON([0x22, 0x61, 0xC3, 0x28, 0x22], .invalidUTF8, at: 2, "UTF-8"),
        BadJSON([0x22, 0xC0, 0xAF, 0x22], .invalidUTF8, at: 1, "UTF-8"),
        BadJSON([0x22, 0x5C, 0x6E, 0xED, 0xA0, 0x80, 0x22], .invalidUTF8, at: 3, "UTF-8"),
        BadJSON([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], .invalidUTF8, at: 1, "UTF-8"),
        BadJSON([0x5B, 0xFF, 0x5D], .invalidJSON, at: 1, "expected a value"),
        BadJSON("NaN", .invalidJSON, at: 0, "expected a value"),
        BadJSON("-", .invalidJSON, at: 1, "expected a digit"),
        BadJSON("1.", .invalidJSON, at: 2, "decimal point"),
        BadJSON("1e+", .invalidJSON, at: 3, "exponent"),
        BadJSON("+1", .invalidJSON, at: 0, "expected a value"),
        BadJSON(String(repeating: "[", count: 129) + String(repeating: "]", count: 129), .invalidJSON, at: 128, "nested more than 128"),
        BadJSON("{" + (0..<40).map { "\"k\($0)\":\($0)," }.joined() + "\"k7\":0}", .duplicateKey, at: 1 + (0..<40).map { "\"k\($0)\":\($0),".utf8.count }.reduce(0, +), "\"k7\""),
    ]
}

@Suite("Strict JSON")
struct SafetensorsJSONTests {
    @Test("parses every value type and keeps object members in order")
    func parsesValuesInOrder() throws {
        let value = try JSONValue.parse(" {\"z\": [1, -2.5, true, false, null], \"a\": {\"nested\": \"x\"}, \"m\": \"\"} \n")
        #expect(value.object?.map(\.key) == ["z", "a", "m"])
        #expect(value["z"]?[0]?.int == 1)
        #expect(value["z"]?[1]?.double == -2.5)
        #expect(value["z"]?[1]?.int == nil)
        #expect(value["z"]?[2]?.bool == true)
        #expect(value["z"]?[4]?.isNull == true)
        #expect(value["a"]?["nested"]?.string == "x")
        #expect(value["m"]?.string == "")
        #expect(value["missing"] == nil)
        let literal: JSONValue = ["z": [1, -2.5, true, false, nil], "a": ["nested": "x"], "m": ""]
        #expect(value == literal)
    }

    @Test("integers are exact up to Int64; fractions, exponents and larger integers are not sizes")
    func integersAreExact() throws {
        #expect(try JSONValue.parse("9223372036854775807").int == Int.max)
        #expect(try JSONValue.parse("-9223372036854775808").int == Int.min)
        #expect(try JSONValue.parse("281474976710655").int == 281_474_976_710_655)
        let tooBig = try JSONValue.parse("9223372036854775808")
        #expect(tooBig.int == nil)
        guard case .number(let number) = tooBig else { Issue.record("not a number"); return }
        #expect(number.isIntegerLiteral && number.double == 9_223_372_036_854_775_808.0)
        #expect(try JSONValue.parse("4.0").int == nil)
        #expect(try JSONValue.parse("1e3").int == nil)
        #expect(try JSONValue.parse("1e3").double == 1000)
        #expect(try JSONValue.parse("-0").int == 0)
        #expect(try JSONValue.parse("0.1").double == 0.1)
        #expect(try JSONValue.parse("2.2250738585072014e-308").double == 2.2250738585072014e-308)
    }

    @Test("decodes escapes including surrogate pairs")
    func decodesEscapes() throws {
        let value = try JSONValue.parse(#""\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 é""#)
        #expect(value.string == "\"\\/\u{8}\u{c}\n\r\té😀 é")
    }

    @Test("nesting up to 128 levels is accepted")
    func acceptsMaximumDepth() throws {
        let text = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(throws: Never.self) { _ = try JSONValue.parse(text) }
    }

    @Test("malformed JSON fails with its code at the right byte offset", arguments: BadJSON.all)
    func rejectsMalformed(_ item: BadJSON) {
        let error = #expect(throws: FormatError.self) { _ = try JSONValue.parse(item.bytes, path: "t.json") }
        #expect(error?.code == item.code)
        #expect(error?.offset == item.offset, "\(error?.description ?? "")")
        #expect(error?.message.contains(item.phrase) == true, "\(error?.description ?? "")")
    }

    @Test("large objects keep every distinct key and still catch a late duplicate")
    func largeObjects() throws {
        let keys = (0..<5000).map { "model.layers.\($0 / 7).weight_\($0)" }
        let text = "{" + keys.enumerated().map { "\"\($0.element)\":\($0.offset)" }.joined(separator: ",") + "}"
        let value = try JSONValue.parse(text)
        #expect(value.object?.map(\.key) == keys)
        #expect(value["model.layers.714.weight_4999"]?.int == 4999)
        var table = NameTable()
        for key in keys { #expect(table.insert(key) == nil) }
        #expect(table.insert(keys[1234]) == 1234)
        #expect(table.position(of: keys[4321]) == 4321)
        #expect(table.position(of: "absent") == nil)
        let duplicated = String(text.dropLast()) + ",\"\(keys[17])\":0}"
        let error = #expect(throws: FormatError.self) { _ = try JSONValue.parse(duplicated) }
        #expect(error?.code == .duplicateKey)
        #expect(error?.offset == text.utf8.count)
    }

    @Test("a JSON file that is empty or a Git LFS pointer is named as such")
    func fileLevelChecks() throws {
        let directory = try Fixtures.temporaryDirectory("json-file")
        defer { try? FileManager.default.removeItem(at: directory) }
        let empty = directory.appendingPathComponent("empty.json").path
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        #expect(throws: FormatError.self) { _ = try JSONValue.parse(contentsOf: empty) }
        let pointer = directory.appendingPathComponent("index.json").path
        #expect(FileManager.default.createFile(atPath: pointer, contents: Data("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 42\n".utf8)))
        let error = #expect(throws: FormatError.self) { _ = try JSONValue.parse(contentsOf: pointer) }
        #expect(error?.code == .gitLFSPointer)
        let config = directory.appendingPathComponent("config.json").path
        #expect(FileManager.default.createFile(atPath: config, contents: Data("{\"hidden_size\": 4096, \"rope_theta\": 1e6}\n".utf8)))
        let value = try JSONValue.parse(contentsOf: config)
        #expect(value["hidden_size"]?.int == 4096 && value["rope_theta"]?.double == 1e6)
    }

    @Test("error offsets are file offsets when the text is part of a file")
    func offsetsIncludeBase() throws {
        let bytes = Array("[1,,2]".utf8)
        let error = bytes.withUnsafeBytes { raw in
            #expect(throws: FormatError.self) { _ = try JSONValue.parse(raw, path: "x", baseOffset: 8) }
        }
        #expect(error?.offset == 11)
    }

    @Test("compact output is serde_json's: no whitespace, UTF-8 kept, control characters escaped")
    func compactSerialization() throws {
        let value: JSONValue = ["b": [1, 2.5, "x\"\\\u{1}\n\u{7f}é"], "a": nil, "c": [:], "d": []]
        let text = value.serializedString()
        #expect(text == #"{"b":[1,2.5,"x\"\\\u0001\n"# + "\u{7f}é\"],\"a\":null,\"c\":{},\"d\":[]}")
        #expect(try JSONValue.parse(text) == value)
    }

    @Test("indented output equals Python's json.dumps(indent=2, sort_keys=True) byte for byte")
    func pythonIndentedMatchesPython() throws {
        let value: JSONValue = [
            "zeta": [1e-05, 0.0001, 1e16, 1e15, 123.456, -0.0, .number(JSONNumber(Double.leastNonzeroMagnitude)), 1.7976931348623157e308, 0.1, 2.5e-7, 100.0, 1e22, 3.0e-5],
            "alpha": ["ünïcode €": "😀 é \u{1} \u{7f} \t \"q\" \\", "Zed": true, "a": false, "b": nil],
            "ints": [0, -1, 9_223_372_036_854_775_807, -9_223_372_036_854_775_808],
            "empty": ["list": [], "object": [:]],
            "B": "upper sorts first",
        ]
        let directory = try Fixtures.temporaryDirectory("json")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("doc.json").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(value.serialized())))
        let python = String(decoding: try runOracle(["--dumps-indented", path]), as: UTF8.self)
        #expect(value.serializedString(.pythonIndented) == python)
    }
}
