import Foundation
import Formats
import Testing
import TestSupport

@Suite("integrity manifest")
struct IntegrityManifestTests {
    @Test("swift-crypto's SHA-256 gives the FIPS 180-4 known answers")
    func knownAnswers() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(SHA256.hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("OutputFile hashes the bytes while they stream through it, across buffer flushes")
    func outputFileHashesWhileWriting() throws {
        let directory = try Fixtures.temporaryDirectory("manifest-stream")
        let path = directory.appendingPathComponent("out.bin").path
        let file = try OutputFile(path: path)
        var expected: [UInt8] = []
        for round in 0..<5 {
            // Small writes, a write larger than the 4 MiB buffer, padding and integers.
            let chunk = [UInt8](repeating: UInt8(round), count: round == 2 ? 5 << 20 : 1000 + round)
            try file.write(chunk)
            expected += chunk
        }
        try file.writeZeros(77)
        expected += [UInt8](repeating: 0, count: 77)
        try file.write(integer: UInt32(0xDEADBEEF))
        expected += [0xEF, 0xBE, 0xAD, 0xDE]
        #expect(file.sha256 == nil)
        try file.commit()
        #expect(file.sha256 == SHA256.hex(expected))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(expected))
    }

    @Test("a manifest round-trips and verify names the file whose bytes changed")
    func verifyNamesTheChangedFile() throws {
        let directory = try Fixtures.temporaryDirectory("manifest-verify")
        var entries: [IntegrityManifest.FileEntry] = []
        for name in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
            let file = try OutputFile(path: directory.appendingPathComponent(name).path)
            try file.write(Array(name.utf8))
            try file.commit()
            entries.append(try #require(IntegrityManifest.entry(for: file, relativeTo: directory.path)))
        }
        let manifest = IntegrityManifest(toolVersion: "test", scheme: "int4", options: ["group_size": "128"], files: entries,
                                         inputs: [.init(name: "in.safetensors", bytes: 3, sha256: SHA256.hex([1, 2, 3]))])
        let manifestPath = IntegrityManifest.path(forOutput: directory.path)
        #expect(manifestPath.hasSuffix("/" + IntegrityManifest.directoryFileName))
        try manifest.write(to: manifestPath)
        let read = try IntegrityManifest.read(manifestPath)
        #expect(read == manifest)
        #expect(try read.verify(relativeTo: directory.path) == 2)
        #expect(try IntegrityManifest.verifyChecksums(of: directory.path, files: []).count == 1)

        // Same size, one byte different: the second shard is named.
        let second = directory.appendingPathComponent(entries[1].name)
        var bytes = try [UInt8](Data(contentsOf: second))
        bytes[3] ^= 1
        try Data(bytes).write(to: second)
        #expect {
            try read.verify(relativeTo: directory.path)
        } throws: { error in
            guard let error = error as? FormatError else { return false }
            return error.code == .checksumDiffers && error.path == second.path && error.description.contains("SHA-256")
        }
        // Truncated: the size says so first.
        try Data(bytes.dropLast()).write(to: second)
        #expect {
            try read.verify(relativeTo: directory.path)
        } throws: { error in
            (error as? FormatError)?.code == .checksumDiffers && (error as? FormatError)?.message.contains("bytes") == true
        }
    }

    @Test("a manifest that lists a path outside the output is refused")
    func manifestPathEscapeIsRefused() throws {
        let directory = try Fixtures.temporaryDirectory("manifest-escape")
        let manifest = IntegrityManifest(toolVersion: "test", scheme: nil,
                                         files: [.init(name: "../etc/passwd", bytes: 1, sha256: SHA256.hex([0]))])
        let path = directory.appendingPathComponent(IntegrityManifest.directoryFileName).path
        try manifest.write(to: path)
        #expect {
            _ = try IntegrityManifest.read(path)
        } throws: { error in
            (error as? FormatError)?.code == .invalidManifest
        }
    }

    @Test("a .sha256 sidecar is checked when present and names the file that differs")
    func sidecarIsVerified() throws {
        let directory = try Fixtures.temporaryDirectory("manifest-sidecar")
        let file = directory.appendingPathComponent("model.gguf")
        try Data("GGUF bytes".utf8).write(to: file)
        #expect(try IntegrityManifest.verifySidecar(of: file.path) == false)
        try Data("\(SHA256.hex(Array("GGUF bytes".utf8)))  model.gguf\n".utf8).write(to: URL(fileURLWithPath: file.path + ".sha256"))
        #expect(try IntegrityManifest.verifySidecar(of: file.path))
        try Data("GGUF bytez".utf8).write(to: file)
        #expect {
            try IntegrityManifest.verifySidecar(of: file.path)
        } throws: { error in
            (error as? FormatError)?.code == .checksumDiffers && (error as? FormatError)?.path == file.path
        }
    }
}
