import ArgumentParser
import Foundation
import Formats
import Model
import Quantize

/// How integer weights are chosen (`--method`).
enum WeightMethod: String, ExpressibleByArgument, CaseIterable {
    /// Round to nearest with the observer's min-max scales (or `--search`'s clipping).
    case rtn
    /// GPTQ with a calibration text (llm-compressor's GPTQModifier and sequential pipeline).
    case gptq
    /// Half-quadratic quantization (HQQ): each group's scale and zero point refined against the
    /// ℓ0.7 error of its weights; calibration-free.
    case hqq
    /// Activation-aware scales searched per mapping and folded into the preceding norm or linear
    /// layer, then round-to-nearest (llm-compressor's AWQModifier); needs a calibration text.
    case awq
}

/// The calibrated-quantization options of `quantize --to int4|int8` (`--method gptq` and its data).
struct CalibrationOptions: ParsableArguments {
    @Option(help: "int4/int8: rtn (round to nearest, default), gptq (calibrated with --calibration; llm-compressor's GPTQ), awq (activation-aware scales from --calibration folded into the norms; llm-compressor's AWQ) or hqq (half-quadratic refinement of each group's scale and zero point; no calibration data).")
    var method: WeightMethod = .rtn

    @Option(help: ArgumentHelp("With --method gptq or awq (or --smooth): the calibration data, a text file (tokenized with the model's tokenizer) or a JSON array of token-id windows.", valueName: "file"))
    var calibration: String?

    @Option(help: "With --method gptq or awq (or --smooth): windows of calibration tokens.")
    var calibrationSamples: Int = 128

    @Option(help: "With --method gptq or awq (or --smooth): tokens per window.")
    var calibrationLength: Int = 512

    @Option(help: "With --method gptq: fraction of the mean Hessian diagonal added to it.")
    var dampening: Double = 0.01

    @Flag(help: "With --method gptq: quantize columns in descending order of activation (llm-compressor's actorder static; no g_idx).")
    var actOrder = false

    /// Rejects combinations that cannot work, before any work starts.
    /// - Parameters:
    ///   - calibratesKVCache: `--kv-cache fp8` also reads `--calibration`, so it is allowed
    ///     without a calibrated weight method.
    ///   - smoothing: `--smooth` reads `--calibration` too (ActivationOptions checks that use).
    func validate(scheme: SchemeName, search: Bool, calibratesKVCache: Bool = false, smoothing: Bool = false) throws {
        if method == .hqq {
            guard scheme == .int4 || scheme == .int8 else {
                throw ValidationError("--method hqq applies to int4 and int8 (it chooses their scales and zero points), not \(scheme.rawValue)")
            }
            if (calibration != nil && !calibratesKVCache) || actOrder { throw ValidationError("--method hqq needs no calibration data: --calibration and --act-order apply to --method gptq") }
            if search { throw ValidationError("--search and --method hqq both choose the scales; pick one") }
            return
        }
        if method == .awq { return try validateAWQ(scheme: scheme, search: search) }
        guard method == .gptq else {
            if (calibration != nil && !calibratesKVCache && !smoothing) || actOrder { throw ValidationError("--calibration and --act-order apply to --method gptq (and --calibration to awq, --smooth and --kv-cache fp8)") }
            return
        }
        guard scheme == .int4 || scheme == .int8 else {
            throw ValidationError("--method gptq applies to int4 and int8 (it chooses integer codes), not \(scheme.rawValue)")
        }
        guard calibration != nil else {
            throw ValidationError("--method gptq needs calibration data: --calibration FILE (a text, or a JSON array of token ids)")
        }
        if search { throw ValidationError("--search chooses round-to-nearest clipping; --method gptq keeps the observer's min-max scales and chooses the codes") }
        if calibrationSamples < 1 { throw ValidationError("--calibration-samples must be positive") }
        if calibrationLength < 2 { throw ValidationError("--calibration-length must be 2 or more") }
        if !(dampening >= 0 && dampening.isFinite) { throw ValidationError("--dampening must be a finite number ≥ 0") }
    }

    /// For `--method hqq`, the config.json record of the method and its settings (the kernels do the
    /// work per group as the job encodes, so no tensor is handed over); nil otherwise.
    func halfQuadraticRecord() -> CalibratedWeights? {
        guard method == .hqq else { return nil }
        func number(_ v: Double) -> JSONValue { .number(JSONNumber(v)) }
        let record: JSONValue = .object([
            JSONMember("method", .string("hqq")),
            JSONMember("lp_norm", number(0.7)),
            JSONMember("beta", number(10)),
            JSONMember("kappa", number(1.01)),
            JSONMember("max_iterations", number(20)),
            JSONMember("fitted", .string("scale and zero point, zero point rounded to an integer")),
            JSONMember("tool", .string("quantize")),
        ])
        return CalibratedWeights(method: "hqq", activationOrder: nil, record: record, tensor: { _ in nil })
    }

