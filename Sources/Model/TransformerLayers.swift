import CBLAS
import Foundation
import Formats

/// The forward pass one decoder layer at a time, for calibration jobs that change a layer's weights
/// between passes (GPTQ's sequential pipeline): embed once, then run layer after layer on the same
/// hidden states, each with its own weights or replacements for some of them.
extension Transformer {
    /// The hidden states of `sequences` (each of the same length) after the token embedding:
    /// `sequences.count × length × hiddenSize` floats.
    /// - Throws: ``ModelError/invalidInput(reason:)`` for empty or ragged sequences, or token ids
    ///   outside the vocabulary.
    public func embeddedStates(sequences: [[Int32]]) throws -> [Float] {
        let config = weights.configuration
        guard let length = sequences.first?.count, length > 0, sequences.allSatisfy({ $0.count == length }) else {
            throw ModelError.invalidInput(reason: "the forward pass needs one or more token sequences of the same, non-zero length")
        }
        for (s, sequence) in sequences.enumerated() {
            if let bad = sequence.firstIndex(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
                throw ModelError.invalidInput(reason: "token id \(sequence[bad]) at position \(bad) of sequence \(s) is outside the vocabulary of \(config.vocabularySize)")
            }
        }
        return try embed(sequences.flatMap { $0 }, hidden: config.hiddenSize)
    }

    /// Runs decoder layer `layer` on `state` (`sequences × length × hiddenSize` floats, updated in
    /// place), with the tensors of `replacing` used instead of the checkpoint's (e.g. a linear
    /// layer's quantized-then-decoded weights) and `observer` seeing every linear input.
    /// - Throws: ``ModelError`` for a missing tensor or wrong shape, ``FormatError`` from the reader.
    public func runDecoderLayer(_ layer: Int, state: inout [Float], sequences: Int, length: Int,
                                replacing: [WeightRole: DecodedTensor] = [:], observer: LinearObserver? = nil) throws {
        let config = weights.configuration
        guard layer >= 0, layer < config.layerCount else {
            throw ModelError.invalidInput(reason: "layer \(layer) is outside the \(config.layerCount) decoder layers")
        }
        guard sequences > 0, length > 0, state.count == sequences * length * config.hiddenSize else {
            throw ModelError.invalidInput(reason: "hidden states of \(state.count) floats are not \(sequences) sequences × \(length) tokens × \(config.hiddenSize)")
        }
        let saved = openblas_get_num_threads()
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(saved) }
        let cache = LayerCache()
        for (role, tensor) in replacing { cache.put(role, tensor) }
        try runLayer(layer, state: &state, sequences: sequences, length: length, observer: observer, cache: cache)
        Transformer.returnFreedMemory()
    }

    /// The linear weights of decoder layer `layer` with their `[rows, columns]` shapes, in the
    /// order the layer runs them (attention, then the MLP or the experts).
    public func linearRoles(of layer: Int) -> [(role: WeightRole, shape: [Int])] {
        roles(of: layer).filter { $0.1.count == 2 && $0.0.isLinearWeight }.map { (role: $0.0, shape: $0.1) }
    }
}

extension WeightRole {
    /// Whether this is the weight of a Linear module that weight quantization applies to (the
    /// attention and MLP projections, experts, shared experts); not norms, biases, routers or gates
    /// of shared experts, which stay in their float type.
    public var isLinearWeight: Bool {
        switch self {
        case .query, .key, .value, .attentionOutput, .gate, .up, .down, .expertGate, .expertUp, .expertDown,
             .sharedGate, .sharedUp, .sharedDown:
            return true
        default:
            return false
        }
    }

    /// The role whose input this role's input is (q/k/v share the attention input, gate/up the MLP
    /// input), so one Hessian serves them all; itself otherwise.
    public var inputGroupLeader: WeightRole {
        switch self {
        case .key(let l), .value(let l): return .query(l)
        case .up(let l): return .gate(l)
        case .expertUp(let l, let e): return .expertGate(l, e)
        case .sharedUp(let l): return .sharedGate(l)
        default: return self
        }
    }
}
