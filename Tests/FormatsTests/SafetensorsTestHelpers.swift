import Foundation
import Formats
import Testing
import TestSupport

/// Thrown after the failure is recorded, to stop a test whose oracle cannot run.
struct OracleUnavailable: Error {}

/// Runs `tools/oracle_read_safetensors.py` (or another tools/ script) with the repository's
/// `.venv` Python and returns its standard output. Fails the test when the venv is missing.
func runOracle(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
    do {
        return [UInt8](try OraclePython.run("oracle_read_safetensors.py", arguments))
    } catch let failure as OraclePython.Failure {
        Issue.record("\(failure)", sourceLocation: sourceLocation)
        throw OracleUnavailable()
    }
}

/// Compares a file we read with the oracle's listing of it (`{"metadata", "tensors": [...]}`).
func expectMatchesOracleListing(_ file: SafetensorsFile, _ listing: JSONValue,
                                sourceLocation: SourceLocation = #_sourceLocation) {
    let expectedTensors = listing["tensors"]?.array ?? []
    #expect(file.tensors.count == expectedTensors.count, "tensor count of \(file.path)", sourceLocation: sourceLocation)
    for (tensor, expected) in zip(file.tensors, expectedTensors) {
        #expect(tensor.name == expected["name"]?.string, sourceLocation: sourceLocation)
        #expect(tensor.dtype.rawValue == expected["dtype"]?.string, "dtype of \(tensor.name)", sourceLocation: sourceLocation)
        #expect(tensor.shape == (expected["shape"]?.array ?? []).compactMap(\.int), "shape of \(tensor.name)", sourceLocation: sourceLocation)
        let offsets = (expected["data_offsets"]?.array ?? []).compactMap(\.int)
        #expect([tensor.dataOffsets.lowerBound, tensor.dataOffsets.upperBound] == offsets, "offsets of \(tensor.name)", sourceLocation: sourceLocation)
        #expect(SHA256.hex(file.data(for: tensor)) == expected["sha256"]?.string, "bytes of \(tensor.name)", sourceLocation: sourceLocation)
    }
    var expectedMetadata: [String: String]? = nil
    if let members = listing["metadata"]?.object {
        expectedMetadata = Dictionary(uniqueKeysWithValues: members.map { ($0.key, $0.value.string ?? "") })
    }
    #expect(file.metadata == expectedMetadata, "metadata of \(file.path)", sourceLocation: sourceLocation)
}