    /// Runs GPTQ over the tensors `job` quantizes and returns them for the job to write; nil for `--method rtn`.
    /// - Parameter keyValueObserver: with GPTQ, sees each layer's keys and values in its calibration pass (`--kv-cache fp8`).
    func calibrate(job: QuantizeJob, input: String, threads: Int?, verbose: Bool, keyValueObserver: KeyValueObserver? = nil) throws -> CalibratedWeights? {
        if method == .awq { return try calibrateAWQ(job: job, input: input, threads: threads, verbose: verbose) }
        guard method == .gptq, let path = calibration else { return nil }
        // The calibration is forward passes: on CPUs OpenBLAS 0.3.21 does not recognise it would run
        // its slowest kernels (BLASCore), so restart with a matching core type first, as eval does.
        QuantizeCommand.EvalCommand.restartWithFasterBLASIfNeeded()
        let settings = job.settings
        let weights = try ModelWeights(checkpoint: job.checkpoint, weightsOnly: true)
        let tokenizer = try? TokenizerLoader.load(checkpoint: job.checkpoint)
        let data = try CalibrationSet.load(path: path, tokenizer: tokenizer, vocabularySize: weights.configuration.vocabularySize,
                                           samples: calibrationSamples, length: calibrationLength)
        let names = Set(job.tensors.filter(\.decision.quantize).map(\.source.name))
        let config = weights.configuration
        if verbose {
            let states = Double(data.tokenCount * config.hiddenSize * 4)
            let widest = max(config.hiddenSize, config.intermediateSize)
            let hessians = Double(widest * widest * 4 * 2)
            Format.note("gptq: \(data.windows.count) windows × \(calibrationLength) tokens (\(data.tokenCount) tokens, \(data.source)); "
                        + "\(config.layerCount) layers, each run twice over every window; memory ≈ \(Format.bytes(Int(states))) of hidden states + "
                        + "\(Format.bytes(Int(hessians))) of Hessians + one layer's weights")
            if data.windows.count < calibrationSamples {
                Format.note("gptq: the calibration data gave \(data.windows.count) of the \(calibrationSamples) windows asked for")
            }
        }
        let gptq = GPTQSettings(dampening: dampening, blockSize: 128, activationOrder: actOrder)
        var warnings: [String] = []
        let result = try GPTQCalibration.run(
            checkpointPath: input, calibration: data, quantize: names,
            settings: GPTQCalibration.Settings(scheme: settings.scheme, options: settings.options, gptq: gptq, threads: threads),
            keyValueObserver: keyValueObserver,
            progress: { done, layers, seconds in
                guard verbose else { return }
                let eta = seconds / Double(done) * Double(layers - done)
                Format.note(String(format: "gptq: layer %d/%d done, %.1f s, ETA %.1f s", done, layers, seconds, eta))
            },
            warning: { text in
                warnings.append(text)
                if verbose { Format.note("warning: " + text) }
            })
        let uncovered = names.subtracting(result.tensors.keys).sorted()
        if verbose, !uncovered.isEmpty {
            Format.note("gptq: \(uncovered.count) selected tensor(s) are not decoder linear layers and are quantized round-to-nearest: \(uncovered.prefix(3).joined(separator: ", "))\(uncovered.count > 3 ? ", …" : "")")
        }
        let tensors = result.tensors
        let fallbacks = result.outcomes.filter(\.roundToNearest).map(\.name)
        func number(_ v: Double) -> JSONValue { .number(JSONNumber(v)) }
        func integer(_ v: Int) -> JSONValue { .number(JSONNumber(v)) }
        let record: JSONValue = .object([
            JSONMember("method", .string("gptq")),
            JSONMember("dampening", number(dampening)),
            JSONMember("block_size", integer(gptq.blockSize)),
            JSONMember("actorder", actOrder ? .string("static") : .null),
            JSONMember("calibration", .object([
                JSONMember("source", .string(data.source)),
                JSONMember("samples", integer(data.windows.count)),
                JSONMember("sequence_length", integer(calibrationLength)),
                JSONMember("tokens", integer(data.tokenCount)),
            ])),
            JSONMember("round_to_nearest", .array(fallbacks.map(JSONValue.string))),
            JSONMember("seconds", number((result.layerSeconds.reduce(0, +) * 100).rounded() / 100)),
            JSONMember("tool", .string("quantize")),
        ])
        return CalibratedWeights(method: "gptq", activationOrder: actOrder ? "static" : nil, record: record, tensor: { tensors[$0] })
    }
}
