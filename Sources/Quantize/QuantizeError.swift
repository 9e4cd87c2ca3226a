import Formats

/// An error of the quantization kernels: what is wrong with which tensor, and what to do about it.
///
/// Every case carries the tensor name and the position or shape involved, so a message can point
/// at the exact weight. Tests and callers match on the case.
public enum QuantizeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A weight is NaN or infinite (refused unless ``QuantizeOptions/allowNonFinite`` is set).
    case nonFiniteWeight(tensor: String, row: Int, column: Int, value: Float)
    /// A scale does not fit its stored type (an FP16 GGUF scale or a BF16/F16 compressed-tensors
    /// scale overflowed to infinity); `row`/`column` locate the first element of its block or group.
    case scaleOutOfRange(tensor: String, row: Int, column: Int, scaleType: String)
    /// A finite weight does not fit the target float type (F16 holds at most 65504).
    case valueOutOfRange(tensor: String, row: Int, column: Int, value: Float, type: String)
    /// The row length is not a multiple of the block size the layout requires.
    case shapeNotDivisible(tensor: String, shape: [Int], blockSize: Int)
    /// The scheme cannot be stored with the requested granularity.
    case unsupportedGranularity(tensor: String, scheme: SchemeName, granularity: Granularity)
    /// A shape, buffer size or row range does not match what the layout needs.
    case invalidShape(tensor: String, shape: [Int], expected: String)
    /// The tensors given for decoding do not form a layout this module can read.
    case unsupportedLayout(tensor: String, found: String)
    /// The importance (imatrix) values given for a tensor are not one per column per expert:
    /// `expected` = columns × experts, `found` = the count given.
    case importanceSizeMismatch(tensor: String, expected: Int, found: Int)
    /// An importance (imatrix) value is NaN or infinite; `expert` is 0 for a 2-D tensor.
    case nonFiniteImportance(tensor: String, expert: Int, column: Int, value: Float)
    /// An importance matrix was given for a scheme that has no importance-weighted quantizer
    /// (the safetensors schemes fp8, int8, int4).
    case importanceNotApplicable(tensor: String, scheme: SchemeName)

    /// A sentence saying what is wrong, where, and what to do (names longer than
    /// ``DisplayText/nameLimit`` shortened).
    public var description: String { DisplayText.shorteningLongWords(fullDescription) }

    private var fullDescription: String {
        switch self {
        case let .nonFiniteWeight(tensor, row, column, value):
            return "tensor '\(tensor)' holds \(value) at [\(row), \(column)]; quantizing it would write a silently broken file. Fix the checkpoint, or pass --allow-non-finite to map NaN to 0 and ±inf to the row's largest finite magnitude"
        case let .scaleOutOfRange(tensor, row, column, scaleType):
            return "tensor '\(tensor)': the scale of the block at [\(row), \(column)] overflows \(scaleType); the weights there are too large for this scheme. Use F32 scales or a scheme with FP32 scales (fp8, int8 with F32 scales)"
        case let .valueOutOfRange(tensor, row, column, value, type):
            return "tensor '\(tensor)': the weight \(value) at [\(row), \(column)] is outside the finite range of \(type); use bf16 or a quantized scheme, or pass --allow-non-finite to store it as infinity"
        case let .shapeNotDivisible(tensor, shape, blockSize):
            return "tensor '\(tensor)' has shape \(shape) but its rows must be a multiple of \(blockSize) elements for this type; leave the tensor unquantized or choose a type with a smaller block"
        case let .unsupportedGranularity(tensor, scheme, granularity):
            return "tensor '\(tensor)': scheme \(scheme.rawValue) cannot be stored with granularity \(granularity); use one of the granularities listed in formats/quantize-\(scheme.family.rawValue).md"
        case let .invalidShape(tensor, shape, expected):
            return "tensor '\(tensor)' with shape \(shape): expected \(expected)"
        case let .unsupportedLayout(tensor, found):
            return "tensor '\(tensor)': cannot decode \(found); supported layouts are listed in formats/quantize-*.md"
        case let .importanceSizeMismatch(tensor, expected, found):
            return "tensor '\(tensor)': the importance matrix has \(found) values for it, but it needs \(expected) (one per input column, per expert); the imatrix was made for a different model. Recompute it for this model with `quantize imatrix`"
        case let .nonFiniteImportance(tensor, expert, column, value):
            return "tensor '\(tensor)': the importance matrix holds \(value) at column \(column)\(expert > 0 ? " of expert \(expert)" : ""); the imatrix file is corrupt. Recompute it with `quantize imatrix`"
        case let .importanceNotApplicable(tensor, scheme):
            return "tensor '\(tensor)': scheme \(scheme.rawValue) has no importance-weighted quantizer; an importance matrix applies to the GGUF types q2_k…q6_k, iq4_nl, iq4_xs and q4_0…q5_1 (q8_0, f16 and bf16 ignore it, as llama-quantize does). Drop --imatrix or choose one of those types"
        }
    }
}

/// An error in what a quantize run was asked to do (before or around the kernels): the
/// combination of input, scheme and options cannot work, and the message says what would.
public struct QuantizeJobError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A stable identifier of the failure, for tests and scripts.
    public enum Code: String, Sendable {
        /// The scheme writes a different container than the input is (HF safetensors vs GGUF).
        case unsupportedConversion
        /// The output exists and `--force` was not given.
        case outputExists
        /// The output would overwrite the input.
        case outputIsInput
        /// A file output's name lacks its container's extension.
        case invalidOutputName
        /// `--force` would replace something quantize did not write.
        case outputNotOurs
        /// A `--only`/`--skip` pattern matched no tensor.
        case patternMatchedNothing
        /// Nothing would be quantized.
        case nothingToQuantize
        /// The written output failed its post-write check.
        case outputCheckFailed
        /// A tensor failed the accuracy threshold and `--strict` was given.
        case accuracyCheckFailed
        /// Activations given for the check do not fit.
        case invalidActivations
        /// `verify` was given a quantized checkpoint as the original (arguments swapped).
        case originalIsQuantized
    }

    /// What went wrong.
    public var code: Code
    /// The sentence for the user: what is wrong and what to do.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message, with names longer than ``DisplayText/nameLimit`` shortened.
    public var description: String { DisplayText.shorteningLongWords(message) }
}
