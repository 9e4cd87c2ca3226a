import Foundation

/// GPT-2's byte-to-character table (`bytes_to_unicode`): every byte is written in a vocabulary as
/// one printable character, the printable bytes as themselves and the others as U+0100 onwards.
enum ByteLevel {
    /// The character (Unicode scalar value) that stands for each byte.
    static let characterOfByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var extra: UInt32 = 0
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = 256 + extra
                extra += 1
            }
        }
        return table
    }()

    /// The byte each table character stands for, indexed by scalar value (0..<324); -1 elsewhere.
    static let byteOfCharacter: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (byte, character) in characterOfByte.enumerated() { table[Int(character)] = Int16(byte) }
        return table
    }()

    /// The bytes a vocabulary string stands for, or nil when it holds a character outside the table
    /// (an added token written as plain text).
    static func bytes(of token: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.utf8.count)
        for scalar in token.unicodeScalars {
            let value = Int(scalar.value)
            guard value < byteOfCharacter.count, byteOfCharacter[value] >= 0 else { return nil }
            bytes.append(UInt8(byteOfCharacter[value]))
        }
        return bytes
    }
}

/// A Unicode normalization applied to text before pre-tokenization (`tokenizers`' normalizers).
public enum TextNormalization: String, Sendable {
    /// No normalization.
    case none
    /// Canonical composition (NFC), as Qwen2's tokenizer.json declares.
    case nfc
    /// Compatibility composition (NFKC).
    case nfkc
    /// Canonical decomposition (NFD).
    case nfd
    /// Compatibility decomposition (NFKD).
    case nfkd
}

extension TextNormalization {
    /// The normalized form of the UTF-8 `bytes`.
    ///
    /// Only the stretches that hold non-ASCII characters, each with the ASCII character before it
    /// (which a following combining mark may compose with), go through Foundation's normalization:
    /// an ASCII character never composes with what precedes it and is its own normal form, so the
    /// text splits there without changing the result, and ASCII text costs a copy.
    func apply(to bytes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        if self == .none { return Array(bytes) }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        let count = bytes.count
        while index < count {
            if bytes[index] < 0x80 {
                // Copy ASCII up to the character before the next non-ASCII byte.
                var next = index
                while next < count && bytes[next] < 0x80 { next += 1 }
                let islandStart = next < count ? next - 1 : next
                if islandStart > index { output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<islandStart])) }
                index = max(islandStart, index)
                if next >= count { break }
            }
            let start = index
            var end = index + 1
            while end < count && bytes[end] >= 0x80 { end += 1 }
            let island = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            let normalized: String
            switch self {
            case .none: normalized = island
            case .nfc: normalized = island.precomposedStringWithCanonicalMapping
            case .nfkc: normalized = island.precomposedStringWithCompatibilityMapping
            case .nfd: normalized = island.decomposedStringWithCanonicalMapping
            case .nfkd: normalized = island.decomposedStringWithCompatibilityMapping
            }
            output.append(contentsOf: normalized.utf8)
            index = end
        }
        return output
    }
}
