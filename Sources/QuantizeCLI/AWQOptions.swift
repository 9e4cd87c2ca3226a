import ArgumentParser
import Foundation
import Formats
import Model
import Quantize

/// `--method awq`: the checks before any work, and the run that hands the smoothed, quantized
/// tensors to the job.
extension CalibrationOptions {
    /// Rejects what `--method awq` cannot do.
    func validateAWQ(scheme: SchemeName, search: Bool) throws {
        guard scheme == .int4 || scheme == .int8 else {
            throw ValidationError("--method awq applies to int4 and int8 (it scales their input channels before round-to-nearest), not \(scheme.rawValue)")
        }
        guard calibration != nil else {
            throw ValidationError("--method awq needs calibration data: --calibration FILE (a text, or a JSON array of token ids)")
        }
        if search { throw ValidationError("--search chooses clipping; --method awq quantizes its smoothed weights round-to-nearest with the observer's min-max scales, as llm-compressor does") }
        if actOrder { throw ValidationError("--act-order applies to --method gptq, not awq") }
        if calibrationSamples < 1 { throw ValidationError("--calibration-samples must be positive") }
        if calibrationLength < 2 { throw ValidationError("--calibration-length must be 2 or more") }
    }

    /// Runs AWQ over the tensors `job` quantizes and returns them, and the norms it changed, for the job to write.
    func calibrateAWQ(job: QuantizeJob, input: String, threads: Int?, verbose: Bool) throws -> CalibratedWeights? {
        guard let path = calibration else { return nil }
        QuantizeCommand.EvalCommand.restartWithFasterBLASIfNeeded()
        let settings = job.settings
        let weights = try ModelWeights(checkpoint: job.checkpoint, weightsOnly: true)
        let config = weights.configuration
        try AWQCalibration.checkMappings(config, path: input)
        let tokenizer = try? TokenizerLoader.load(checkpoint: job.checkpoint)
        let data = try CalibrationSet.load(path: path, tokenizer: tokenizer, vocabularySize: config.vocabularySize,
                                           samples: calibrationSamples, length: calibrationLength)
        let names = Set(job.tensors.filter(\.decision.quantize).map(\.source.name))
        let awq = AWQSettings()
        if verbose {
            let kept = Double(data.tokenCount * (3 * config.hiddenSize + config.intermediateSize) * 4)
            Format.note("awq: \(data.windows.count) windows × \(calibrationLength) tokens (\(data.tokenCount) tokens, \(data.source)); "
                        + "\(config.layerCount) layers, 4 mappings each searched on \(awq.gridPoints) scale grid points; memory ≈ "
                        + "\(Format.bytes(data.tokenCount * config.hiddenSize * 4)) of hidden states + \(Format.bytes(Int(kept))) of one layer's kept inputs")
            if data.windows.count < calibrationSamples {
                Format.note("awq: the calibration data gave \(data.windows.count) of the \(calibrationSamples) windows asked for")
            }
        }
        let result = try AWQCalibration.run(
            checkpointPath: input, calibration: data, quantize: names,
            settings: AWQCalibration.Settings(scheme: settings.scheme, options: settings.options, awq: awq, threads: threads),
            progress: { done, layers, seconds in
                guard verbose else { return }
                let eta = seconds / Double(done) * Double(layers - done)
                Format.note(String(format: "awq: layer %d/%d done, %.1f s, ETA %.1f s", done, layers, seconds, eta))
            })
        let uncovered = names.subtracting(result.tensors.keys).sorted()
        if verbose, !uncovered.isEmpty {
            Format.note("awq: \(uncovered.count) selected tensor(s) are in no AWQ mapping and are quantized round-to-nearest: \(uncovered.prefix(3).joined(separator: ", "))\(uncovered.count > 3 ? ", …" : "")")
        }
        let tensors = result.tensors, smoothed = result.smoothed
        func number(_ v: Double) -> JSONValue { .number(JSONNumber(v)) }
        func integer(_ v: Int) -> JSONValue { .number(JSONNumber(v)) }
        func rounded(_ v: Double) -> JSONValue { v.isFinite ? number(Double(String(format: "%.4g", v)) ?? v) : .null }
        let record: JSONValue = .object([
            JSONMember("method", .string("awq")),
            JSONMember("duo_scaling", .bool(awq.duoScaling)),
            JSONMember("n_grid", integer(awq.gridPoints)),
            JSONMember("mappings", .array(result.mappings.map { m in
                .object([
                    JSONMember("smooth_layer", .string(m.smooth)),
                    JSONMember("balance_layers", .array(m.balance.map(JSONValue.string))),
                    JSONMember("ratio", rounded(m.point.ratio)),
                    JSONMember("duo_scaling", .bool(m.point.duoScaling)),
                    JSONMember("initial_error", rounded(m.initialLoss)),
                    JSONMember("best_error", rounded(m.bestLoss)),
                ])
            })),
            JSONMember("calibration", .object([
                JSONMember("source", .string(data.source)),
                JSONMember("samples", integer(data.windows.count)),
                JSONMember("sequence_length", integer(calibrationLength)),
                JSONMember("tokens", integer(data.tokenCount)),
            ])),
            JSONMember("seconds", number((result.layerSeconds.reduce(0, +) * 100).rounded() / 100)),
            JSONMember("tool", .string("quantize")),
        ])
        return CalibratedWeights(method: "awq", activationOrder: nil, record: record, tensor: { tensors[$0] }, smoothed: { smoothed[$0] })
    }
}
