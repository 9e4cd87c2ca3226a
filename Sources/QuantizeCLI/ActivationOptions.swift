import ArgumentParser
import Foundation
import Formats
import Model
import Quantize

/// The activation types `--act-quant` takes.
enum ActivationQuantizationOption: String, CaseIterable, ExpressibleByArgument {
    /// Dynamic per-token symmetric INT8 (W8A8, vLLM's CompressedTensorsW8A8Int8).
    case int8
}

/// `quantize --to int8 --act-quant int8 [--smooth α]`: W8A8 with SmoothQuant-style smoothing
/// (``SmoothQuantCalibration``). The calibration data comes from ``CalibrationOptions``
/// (`--calibration`, `--calibration-samples`, `--calibration-length`), and `--method gptq`
/// chooses GPTQ for the smoothed weights.
struct ActivationOptions: ParsableArguments {
    @Option(name: .customLong("act-quant"),
            help: ArgumentHelp("int8: also quantize every quantized linear layer's input, dynamic per token, symmetric INT8 (W8A8: compressed-tensors int-quantized, I8 per-channel weights; vLLM serves it with INT8 tensor cores on an A100). Needs no calibration data.", valueName: "type"))
    var actQuant: ActivationQuantizationOption?

    @Option(help: ArgumentHelp("With --act-quant int8: SmoothQuant strength α in [0, 1] (llm-compressor's smoothing_strength, 0.5 there): per-channel scales max-min(X)^α / (2·max|W|)^(1-α) from --calibration, divided into the input norms and multiplied into q/k/v and gate/up.", valueName: "alpha"))
    var smooth: Double?

    /// Rejects what W8A8 and smoothing cannot do, before any work starts.
    func validate(target: QuantizeTarget, granularity: GranularityRequest?, groupSize: Int?, calibration: CalibrationOptions) throws {
        if let smooth {
            guard actQuant != nil else {
                throw ValidationError("--smooth moves activation outliers into the weights for quantized activations; add --act-quant int8 (without it the smoothing only costs weight accuracy)")
            }
            guard smooth.isFinite, smooth >= 0, smooth <= 1 else {
                throw ValidationError("--smooth takes a strength α in [0, 1] (0.5 is llm-compressor's default, 0.8 smooths harder); got \(smooth)")
            }
            guard calibration.calibration != nil else {
                throw ValidationError("--smooth needs calibration data for the activation ranges: --calibration FILE (a text, or a JSON array of token ids), with --calibration-samples and --calibration-length")
            }
            guard calibration.method == .rtn || calibration.method == .gptq else {
                throw ValidationError("--smooth folds its scales into the norms, as --method \(calibration.method.rawValue) \(calibration.method == .awq ? "does with its own scales" : "cannot follow"); use --method rtn (default) or gptq with --smooth")
            }
            if calibration.calibrationSamples < 1 { throw ValidationError("--calibration-samples must be positive") }
            if calibration.calibrationLength < 2 { throw ValidationError("--calibration-length must be 2 or more") }
        }
        guard let actQuant else { return }
        guard target == .scheme(.int8) else {
            let why: String
            switch target.schemeName.descriptor.container {
            case .gguf: why = "\(target.name) writes GGUF, whose runtime (llama.cpp) quantizes activations itself and reads no activation scheme"
            default:
                switch target.schemeName {
                case .fp8, .fp8E5M2: why = "--to \(target.name) already writes dynamic per-token FP8 activations (W8A8-FP8, compute capability ≥ 8.9)"
                case .int4: why = "int4 weights with int8 activations (W4A8) is not a layout vLLM's compressed-tensors INT8 kernels take from this tool"
                default: why = "--to \(target.name) has no activation quantization"
                }
            }
            throw ValidationError("--act-quant \(actQuant.rawValue) applies to --to int8 (W8A8: per-channel int8 weights, dynamic per-token int8 activations); \(why)")
        }
        if granularity == .group || groupSize != nil {
            throw ValidationError("--act-quant int8 needs per-channel weight scales (vLLM's CompressedTensorsW8A8Int8 takes channel or tensor strategies, not groups); leave out --granularity group and --group-size")
        }
    }

    /// `--act-quant int8` writes the `int-quantized` layout whatever `--int8-layout` says: vLLM
    /// routes int-quantized configs with int8 activations to its W8A8 kernels, and refuses W8A8 in
    /// `pack-quantized`.
    var forcesIntQuantized: Bool { actQuant == .int8 }

