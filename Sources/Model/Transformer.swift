import CBLAS
#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import Formats
import Quantize

/// The input of one linear layer during a forward pass, handed to a ``LinearObserver`` before the
/// matmul (in FP32, before any activation quantization the checkpoint declares).
public struct LinearInput {
    /// The decoder layer (nil for `lm_head`).
    public var layer: Int?
    /// The weight's role.
    public var role: WeightRole
    /// The Hugging Face module name (`model.layers.3.self_attn.q_proj`, `…mlp.experts.5.down_proj`).
    public var module: String { role.moduleName }
    /// Rows: the tokens that pass through this layer (for an expert, only those routed to it).
    public var rows: Int
    /// Columns: the input features.
    public var columns: Int
    /// `rows × columns` activations, row-major; valid only during the call.
    public var values: UnsafeBufferPointer<Float>
}

/// Sees the input of every linear layer of a forward pass (calibration collects activations with it).
public typealias LinearObserver = (LinearInput) -> Void

/// A llama-family decoder (Llama 2/3, Mistral, Qwen2/3, Mixtral, Qwen2/3-MoE) evaluated on the CPU
/// in FP32, layer by layer: a layer's weights are decoded when it runs and released after it, so
/// memory holds one layer plus the activations of the tokens in flight.
public final class Transformer: @unchecked Sendable {
    /// The weights (and the configuration read with them).
    public let weights: ModelWeights
    /// Threads for element-wise work, attention, and OpenBLAS.
    public let threads: Int
    private var configuration: TransformerConfiguration { weights.configuration }
    private let cosines: [Float]
    private let sines: [Float]
    private let maximumPositions: Int
    /// Sees every attention layer's keys (after RoPE) and values before they are attended to
    /// (``KeyValueCacheObserver`` calibrates the FP8 KV cache with it); nil: none. Set it before a
    /// forward pass, not during one.
    public var keyValueObserver: KeyValueObserver?

    /// Prepares the forward pass.
    /// - Parameters:
    ///   - weights: the checkpoint's weights.
    ///   - threads: worker threads (OpenBLAS is set to the same number); default: all cores.
    ///   - maximumPositions: the longest sequence that will be evaluated (RoPE tables are built up to it).
    public init(weights: ModelWeights, threads: Int? = nil, maximumPositions: Int = 4096) throws {
        self.weights = weights
        self.threads = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        self.maximumPositions = maximumPositions
        let config = weights.configuration
        var factors: [Float]? = nil
        if weights.has(.ropeFrequencies) {
            factors = try weights.require(.ropeFrequencies, shape: [config.headDimension / 2]).values
        }
        let frequencies = config.inverseFrequencies(frequencyFactors: factors)
        let half = config.headDimension / 2
        var cosines = [Float](repeating: 0, count: maximumPositions * half)
        var sines = cosines
        for p in 0..<maximumPositions {
            for i in 0..<half {
                // transformers forms the angle in FP32 (inv_freq · position), then takes cos/sin.
                let angle = Float(frequencies[i]) * Float(p)
                cosines[p * half + i] = cos(angle)
                sines[p * half + i] = sin(angle)
            }
        }
        self.cosines = cosines
        self.sines = sines
    }

    /// The logits of `sequences` (each of the same length, attended independently) at `positions`.
    /// - Returns: `sequences.count × positions.count × vocabularySize` floats, sequence-major.
    public func logits(sequences: [[Int32]], positions: Range<Int>, observer: LinearObserver? = nil) throws -> [Float] {
        let config = configuration
        guard let length = sequences.first?.count, length > 0, sequences.allSatisfy({ $0.count == length }) else {
            throw ModelError.invalidInput(reason: "the forward pass needs one or more token sequences of the same, non-zero length")
        }
        guard length <= maximumPositions else {
            throw ModelError.invalidInput(reason: "sequences of \(length) tokens are longer than the \(maximumPositions) positions prepared; raise maximumPositions")
        }
        guard positions.lowerBound >= 0, positions.upperBound <= length, !positions.isEmpty else {
            throw ModelError.invalidInput(reason: "output positions \(positions) are outside the sequence of \(length) tokens")
        }
        for (s, sequence) in sequences.enumerated() {
            if let bad = sequence.firstIndex(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
                throw ModelError.invalidInput(reason: "token id \(sequence[bad]) at position \(bad) of sequence \(s) is outside the vocabulary of \(config.vocabularySize)")
            }
        }
        let saved = openblas_get_num_threads()
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(saved) }

