import Testing
@testable import Model

@Suite("model errors")
struct ModelErrorTests {
    @Test("an unsupported architecture names the path, the architecture and what is supported")
    func unsupportedArchitectureMessage() {
        let error = ModelError.unsupportedArchitecture(path: "m/config.json", architecture: "GPTNeoX", supported: ["llama", "qwen2"])
        #expect(error.description.contains("m/config.json") && error.description.contains("GPTNeoX") && error.description.contains("llama, qwen2"))
    }
}