    /// With `--smooth`, runs SmoothQuant (and GPTQ with `--method gptq`) over the tensors `job`
    /// quantizes and returns them, with the norms it changed, for the job to write; nil otherwise.
    func calibrate(job: QuantizeJob, input: String, calibration: CalibrationOptions, threads: Int?, verbose: Bool) throws -> CalibratedWeights? {
        guard let strength = smooth, let path = calibration.calibration else { return nil }
        QuantizeCommand.EvalCommand.restartWithFasterBLASIfNeeded()
        let settings = job.settings
        let weights = try ModelWeights(checkpoint: job.checkpoint, weightsOnly: true)
        let config = weights.configuration
        let tokenizer = try? TokenizerLoader.load(checkpoint: job.checkpoint)
        let data = try CalibrationSet.load(path: path, tokenizer: tokenizer, vocabularySize: config.vocabularySize,
                                           samples: calibration.calibrationSamples, length: calibration.calibrationLength)
        let names = Set(job.tensors.filter(\.decision.quantize).map(\.source.name))
        let gptq = calibration.method == .gptq
            ? GPTQSettings(dampening: calibration.dampening, blockSize: 128, activationOrder: calibration.actOrder) : nil
        let label = gptq == nil ? "smoothquant" : "smoothquant+gptq"
        if verbose {
            let states = data.tokenCount * config.hiddenSize * 4
            let widest = max(config.hiddenSize, config.intermediateSize)
            Format.note("\(label): α \(strength); \(data.windows.count) windows × \(calibration.calibrationLength) tokens (\(data.tokenCount) tokens, \(data.source)); "
                        + "\(config.layerCount) layers, each run twice over every window; memory ≈ \(Format.bytes(states)) of hidden states + one layer's weights"
                        + (gptq == nil ? "" : " + \(Format.bytes(widest * widest * 8)) of Hessians"))
            if data.windows.count < calibration.calibrationSamples {
                Format.note("\(label): the calibration data gave \(data.windows.count) of the \(calibration.calibrationSamples) windows asked for")
            }
        }
        var warnings: [String] = []
        let result = try SmoothQuantCalibration.run(
            checkpointPath: input, calibration: data, quantize: names,
            settings: SmoothQuantCalibration.Settings(scheme: settings.scheme, options: settings.options, strength: strength, gptq: gptq, threads: threads),
            progress: { done, layers, seconds in
                guard verbose else { return }
                let eta = seconds / Double(done) * Double(layers - done)
                Format.note("\(label): " + String(format: "layer %d/%d done, %.1f s, ETA %.1f s", done, layers, seconds, eta))
            },
            warning: { text in
                warnings.append(text)
                if verbose { Format.note("warning: " + text) }
            })
        let tensors = result.tensors, smoothed = result.smoothed
        func number(_ v: Double) -> JSONValue { .number(JSONNumber(v)) }
        func integer(_ v: Int) -> JSONValue { .number(JSONNumber(v)) }
        func rounded(_ v: Float) -> JSONValue { v.isFinite ? number(Double(String(format: "%.4g", Double(v))) ?? Double(v)) : .null }
        var members: [JSONMember] = [
            JSONMember("method", .string(label)),
            JSONMember("smoothing_strength", number(strength)),
            JSONMember("mappings", .array(result.mappings.map { m in
                .object([
                    JSONMember("smooth_layer", .string(m.smooth)),
                    JSONMember("balance_layers", .array(m.balance.map(JSONValue.string))),
                    JSONMember("scale_min", rounded(m.scales.min() ?? .nan)),
                    JSONMember("scale_max", rounded(m.scales.max() ?? .nan)),
                    JSONMember("activation_range_max", rounded(m.rangeBefore)),
                    JSONMember("smoothed_range_max", rounded(m.rangeAfter)),
                ])
            })),
            JSONMember("calibration", .object([
                JSONMember("source", .string(data.source)),
                JSONMember("samples", integer(data.windows.count)),
                JSONMember("sequence_length", integer(calibration.calibrationLength)),
                JSONMember("tokens", integer(data.tokenCount)),
            ])),
        ]
        if let gptq {
            members.append(JSONMember("gptq", .object([
                JSONMember("dampening", number(gptq.dampening)),
                JSONMember("block_size", integer(gptq.blockSize)),
                JSONMember("actorder", gptq.activationOrder ? .string("static") : .null),
                JSONMember("hessian", .string("of the smoothed inputs")),
                JSONMember("round_to_nearest", .array(result.outcomes.filter(\.roundToNearest).map { JSONValue.string($0.name) })),
            ])))
        }
        members.append(JSONMember("seconds", number((result.layerSeconds.reduce(0, +) * 100).rounded() / 100)))
        members.append(JSONMember("tool", .string("quantize")))
        return CalibratedWeights(method: label, activationOrder: gptq?.activationOrder == true ? "static" : nil, record: .object(members),
                                 tensor: { tensors[$0] }, smoothed: { smoothed[$0] })
    }
}
