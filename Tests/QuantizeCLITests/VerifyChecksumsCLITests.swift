import Foundation
import Formats
import Testing
import TestSupport

@Suite("inspect --verify-checksums")
struct VerifyChecksumsCLITests {
    @Test("a file that matches its .sha256 sidecar passes; a changed byte exits 2 naming the file")
    func sidecarMismatchIsReported() throws {
        let directory = try Fixtures.temporaryDirectory("verify-checksums")
        let copy = directory.appendingPathComponent("v2.gguf")
        let original = try Data(contentsOf: Fixtures.repositoryRoot.appendingPathComponent("fixtures/gguf/v2.gguf"))
        try original.write(to: copy)
        let none = try CLI.run(["inspect", copy.path, "--verify-checksums"])
        #expect(none.status == 0)
        #expect(none.stderr.contains("no quantize-manifest.json or .sha256 sidecar"))

        try Data("\(SHA256.hex([UInt8](original)))  v2.gguf\n".utf8).write(to: URL(fileURLWithPath: copy.path + ".sha256"))
        let good = try CLI.run(["inspect", copy.path, "--verify-checksums"])
        #expect(good.status == 0)
        #expect(good.stderr.contains("v2.gguf matches its .sha256 sidecar"))

        // Change one byte of tensor data (the last byte), which the GGUF reader does not check.
        var changed = [UInt8](original)
        changed[changed.count - 1] ^= 0x55
        try Data(changed).write(to: copy)
        let bad = try CLI.run(["inspect", copy.path, "--verify-checksums"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains(copy.path) && bad.stderr.contains("SHA-256"))
    }
}
