import ArgumentParser
import Fit
import Foundation
import Formats
import Quantize

// The closed sets of values the options take, as the argument parser's own types: a value outside
// the set is refused before any work starts, with the list of valid values in the message and in
// `--help`.

extension SchemeName: ExpressibleByArgument {}

/// What `--to` names: a scheme (`fp8`, `int4`, `q8_0`, `q4_k`, …) or a llama.cpp mixture
/// (`q4_k_m`, …). `q2_k`, `q6_k` and `iq4_xs` are both a GGUF type and a llama-quantize mixture of
/// that name; they mean the mixture, as in llama-quantize (`--pure` gives every tensor the type).
enum QuantizeTarget: ExpressibleByArgument, Equatable {
    case scheme(SchemeName)
    case mixture(MixtureName)

    init?(argument: String) {
        if let mixture = MixtureName(rawValue: argument.lowercased()) { self = .mixture(mixture); return }
        guard let scheme = SchemeName(rawValue: argument) ?? SchemeName(rawValue: argument.lowercased()) else { return nil }
        self = .scheme(scheme)
    }

    static var allValueStrings: [String] {
        var names = SchemeName.allCases.map(\.rawValue)
        for mixture in MixtureName.allCases where !names.contains(mixture.rawValue) { names.append(mixture.rawValue) }
        return names
    }

    /// The scheme written: the named one, or the mixture's default type.
    var schemeName: SchemeName {
        switch self {
        case .scheme(let name): return name
        case .mixture(let mixture):
            guard let name = SchemeDescriptor.writing(mixture.descriptor.defaultType)?.name else { preconditionFailure("mixture default without a scheme") }
            return name
        }
    }

    /// The mixture, if one is named.
    var mixture: MixtureDescriptor? {
        if case .mixture(let mixture) = self { return mixture.descriptor }
        return nil
    }

    /// The name as written in messages and JSON (`q4_k_m`, `fp8`).
    var name: String {
        switch self {
        case .scheme(let name): return name.rawValue
        case .mixture(let mixture): return mixture.rawValue
        }
    }
}

extension GranularityRequest: ExpressibleByArgument {}

/// The stored type of int8/int4 scales (`--scale-dtype`).
enum ScaleDTypeOption: String, CaseIterable, ExpressibleByArgument {
    case bf16, f16, f32

    /// The safetensors dtype.
    var dtype: DType {
        switch self {
        case .bf16: return .bf16
        case .f16: return .f16
        case .f32: return .f32
        }
    }
}

/// The int8 layout (`--int8-layout`).
enum Int8LayoutOption: String, CaseIterable, ExpressibleByArgument {
    /// compressed-tensors `pack-quantized`: four codes per int32 word (vLLM's W8A16 layout).
    case packQuantized = "pack-quantized"
    /// compressed-tensors `int-quantized`: I8 weights.
    case intQuantized = "int-quantized"
}

extension KVCacheType: ExpressibleByArgument {
    /// The type named `argument`, aliases (`f16`, `auto`, `fp8_e4m3` …) included.
    public init?(argument: String) { self.init(name: argument) }
}

extension OffloadMode: ExpressibleByArgument {
    /// The mode named `argument`, in any case.
    public init?(argument: String) { self.init(rawValue: argument.lowercased()) }
}

extension Concurrency: ExpressibleByArgument {
    /// `max`, or a whole number of sequences ≥ 1.
    public init?(argument: String) {
        if argument.lowercased() == "max" { self = .max; return }
        guard let value = Int(argument), value >= 1 else { return nil }
        self = .count(value)
    }

    /// The spelling of the value.
    public var defaultValueDescription: String {
        switch self {
        case .max: return "max"
        case .count(let value): return "\(value)"
        }
    }
}

/// Machines `--device` can describe instead of a catalog entry.
enum DeviceOption: String, CaseIterable, ExpressibleByArgument {
    /// This machine, probed (cores, memory, read bandwidth).
    case local
}

/// A `--only` or `--skip` glob, stamped with its place among all the selection globs of the
/// command line: the argument parser fills `--only` and `--skip` into two arrays, and the stamps
/// restore the order in which they were given (first match wins), from the parser's own reading
/// of the arguments, whatever their spelling (`--only x`, `--only=x`).
struct SelectionGlob: ExpressibleByArgument {
    /// The glob.
    var glob: String
    /// Increases with every glob the parser reads, in command-line order.
    var position: Int

    init?(argument: String) {
        glob = argument
        position = SelectionGlob.counter.next()
    }

    /// Hands out increasing positions (the parser may run on any thread).
    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func next() -> Int {
            lock.lock(); defer { lock.unlock() }
            value += 1
            return value
        }
    }
    private static let counter = Counter()
}
