import ArgumentParser
import Formats
import Quantize

/// The accuracy-check options shared by `quantize --to` and `quantize verify`.
struct CheckOptions: ParsableArguments {
    @Option(help: "Maximum relative output error per tensor (default: per scheme, formats/accuracy-report.md).")
    var maxError: Double?

    @Option(help: ArgumentHelp("Also write the accuracy report as a self-contained HTML file.", valueName: "file.html"))
    var report: String?

    @Option(help: ArgumentHelp("Probe activations: a safetensors file with one [tokens, in] tensor per layer name, or one for all.",
                               valueName: "file.safetensors"))
    var activations: String?

    @Option(help: "Probe rows of generated activations.")
    var probeRows: Int = ProbeActivations.defaultRows

    @Flag(help: "Add a few large outlier channels to the generated probe activations, as real activations have.")
    var outliers = false

    func validate() throws {
        if probeRows <= 0 { throw ValidationError("--probe-rows must be positive") }
        if let maxError, !(maxError > 0) { throw ValidationError("--max-error must be a positive number") }
    }

    /// The probe source these options describe (reading `--activations` when given).
    func source() throws -> ProbeActivationSource {
        var named: [String: ProbeActivations] = [:]
        var shared: ProbeActivations? = nil
        if let activations {
            let file = try SafetensorsFile(path: activations)
            for tensor in file.tensors {
                guard tensor.shape.count == 2, let columns = tensor.shape.last, columns > 0, tensor.shape[0] > 0 else {
                    throw QuantizeJobError(.invalidActivations,
                        "\(activations): tensor '\(tensor.name)' has shape \(tensor.shape); activations must be [tokens, in_features] with at least one token")
                }
                var values = [Float](repeating: 0, count: tensor.elementCount)
                try values.withUnsafeMutableBufferPointer { buffer throws(FormatError) in
                    try ElementConversion.toFloat32(file.readData(for: tensor), from: tensor.dtype, into: buffer)
                }
                let probe = try ProbeActivations(values: values, rows: tensor.shape[0], columns: columns)
                named[tensor.name] = probe
                if file.tensors.count == 1 { shared = probe }
            }
        }
        return ProbeActivationSource(rows: probeRows, outliers: outliers ? OutlierChannels() : nil, named: named, shared: shared)
    }

    /// Writes the HTML page of `reports` (one per scheme compared) when `--report` was given.
    /// `original` and `checkpoints` (one per report) are named on the page.
    func writeHTML(_ reports: [AccuracyReport], title: String, original: String? = nil, checkpoints: [String]? = nil) throws {
        guard let path = self.report else { return }
        try OutputFile.write(Array(AccuracyReport.html(reports: reports, title: title, original: original, checkpoints: checkpoints).utf8),
                             to: path, overwrite: true)
    }
}
