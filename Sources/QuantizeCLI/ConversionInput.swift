import Foundation
import Formats
import Model
import Quantize

/// Wiring of the model conversion into `quantize --to TYPE DIR`: a Hugging Face model directory
/// with a GGUF target gets its ``ConversionPlan`` from the Model module; the plan's refusals come
/// from config.json and the tokenizer files, before any weight is read.
enum ConversionInput {
    /// The plan when `input` is a safetensors model directory (or its index) and `target` writes
    /// GGUF; nil otherwise (the job then refuses or runs as before).
    static func plan(input: String, target: QuantizeTarget) throws -> ConversionPlan? {
        guard target.schemeName.descriptor.container == .gguf else { return nil }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else { return nil }
        let directory: String
        if isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: input)) ?? []
            guard names.contains(where: { $0.hasSuffix(".safetensors") || $0.hasSuffix(".safetensors.index.json") }) else { return nil }
            directory = input
        } else if input.hasSuffix(".safetensors.index.json") {
            directory = (input as NSString).deletingLastPathComponent.isEmpty ? "." : (input as NSString).deletingLastPathComponent
        } else {
            return nil
        }
        return try LlamaConversion.plan(directory: directory) { try Checkpoint(path: input) }
    }
}
