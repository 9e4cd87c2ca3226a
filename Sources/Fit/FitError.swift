import Formats

/// An error of the Fit module: a request the planner cannot answer, a name the catalogs do not
/// know, or a catalog or table that does not hold what it must.
///
/// The shape of ``FormatError`` (a stable ``Code`` that tests and callers match on, the thing it is
/// about, and two sentences for a person), so that both read the same on the command line. Errors
/// in reading a model's files (config.json, GGUF metadata) stay ``FormatError``s: they are about
/// the bytes of a file.
public struct FitError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure this is.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// A hardware name is not in the catalog (the message lists the known names).
        case unknownHardware
        /// A model name is neither a path nor a preset (the message lists the presets).
        case unknownModel
        /// A hardware catalog, engine table or preset table is missing a field or holds a bad value.
        case invalidCatalog
        /// A request to the planner is inconsistent (zero devices, a context longer than the
        /// model's, an unknown engine or variant, an option value out of range).
        case invalidRequest
        /// A table shipped with the tool or named by the user cannot be read.
        case unreadable
        /// A size computed from the model overflows 64-bit arithmetic.
        case overflow
    }

    /// What kind of failure this is.
    public var code: Code
    /// The file, name or option the failure is about.
    public var path: String
    /// The catalog entry or link the failure is about, when there is one.
    public var entry: String?
    /// What is wrong, as a sentence without the location.
    public var message: String
    /// What the user can do about it.
    public var remedy: String?

    /// Creates an error.
    public init(_ code: Code, path: String, entry: String? = nil, message: String, remedy: String? = nil) {
        self.code = code
        self.path = path
        self.entry = entry
        self.message = message
        self.remedy = remedy
    }

    /// The full sentence: `path (tensor 'x'): message; remedy`, as ``FormatError`` words it.
    public var description: String {
        var text = path
        if let entry { text += " (tensor '\(entry)')" }
        text += ": " + message
        if let remedy, !remedy.isEmpty { text += "; " + remedy }
        return text
    }
}

extension FormatError.Code {
    /// A model name is neither a path nor a preset (the message lists the presets).
    public static let unknownModel: Self = "unknownModel"
    /// A preset table or config.json is missing a field or holds a bad value.
    public static let invalidCatalog: Self = "invalidCatalog"
    /// A config.json or GGUF metadata lacks a field the model shape needs, or holds a bad value.
    public static let invalidModelConfig: Self = "invalidModelConfig"
}
