/// A bounds-checked little-endian cursor over bytes that came from a file.
///
/// Every read checks the remaining length first and throws ``FormatError`` code `.truncated`
/// naming the offset and what was being read, so a short or corrupt file never traps.
public struct ByteReader {
    /// The bytes being read.
    public let bytes: UnsafeRawBufferPointer
    /// The file the bytes come from, for error messages.
    public let path: String
    /// The offset of the next byte to read.
    public private(set) var offset: Int

    /// Creates a reader positioned at `offset`.
    public init(_ bytes: UnsafeRawBufferPointer, path: String, offset: Int = 0) {
        self.bytes = bytes
        self.path = path
        self.offset = offset
    }

    /// Bytes left after the cursor.
    public var remaining: Int { bytes.count - offset }

    /// Throws `.truncated` unless `count` more bytes are available.
    public func require(_ count: Int, for what: @autoclosure () -> String) throws(FormatError) {
        guard count >= 0, count <= remaining else {
            throw FormatError(
                .truncated, path: path, offset: offset,
                message: "the file ends while reading \(what()): \(count) bytes needed, \(max(remaining, 0)) left "
                    + "(the file is \(formatByteCount(bytes.count)))",
                remedy: "the file is truncated; download or copy it again")
        }
    }

    /// Reads a fixed-width little-endian integer.
    public mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(FormatError) -> T {
        try require(MemoryLayout<T>.size, for: what())
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return value
    }

    /// Reads a little-endian IEEE float32.
    public mutating func readFloat(_ what: @autoclosure () -> String) throws(FormatError) -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    /// Reads a little-endian IEEE float64.
    public mutating func readDouble(_ what: @autoclosure () -> String) throws(FormatError) -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    /// Returns the next `count` bytes without copying and advances past them.
    public mutating func take(_ count: Int, _ what: @autoclosure () -> String) throws(FormatError) -> UnsafeRawBufferPointer {
        try require(count, for: what())
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        offset += count
        return slice
    }

    /// Moves the cursor forward by `count` bytes.
    public mutating func skip(_ count: Int, _ what: @autoclosure () -> String) throws(FormatError) {
        try require(count, for: what())
        offset += count
    }
}

/// Overflow-checked arithmetic on sizes that come from files.
public enum CheckedSize {
    /// The product of `values`, or nil if it overflows `Int` or any value is negative.
    public static func product<S: Sequence<Int>>(_ values: S) -> Int? {
        var result = 1
        for value in values {
            guard value >= 0 else { return nil }
            let (next, overflow) = result.multipliedReportingOverflow(by: value)
            if overflow { return nil }
            result = next
        }
        return result
    }

    /// `a + b`, or nil on overflow.
    public static func sum(_ a: Int, _ b: Int) -> Int? {
        let (value, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : value
    }

    /// `a * b`, or nil on overflow.
    public static func multiply(_ a: Int, _ b: Int) -> Int? {
        let (value, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : value
    }

    /// `value` rounded up to a multiple of `alignment` (> 0), or nil on overflow.
    public static func align(_ value: Int, to alignment: Int) -> Int? {
        let remainder = value % alignment
        return remainder == 0 ? value : sum(value, alignment - remainder)
    }
}
