import Foundation
import Formats
import FuzzSupport
import Quantize
import Testing

/// One regression test per fuzzing finding (fuzz/README.md lists them): the input is built here,
/// and the product must refuse it with the specific error instead of trapping.
@Suite("fuzz findings")
struct FuzzFindingTests {
    @Test("an INT8 weight with an empty weight_scale is refused, not divided by zero")
    func emptyScalePartIsRefused() {
        // Found by the decoders target: scaleGrid divided the columns by 0 scale groups.
        let tensor = QuantizedTensor(rows: 8, columns: 1, parts: [
            .init(suffix: "weight", type: .dtype(.i8), shape: [8, 1], data: [UInt8](repeating: 1, count: 8)),
            .init(suffix: "weight_scale", type: .dtype(.f32), shape: [0], data: []),
        ])
        #expect {
            _ = try dequantized(tensor, tensorName: "layer.weight")
        } throws: { error in
            guard case QuantizeError.unsupportedLayout(let name, let found)? = error as? QuantizeError else { return false }
            return name == "layer.weight" && found.contains("0 scales")
        }
        // The fuzzer's own input (type byte 39: INT8 with zero points, 8 rows, no scale bytes).
        let outcome = FuzzTarget.decoders.run([0x27, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x00])
        guard case .rejected(let message) = outcome else {
            Issue.record("expected a refusal, got \(outcome)")
            return
        }
        #expect(message.contains("scales"))
    }
}
