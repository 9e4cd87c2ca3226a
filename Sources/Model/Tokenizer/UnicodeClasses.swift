/// The character classes the pre-tokenizer regexes use (`\p{L}`, `\p{N}`, `\s`), looked up per
/// Unicode scalar from a table built once, so splitting a text never asks the Unicode database per
/// character.
///
/// `\p{L}` is General_Category L* (Lu, Ll, Lt, Lm, Lo), `\p{N}` is N* (Nd, Nl, No) and `\s` is the
/// White_Space property — the definitions of Oniguruma (the `tokenizers` regex engine) and of
/// llama.cpp's unicode tables.
enum UnicodeClasses {
    /// A letter (`\p{L}`).
    static let letter: UInt8 = 1
    /// A number (`\p{N}`).
    static let number: UInt8 = 2
    /// White space (`\s`).
    static let whitespace: UInt8 = 4

    /// Classes of the Basic Multilingual Plane, one byte per scalar.
    private static let basicPlane: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 0x10000)
        for value in 0..<0x10000 {
            guard let scalar = Unicode.Scalar(UInt32(value)) else { continue }
            table[value] = computeClass(scalar)
        }
        return table
    }()

    private static func computeClass(_ scalar: Unicode.Scalar) -> UInt8 {
        let properties = scalar.properties
        if properties.isWhitespace { return whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return 0
        }
    }

    /// The class bits of `value` (0 for anything that is neither letter, number nor white space).
    @inline(__always)
    static func classOf(_ value: UInt32) -> UInt8 {
        if value < 0x10000 { return basicPlane.withUnsafeBufferPointer { $0[Int(value)] } }
        guard let scalar = Unicode.Scalar(value) else { return 0 }
        return computeClass(scalar)
    }

    /// The classes of every scalar of `scalars`, in order.
    static func classes(of scalars: UnsafeBufferPointer<UInt32>) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: scalars.count) { buffer, count in
            basicPlane.withUnsafeBufferPointer { table in
                for index in 0..<scalars.count {
                    let value = scalars[index]
                    buffer[index] = value < 0x10000 ? table[Int(value)] : classOf(value)
                }
            }
            count = scalars.count
        }
    }
}