        let tokens = sequences.count * length
        let hidden = config.hiddenSize
        var state = try embed(sequences.flatMap { $0 }, hidden: hidden)
        // Layer l+1 is decoded on another thread while layer l runs; each tensor is released as
        // soon as it has been used, so at most two layers' weights are held.
        var pending = prefetch(0)
        for layer in 0..<config.layerCount {
            pending.group.wait()
            let cache = pending.cache
            if let error = cache.error { throw error }
            if layer + 1 < config.layerCount { pending = prefetch(layer + 1) }
            try runLayer(layer, state: &state, sequences: sequences.count, length: length, observer: observer, cache: cache)
            Transformer.returnFreedMemory()
        }
        // Final norm on the output positions only, then the head.
        let outputRows = sequences.count * positions.count
        var selected = [Float](repeating: 0, count: outputRows * hidden)
        let finalNorm = try weights.require(.outputNorm, shape: [hidden]).values
        state.withUnsafeBufferPointer { src in
            selected.withUnsafeMutableBufferPointer { dst in
                for s in 0..<sequences.count {
                    let from = src.baseAddress! + (s * length + positions.lowerBound) * hidden
                    Kernels.rmsNorm(from, rows: positions.count, width: hidden, weight: finalNorm, epsilon: config.rmsNormEpsilon,
                                    into: dst.baseAddress! + s * positions.count * hidden, threads: threads)
                }
            }
        }
        _ = tokens
        return try head(selected, rows: outputRows, observer: observer)
    }

    // MARK: Layer weights

    /// Hands memory freed by the layer just run back to the system. glibc raises its mmap threshold
    /// after large frees, so without this the freed layer buffers stay in the heap and resident
    /// memory grows with the layer count (measured: 154 → 209 MB from 4 to 16 layers; flat with it).
    static func returnFreedMemory() {
        #if canImport(Glibc)
        mallocTrim?(0)
        #endif
    }

    #if canImport(Glibc)
    /// glibc's `malloc_trim`, looked up at run time (the Glibc module does not export malloc.h).
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()
    #endif

    /// The decoded tensors of one layer, filled by a background thread and emptied as they are used.
    final class LayerCache: @unchecked Sendable {
        private let lock = NSLock()
        private var tensors: [WeightRole: DecodedTensor] = [:]
        var error: Error?

        func put(_ role: WeightRole, _ tensor: DecodedTensor) { lock.lock(); tensors[role] = tensor; lock.unlock() }
        func take(_ role: WeightRole) -> DecodedTensor? {
            lock.lock(); defer { lock.unlock() }
            return tensors.removeValue(forKey: role)
        }
    }

    /// Every tensor of layer `layer` with its shape, in the order the layer uses them.
    func roles(of layer: Int) -> [(WeightRole, [Int])] {
        let c = configuration
        let hidden = c.hiddenSize, d = c.headDimension, q = c.headCount * d, kv = c.keyValueHeadCount * d
        var roles: [(WeightRole, [Int])] = [
            (.attentionNorm(layer), [hidden]), (.query(layer), [q, hidden]), (.queryBias(layer), [q]),
            (.key(layer), [kv, hidden]), (.keyBias(layer), [kv]), (.value(layer), [kv, hidden]), (.valueBias(layer), [kv]),
            (.queryNorm(layer), [d]), (.keyNorm(layer), [d]), (.attentionOutput(layer), [hidden, q]), (.feedForwardNorm(layer), [hidden]),
        ]
        if c.isMixtureOfExpertsLayer(layer), let moe = c.mixtureOfExperts {
            let inner = moe.expertIntermediateSize
            roles.append((.router(layer), [moe.expertCount, hidden]))
            for e in 0..<moe.expertCount {
                roles += [(.expertGate(layer, e), [inner, hidden]), (.expertUp(layer, e), [inner, hidden]), (.expertDown(layer, e), [hidden, inner])]
            }
            if let shared = moe.sharedExpertIntermediateSize {
                roles += [(.sharedGate(layer), [shared, hidden]), (.sharedUp(layer), [shared, hidden]), (.sharedDown(layer), [hidden, shared]),
                          (.sharedExpertGate(layer), [1, hidden])]
            }
        } else {
            let inner = c.intermediateSize
            roles += [(.gate(layer), [inner, hidden]), (.up(layer), [inner, hidden]), (.down(layer), [hidden, inner])]
        }
        return roles
    }

    private func prefetch(_ layer: Int) -> (group: DispatchGroup, cache: LayerCache) {
        let group = DispatchGroup(), cache = LayerCache()
        guard layer < configuration.layerCount else { return (group, cache) }
        let roles = self.roles(of: layer), weights = self.weights
        DispatchQueue.global().async(group: group) {
            do {
                for (role, shape) in roles { if let t = try weights.decode(role, shape: shape) { cache.put(role, t) } }
            } catch {
                cache.error = error
            }
        }
        return (group, cache)
    }

    private func fetch(_ cache: LayerCache, _ role: WeightRole, shape: [Int]) throws -> DecodedTensor? {
        if let t = cache.take(role) { return t }
        return try weights.decode(role, shape: shape)
    }

    private func fetchRequired(_ cache: LayerCache, _ role: WeightRole, shape: [Int]) throws -> DecodedTensor {
        if let t = cache.take(role) { return t }
        return try weights.require(role, shape: shape)
    }

    // MARK: Embedding and head

    func embed(_ ids: [Int32], hidden: Int) throws -> [Float] {
        let vocabulary = configuration.vocabularySize
        // Only the distinct rows the tokens use are decoded.
        let distinct = Array(Set(ids.map { Int($0) })).sorted()
        var slot = [Int](repeating: -1, count: vocabulary)
        for (i, r) in distinct.enumerated() { slot[r] = i }
        let rows: [Float]
        if let decoded = try weights.decodeRows(.embedding, rows: distinct, totalRows: vocabulary, columns: hidden) {
            rows = decoded
        } else {
            let table = try weights.require(.embedding, shape: [vocabulary, hidden]).values
            rows = distinct.flatMap { table[($0 * hidden)..<(($0 + 1) * hidden)] }
        }
        var out = [Float](repeating: 0, count: ids.count * hidden)
        rows.withUnsafeBufferPointer { t in
            out.withUnsafeMutableBufferPointer { o in
                for (i, id) in ids.enumerated() {
                    (o.baseAddress! + i * hidden).update(from: t.baseAddress! + slot[Int(id)] * hidden, count: hidden)
                }
            }
        }
        return out
    }

    private func head(_ x: [Float], rows: Int, observer: LinearObserver?) throws -> [Float] {
        let config = configuration
        let vocabulary = config.vocabularySize, hidden = config.hiddenSize
        let role: WeightRole = weights.has(.output) ? .output : .embedding
        var out = [Float](repeating: 0, count: rows * vocabulary)
        var input = x
        if !weights.canDecodeRows(role) {
            let weight = try weights.require(role, shape: [vocabulary, hidden])
            try linear(&input, rows: rows, weight: weight, role: .output, layer: nil, into: &out, observer: observer)
            return out
        }
        // A large vocabulary's head is decoded in blocks of about 64 MB of FP32 rows, each block's
        // logits written straight into their columns of the output.
        if let observer {
            input.withUnsafeBufferPointer { observer(LinearInput(layer: nil, role: .output, rows: rows, columns: hidden, values: $0)) }
        }
        let block = max(256, (16 << 20) / hidden)
        var start = 0
        while start < vocabulary {
            let end = min(vocabulary, start + block)
            guard let w = try weights.decodeRows(role, rows: Array(start..<end), totalRows: vocabulary, columns: hidden) else {
                throw ModelError.missingTensor(path: weights.checkpoint.path, tensor: role.moduleName)
            }
            input.withUnsafeBufferPointer { xb in
                w.withUnsafeBufferPointer { wb in
                    out.withUnsafeMutableBufferPointer { ob in
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(end - start), Int32(hidden), 1,
                                    xb.baseAddress!, Int32(hidden), wb.baseAddress!, Int32(hidden), 0, ob.baseAddress! + start, Int32(vocabulary))
                    }
                }
            }
            start = end
        }
        return out
    }

    // MARK: One decoder layer

    func runLayer(_ layer: Int, state: inout [Float], sequences: Int, length: Int, observer: LinearObserver?, cache: LayerCache) throws {
        let config = configuration
        let hidden = config.hiddenSize, tokens = sequences * length

        // Attention block.
        var normed = [Float](repeating: 0, count: tokens * hidden)
        let attentionNorm = try fetchRequired(cache, .attentionNorm(layer), shape: [hidden]).values
        state.withUnsafeBufferPointer { s in
            normed.withUnsafeMutableBufferPointer { n in
                Kernels.rmsNorm(s.baseAddress!, rows: tokens, width: hidden, weight: attentionNorm, epsilon: config.rmsNormEpsilon,
                                into: n.baseAddress!, threads: threads)
            }
        }
        var projected = try attentionBlock(&normed, layer: layer, sequences: sequences, length: length, observer: observer, cache: cache)
        add(&state, projected)

        // Feed-forward block.
        let ffnNorm = try fetchRequired(cache, .feedForwardNorm(layer), shape: [hidden]).values
        state.withUnsafeBufferPointer { s in
            normed.withUnsafeMutableBufferPointer { n in
                Kernels.rmsNorm(s.baseAddress!, rows: tokens, width: hidden, weight: ffnNorm, epsilon: config.rmsNormEpsilon,
                                into: n.baseAddress!, threads: threads)
            }
        }
        if config.isMixtureOfExpertsLayer(layer) {
            projected = try mixtureOfExperts(&normed, rows: tokens, layer: layer, observer: observer, cache: cache)
        } else {
            projected = try swiGLU(&normed, rows: tokens, gate: .gate(layer), up: .up(layer), down: .down(layer),
                                   inner: config.intermediateSize, layer: layer, observer: observer, cache: cache)
        }
        add(&state, projected)
    }

    /// The attention block of decoder layer `layer` on its normed input (`sequences × length ×
    /// hiddenSize` floats): q/k/v projections (with biases and q/k norms), RoPE, causal attention,
    /// and the output projection; the residual is not added. AWQ reruns it to score candidate scales.
    func attentionBlock(_ normed: inout [Float], layer: Int, sequences: Int, length: Int, observer: LinearObserver?, cache: LayerCache) throws -> [Float] {
        let config = configuration
        let hidden = config.hiddenSize, tokens = sequences * length
        let heads = config.headCount, kvHeads = config.keyValueHeadCount, d = config.headDimension
        let qWidth = heads * d, kvWidth = kvHeads * d
        var q = [Float](repeating: 0, count: tokens * qWidth)
        var k = [Float](repeating: 0, count: tokens * kvWidth)
        var v = [Float](repeating: 0, count: tokens * kvWidth)
        do {
            let wq = try fetchRequired(cache, .query(layer), shape: [qWidth, hidden])
            try linear(&normed, rows: tokens, weight: wq, role: .query(layer), layer: layer, into: &q, observer: observer,
                       bias: try fetch(cache, .queryBias(layer), shape: [qWidth])?.values)
        }
        do {
            let wk = try fetchRequired(cache, .key(layer), shape: [kvWidth, hidden])
            try linear(&normed, rows: tokens, weight: wk, role: .key(layer), layer: layer, into: &k, observer: observer,
                       bias: try fetch(cache, .keyBias(layer), shape: [kvWidth])?.values)
        }
        do {
            let wv = try fetchRequired(cache, .value(layer), shape: [kvWidth, hidden])
            try linear(&normed, rows: tokens, weight: wv, role: .value(layer), layer: layer, into: &v, observer: observer,
                       bias: try fetch(cache, .valueBias(layer), shape: [kvWidth])?.values)
        }
        if let qNorm = try fetch(cache, .queryNorm(layer), shape: [d])?.values {
            q.withUnsafeMutableBufferPointer { Kernels.rmsNorm($0.baseAddress!, rows: tokens * heads, width: d, weight: qNorm, epsilon: config.rmsNormEpsilon, into: $0.baseAddress!, threads: threads) }
        }
        if let kNorm = try fetch(cache, .keyNorm(layer), shape: [d])?.values {
            k.withUnsafeMutableBufferPointer { Kernels.rmsNorm($0.baseAddress!, rows: tokens * kvHeads, width: d, weight: kNorm, epsilon: config.rmsNormEpsilon, into: $0.baseAddress!, threads: threads) }
        }
        q.withUnsafeMutableBufferPointer {
            Kernels.rope($0.baseAddress!, rows: tokens, stride: qWidth, heads: heads, dimension: d, positions: { $0 % length },
                         cosines: cosines, sines: sines, threads: threads)
        }
        k.withUnsafeMutableBufferPointer {
            Kernels.rope($0.baseAddress!, rows: tokens, stride: kvWidth, heads: kvHeads, dimension: d, positions: { $0 % length },
                         cosines: cosines, sines: sines, threads: threads)
        }
        if let observe = keyValueObserver {
            k.withUnsafeBufferPointer { kb in
                v.withUnsafeBufferPointer { vb in
                    observe(KeyValueStates(layer: layer, sequences: sequences, length: length, width: kvWidth, keys: kb, values: vb))
                }
            }
        }
        if weights.fp8KeyValueCache {
            let (ks, vs) = weights.keyValueCacheScales(layer: layer)
            k.withUnsafeMutableBufferPointer { Kernels.roundToFP8Cache($0, scale: ks, threads: threads) }
            v.withUnsafeMutableBufferPointer { Kernels.roundToFP8Cache($0, scale: vs, threads: threads) }
        }
        var attended = [Float](repeating: 0, count: tokens * qWidth)
        attention(q: q, k: k, v: v, into: &attended, sequences: sequences, length: length, window: config.slidingWindows[layer])
        q = []; k = []; v = []
        var projected = [Float](repeating: 0, count: tokens * hidden)
        do {
            let wo = try fetchRequired(cache, .attentionOutput(layer), shape: [hidden, qWidth])
            try linear(&attended, rows: tokens, weight: wo, role: .attentionOutput(layer), layer: layer, into: &projected, observer: observer)
        }
        attended = []
        return projected
    }

    private func add(_ state: inout [Float], _ delta: [Float]) {
        state.withUnsafeMutableBufferPointer { s in
            delta.withUnsafeBufferPointer { d in
                Kernels.parallelRows(s.count, threads: threads, minimumPerTask: 1 << 15) { range in
                    for i in range { s[i] += d[i] }
                }
            }
        }
    }

    /// Causal (optionally sliding-window) scaled dot-product attention, one sgemm pair per sequence
    /// and head, heads spread across threads (OpenBLAS single-threaded inside).
    private func attention(q: [Float], k: [Float], v: [Float], into out: inout [Float], sequences: Int, length: Int, window: Int?) {
        let config = configuration
        let heads = config.headCount, d = config.headDimension
        let group = heads / config.keyValueHeadCount
        let qStride = heads * d, kvStride = config.keyValueHeadCount * d
        let scale = 1 / Float(d).squareRoot()
        let jobs = sequences * heads
        let saved = openblas_get_num_threads()
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(saved) }
        q.withUnsafeBufferPointer { qb in
            k.withUnsafeBufferPointer { kb in
                v.withUnsafeBufferPointer { vb in
                    out.withUnsafeMutableBufferPointer { ob in
                        let qp = qb.baseAddress!, kp = kb.baseAddress!, vp = vb.baseAddress!, op = ob.baseAddress!
                        Kernels.parallelRows(jobs, threads: threads) { range in
                            // Rows in blocks of 64 see only the keys up to their last row (and from the
                            // window's start), so the masked upper triangle is not computed.
                            let block = 64
                            var scores = [Float](repeating: 0, count: block * length)
                            scores.withUnsafeMutableBufferPointer { sb in
                                let sp = sb.baseAddress!
                                for job in range {
                                    let s = job / heads, h = job % heads, g = h / group
                                    let qBase = qp + s * length * qStride + h * d
                                    let kBase = kp + s * length * kvStride + g * d
                                    let vBase = vp + s * length * kvStride + g * d
                                    let oBase = op + s * length * qStride + h * d
                                    var r0 = 0
                                    while r0 < length {
                                        let r1 = min(length, r0 + block)
                                        let k0 = window.map { max(0, r0 - $0 + 1) } ?? 0
                                        let keys = r1 - k0
                                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(r1 - r0), Int32(keys), Int32(d), scale,
                                                    qBase + r0 * qStride, Int32(qStride), kBase + k0 * kvStride, Int32(kvStride), 0, sp, Int32(keys))
                                        for i in r0..<r1 {
                                            let row = sp + (i - r0) * keys
                                            let first = (window.map { max(0, i - $0 + 1) } ?? 0) - k0, last = i - k0
                                            var maximum = -Float.infinity
                                            for j in first...last { maximum = max(maximum, row[j]) }
                                            var sum: Float = 0
                                            for j in 0..<first { row[j] = 0 }
                                            for j in first...last {
                                                let e = exp(row[j] - maximum)
                                                row[j] = e
                                                sum += e
                                            }
                                            let inverse = 1 / sum
                                            for j in first...last { row[j] *= inverse }
                                            for j in (last + 1)..<keys { row[j] = 0 }
                                        }
                                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(r1 - r0), Int32(d), Int32(keys), 1,
                                                    sp, Int32(keys), vBase + k0 * kvStride, Int32(kvStride), 0, oBase + r0 * qStride, Int32(qStride))
                                        r0 = r1
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: Feed-forward

    func swiGLU(_ x: inout [Float], rows: Int, gate: WeightRole, up: WeightRole, down: WeightRole, inner: Int,
                        layer: Int, observer: LinearObserver?, cache: LayerCache) throws -> [Float] {
        let hidden = configuration.hiddenSize
        var g = [Float](repeating: 0, count: rows * inner)
        var u = [Float](repeating: 0, count: rows * inner)
        do {
            let w = try fetchRequired(cache, gate, shape: [inner, hidden])
            try linear(&x, rows: rows, weight: w, role: gate, layer: layer, into: &g, observer: observer)
        }
        do {
            let w = try fetchRequired(cache, up, shape: [inner, hidden])
            try linear(&x, rows: rows, weight: w, role: up, layer: layer, into: &u, observer: observer)
        }
        g.withUnsafeMutableBufferPointer { gb in
            u.withUnsafeBufferPointer { ub in Kernels.swiglu(gb.baseAddress!, ub.baseAddress!, count: gb.count, threads: threads) }
        }
        u = []
        var out = [Float](repeating: 0, count: rows * hidden)
        let w = try fetchRequired(cache, down, shape: [hidden, inner])
        try linear(&g, rows: rows, weight: w, role: down, layer: layer, into: &out, observer: observer)
        return out
    }

    private func mixtureOfExperts(_ x: inout [Float], rows: Int, layer: Int, observer: LinearObserver?, cache: LayerCache) throws -> [Float] {
        let config = configuration
        guard let moe = config.mixtureOfExperts else { return [] }
        let hidden = config.hiddenSize, experts = moe.expertCount, topK = moe.expertsPerToken
        // Router: softmax over experts in FP32, top-k, optionally renormalised (transformers' order).
        var routerLogits = [Float](repeating: 0, count: rows * experts)
        let router = try fetchRequired(cache, .router(layer), shape: [experts, hidden])
        try linear(&x, rows: rows, weight: router, role: .router(layer), layer: layer, into: &routerLogits, observer: observer,
                   quantizeInput: false)
        var assigned = [[(row: Int, weight: Float)]](repeating: [], count: experts)
        for r in 0..<rows {
            let logits = routerLogits[(r * experts)..<((r + 1) * experts)]
            let maximum = logits.max() ?? 0
            var probabilities = logits.map { exp($0 - maximum) }
            let sum = probabilities.reduce(0, +)
            probabilities = probabilities.map { $0 / sum }
            // Stable order on ties: the lower expert index first, as torch.topk returns on CPU.
            let chosen = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1) }.prefix(topK)
            let total = chosen.reduce(Float(0)) { $0 + probabilities[$1] }
            for e in chosen { assigned[e].append((r, moe.normalizesTopK ? probabilities[e] / total : probabilities[e])) }
        }
        var out = [Float](repeating: 0, count: rows * hidden)
        for e in 0..<experts where !assigned[e].isEmpty {
            let routed = assigned[e]
            var gathered = [Float](repeating: 0, count: routed.count * hidden)
            x.withUnsafeBufferPointer { xb in
                gathered.withUnsafeMutableBufferPointer { gb in
                    for (i, entry) in routed.enumerated() {
                        (gb.baseAddress! + i * hidden).update(from: xb.baseAddress! + entry.row * hidden, count: hidden)
                    }
                }
            }
            let y = try swiGLU(&gathered, rows: routed.count, gate: .expertGate(layer, e), up: .expertUp(layer, e),
                               down: .expertDown(layer, e), inner: moe.expertIntermediateSize, layer: layer, observer: observer, cache: cache)
            for (i, entry) in routed.enumerated() {
                for c in 0..<hidden { out[entry.row * hidden + c] += entry.weight * y[i * hidden + c] }
            }
        }
        if let shared = moe.sharedExpertIntermediateSize, weights.has(.sharedGate(layer)) {
            let y = try swiGLU(&x, rows: rows, gate: .sharedGate(layer), up: .sharedUp(layer), down: .sharedDown(layer),
                               inner: shared, layer: layer, observer: observer, cache: cache)
            var gateLogit = [Float](repeating: 0, count: rows)
            if weights.has(.sharedExpertGate(layer)) {
                let w = try fetchRequired(cache, .sharedExpertGate(layer), shape: [1, hidden])
                try linear(&x, rows: rows, weight: w, role: .sharedExpertGate(layer), layer: layer, into: &gateLogit, observer: observer,
                           quantizeInput: false)
            } else {
                gateLogit = [Float](repeating: .infinity, count: rows)
            }
            for r in 0..<rows {
                let g = 1 / (1 + exp(-gateLogit[r]))
                for c in 0..<hidden { out[r * hidden + c] += g * y[r * hidden + c] }
            }
        }
        return out
    }

    // MARK: Linear layers

    /// y = x · Wᵀ (+ bias). The observer sees x first; x is then rounded as the checkpoint declares
    /// for quantized weights (``ModelWeights/activationQuantization``), which is why it is `inout`.
    private func linear(_ x: inout [Float], rows: Int, weight: DecodedTensor, role: WeightRole, layer: Int?,
                        into y: inout [Float], observer: LinearObserver?, bias: [Float]? = nil, quantizeInput: Bool = true) throws {
        let columns = weight.columns, outputs = weight.rows
        if let observer {
            x.withUnsafeBufferPointer { observer(LinearInput(layer: layer, role: role, rows: rows, columns: columns, values: $0)) }
        }
        var input = x
        if quantizeInput, let mode = weights.activationQuantization, weights.isQuantized(role) {
            input.withUnsafeMutableBufferPointer { b in
                let p = b.baseAddress!
                switch mode {
                case .dynamicPerToken(let isFloat):
                    Kernels.fakeQuantize(p, rows: rows, width: columns, isFloat: isFloat, threads: threads)
                case .dynamicPerTokenGroup(let g):
                    Kernels.fakeQuantize(p, rows: rows, width: columns, groupSize: g, threads: threads)
                case .dynamicPerTensor:
                    var amax: Float = 0
                    for i in 0..<(rows * columns) { amax = max(amax, abs(p[i])) }
                    Kernels.fakeQuantize(p, rows: 1, width: rows * columns, fixedScale: max(amax / 448, 1 / (448 * 512)), threads: threads)
                case .staticPerTensor:
                    if let s = weights.inputScale(role) {
                        Kernels.fakeQuantize(p, rows: 1, width: rows * columns, fixedScale: s, threads: threads)
                    }
                }
            }
        }
        input.withUnsafeBufferPointer { xb in
            weight.values.withUnsafeBufferPointer { wb in
                y.withUnsafeMutableBufferPointer { yb in
                    Kernels.matmulTransposed(xb.baseAddress!, rows: rows, inner: columns, wb.baseAddress!, outputs: outputs, into: yb.baseAddress!)
                }
            }
        }
        if let bias {
            y.withUnsafeMutableBufferPointer { yb in
                for r in 0..<rows { for c in 0..<outputs { yb[r * outputs + c] += bias[c] } }
            }
        }
    }
}
