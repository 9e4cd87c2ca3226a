import Foundation

/// An error in a file the tool reads or writes: what is wrong, where, and what to do about it.
///
/// One type for the whole module, in the shape swift-nio's `FileSystemError` uses: a stable
/// ``Code`` that tests and callers match on, plus the context (file, byte offset, tensor) and two
/// sentences for a person. Every parser in this module throws only this type.
public struct FormatError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A stable identifier of the kind of failure. Extensible: each format adds its codes in an
    /// extension next to the code that throws them.
    public struct Code: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
        /// The identifier, in lowerCamelCase (for example `truncated`).
        public let rawValue: String
        /// Creates a code from its identifier.
        public init(_ rawValue: String) { self.rawValue = rawValue }
        /// Creates a code from a string literal.
        public init(stringLiteral value: String) { self.rawValue = value }
        /// The identifier.
        public var description: String { rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// The file (or directory) the failure is about.
    public var path: String
    /// The byte offset in `path` where the problem was found, when there is one.
    public var offset: Int?
    /// The tensor the problem concerns, when there is one.
    public var tensor: String?
    /// What is wrong, as a sentence without the location.
    public var message: String
    /// What the user can do about it.
    public var remedy: String?

    /// Creates an error.
    public init(
        _ code: Code, path: String, offset: Int? = nil, tensor: String? = nil, message: String,
        remedy: String? = nil
    ) {
        self.code = code
        self.path = path
        self.offset = offset
        self.tensor = tensor
        self.message = message
        self.remedy = remedy
    }

    /// The full sentence: `path (at byte N, tensor 'x'): message. remedy`, with names longer than
    /// ``DisplayText/nameLimit`` shortened and message and remedy at most about
    /// ``DisplayText/sentenceLimit`` characters each.
    public var description: String {
        var location: [String] = []
        if let offset { location.append("at byte \(offset)") }
        if let tensor { location.append("tensor '\(DisplayText.shortened(tensor))'") }
        var text = path
        if !location.isEmpty { text += " (" + location.joined(separator: ", ") + ")" }
        text += ": " + DisplayText.sentence(message)
        if let remedy, !remedy.isEmpty { text += "; " + DisplayText.sentence(remedy) }
        return text
    }
}

extension FormatError.Code {
    /// The file could not be opened, mapped or read.
    public static let io: Self = "io"
    /// The file ends before a structure it declares.
    public static let truncated: Self = "truncated"
    /// The file is a Git LFS pointer, not the weights.
    public static let gitLFSPointer: Self = "gitLFSPointer"
    /// The file is not of the expected format at all (wrong magic, not JSON, empty).
    public static let notThisFormat: Self = "notThisFormat"
    /// A size computed from the file overflows 64-bit arithmetic.
    public static let overflow: Self = "overflow"
    /// A length or count in the file is larger than any real file could need.
    public static let implausibleSize: Self = "implausibleSize"
    /// Text in the file is not valid UTF-8.
    public static let invalidUTF8: Self = "invalidUTF8"
    /// An output could not be written.
    public static let writeFailed: Self = "writeFailed"
    /// An argument given to a writer is inconsistent (sizes, names, dtypes).
    public static let invalidArgument: Self = "invalidArgument"
}

/// Human-readable byte counts for error messages ("52.0 MB", "9.40 GB").
@usableFromInline
func formatByteCount(_ bytes: Int) -> String {
    let value = Double(bytes)
    switch bytes {
    case ..<1_000: return "\(bytes) bytes"
    case ..<1_000_000: return String(format: "%.1f kB", value / 1e3)
    case ..<1_000_000_000: return String(format: "%.1f MB", value / 1e6)
    default: return String(format: "%.2f GB", value / 1e9)
    }
}
