import Formats

/// Decides, tensor by tensor, which weights a run quantizes and which it copies unchanged.
///
/// User patterns (`--only`, `--skip`) are globs on tensor names, checked in the order given; the
/// first that matches decides. Without a matching user pattern the default rules apply: the 2-D
/// weight matrices of linear layers are quantized; embeddings, lm_head/output, norms, biases,
/// 1-D tensors, integer tensors and MoE routers are kept byte for byte (formats.md §5 says why).
public struct TensorSelection: Sendable {
    /// One user pattern and what it asks for.
    public struct Pattern: Sendable, Hashable {
        /// Whether matching tensors are quantized (`--only`) or kept (`--skip`).
        public var quantize: Bool
        /// The glob: `*` any run of characters (dots included), `?` one character, `[abc]`/`[a-z]`/`[!a]` a class.
        public var glob: String
        /// The option as the user wrote it, for messages (`--skip 'model.layers.0.*'`).
        public var label: String { (quantize ? "--only " : "--skip ") + "'\(glob)'" }
        /// Creates a pattern.
        public init(quantize: Bool, glob: String) {
            self.quantize = quantize
            self.glob = glob
        }
    }

    /// What to do with one tensor and which rule said so.
    public struct Decision: Sendable, Hashable {
        /// True when the tensor is quantized.
        public var quantize: Bool
        /// The rule that decided, in words (`linear layer weight`, `--skip 'lm_head*'`, `norm`).
        public var rule: String
    }

    /// The user patterns, in command-line order.
    public var patterns: [Pattern]
    /// Whether 3-D tensors (stacked MoE experts, as GGUF stores them) may be quantized row-wise.
    public var allowsStackedExperts: Bool

    /// Creates a selection from user patterns in command-line order.
    public init(patterns: [Pattern] = [], allowsStackedExperts: Bool = false) {
        self.patterns = patterns
        self.allowsStackedExperts = allowsStackedExperts
    }

    private var hasOnly: Bool { patterns.contains { $0.quantize } }

    /// Decides for a tensor with this name, storage type and row-major shape.
    public func decide(name: String, type: TensorType, shape: [Int]) -> Decision {
        let structural = structuralReason(name: name, type: type, shape: shape)
        if let pattern = patterns.first(where: { Glob.matches($0.glob, name) }) {
            if !pattern.quantize { return Decision(quantize: false, rule: pattern.label) }
            if let structural { return Decision(quantize: false, rule: "\(structural) (matched \(pattern.label))") }
            return Decision(quantize: true, rule: pattern.label)
        }
        if hasOnly { return Decision(quantize: false, rule: "not matched by any --only") }
        if let structural { return Decision(quantize: false, rule: structural) }
        if let kept = TensorSelection.conventionallyKept(name) { return Decision(quantize: false, rule: kept) }
        return Decision(quantize: true, rule: "linear layer weight")
    }

    /// The patterns that match none of `names`: each is a mistake the user must hear about.
    public func unmatchedPatterns(in names: [String]) -> [Pattern] {
        patterns.filter { pattern in !names.contains { Glob.matches(pattern.glob, $0) } }
    }

    /// Why a tensor cannot be quantized whatever the user asks, or nil if it can.
    private func structuralReason(name: String, type: TensorType, shape: [Int]) -> String? {
        switch type {
        case .dtype(let dtype):
            guard dtype == .f32 || dtype == .f16 || dtype == .bf16 || dtype == .f64 else {
                return dtype.isFloatingPoint ? "already low-precision (\(dtype.rawValue))" : "not a float tensor (\(dtype.rawValue))"
            }
        case .ggml(let ggml):
            guard ggml == .f32 || ggml == .f16 || ggml == .bf16 else {
                return ggml.isQuantized ? "already quantized (\(ggml.name))" : "not a float tensor (\(ggml.name))"
            }
        }
        if shape.count == 3, allowsStackedExperts { return shape.contains(0) ? "empty tensor" : nil }
        guard shape.count == 2 else { return shape.count < 2 ? "\(shape.count)-D tensor" : "\(shape.count)-D tensor (not a matrix)" }
        if shape.contains(0) { return "empty tensor" }
        return nil
    }

    /// The conventional reason a weight matrix stays in 16-bit, or nil for a linear layer weight
    /// (the shared rules of ``TensorRole``).
    static func conventionallyKept(_ name: String) -> String? { TensorRole(name: name).keptReason }
}

/// Shell-style glob matching on tensor names.
public enum Glob {
    /// Whether `name` matches `pattern` in full: `*` any run (dots included), `?` one character,
    /// `[...]` a class with ranges and `!`/`^` negation; `\` escapes the next character.
    public static func matches(_ pattern: String, _ name: String) -> Bool {
        let p = Array(pattern.unicodeScalars), s = Array(name.unicodeScalars)
        var pi = 0, si = 0, starP = -1, starS = 0
        while si < s.count {
            if pi < p.count {
                let c = p[pi]
                if c == "*" { starP = pi; starS = si; pi += 1; continue }
                if c == "?" { pi += 1; si += 1; continue }
                if c == "[", let (matched, next) = matchClass(p, pi, s[si]) {
                    if matched { pi = next; si += 1; continue }
                } else {
                    var literal = c
                    var width = 1
                    if c == "\\", pi + 1 < p.count { literal = p[pi + 1]; width = 2 }
                    if literal == s[si] { pi += width; si += 1; continue }
                }
            }
            if starP >= 0 { pi = starP + 1; starS += 1; si = starS; continue }
            return false
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    /// Matches `[...]` at `start`; nil if the bracket is not closed (then it is a literal `[`).
    private static func matchClass(_ p: [Unicode.Scalar], _ start: Int, _ c: Unicode.Scalar) -> (Bool, Int)? {
        var i = start + 1
        var negate = false
        if i < p.count && (p[i] == "!" || p[i] == "^") { negate = true; i += 1 }
        var matched = false
        var first = true
        while i < p.count && (p[i] != "]" || first) {
            first = false
            if i + 2 < p.count && p[i + 1] == "-" && p[i + 2] != "]" {
                if p[i] <= c && c <= p[i + 2] { matched = true }
                i += 3
            } else {
                if p[i] == c { matched = true }
                i += 1
            }
        }
        guard i < p.count else { return nil }
        return (matched != negate, i + 1)
    }
}
