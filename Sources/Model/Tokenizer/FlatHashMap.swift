import Foundation

/// An open-addressing hash map from 64-bit keys to 64-bit values, for the tokenizers' hot lookups
/// (merge rules by token pair, trie edges by node and byte): one multiply to hash and linear probing
/// over flat arrays, where `Dictionary` pays for SipHash and generic buckets on every probe.
///
/// `UInt64.max` is reserved as the empty marker and cannot be a key (pair and edge keys never are).
struct FlatHashMap: Sendable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private var mask: Int
    private var shift: UInt64
    /// How many keys it holds.
    private(set) var count = 0

    private static let empty = UInt64.max

    /// An empty map sized for about `capacity` keys.
    init(capacity: Int = 0) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = [UInt64](repeating: Self.empty, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
        shift = UInt64(64 - size.trailingZeroBitCount)
    }

    @inline(__always) private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The value of `key`, or nil.
    @inline(__always) func value(_ key: UInt64) -> UInt64? {
        keys.withUnsafeBufferPointer { keys -> UInt64? in
            var index = slot(key)
            while true {
                let found = keys[index]
                if found == key { return values.withUnsafeBufferPointer { $0[index] } }
                if found == Self.empty { return nil }
                index = (index + 1) & mask
            }
        }
    }

    /// Sets `key` to `value` unless it is already present; returns whether it was inserted.
    @discardableResult
    mutating func insertIfAbsent(_ key: UInt64, _ value: UInt64) -> Bool {
        precondition(key != Self.empty, "FlatHashMap reserves UInt64.max")
        if (count + 1) * 2 > keys.count { grow() }
        var index = slot(key)
        while true {
            let found = keys[index]
            if found == key { return false }
            if found == Self.empty {
                keys[index] = key
                values[index] = value
                count += 1
                return true
            }
            index = (index + 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        let size = keys.count * 2
        keys = [UInt64](repeating: Self.empty, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
        shift = UInt64(64 - size.trailingZeroBitCount)
        count = 0
        for (key, value) in zip(oldKeys, oldValues) where key != Self.empty { insertIfAbsent(key, value) }
    }
}

/// Byte strings → ids by a 64-bit FNV-1a hash in a ``FlatHashMap``, the stored bytes checked on a
/// hit; strings whose hash collides with an earlier one go to an ordinary dictionary.
struct ByteStringIndex: Sendable {
    private var table: FlatHashMap
    private var strings: [[UInt8]] = []
    private var overflow: [[UInt8]: Int32] = [:]

    /// An empty index sized for about `capacity` strings.
    init(capacity: Int = 0) { table = FlatHashMap(capacity: capacity) }

    @inline(__always) static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash == UInt64.max ? 0 : hash
    }

    /// Adds `bytes` → `id` unless `bytes` is already present.
    mutating func insert(_ bytes: [UInt8], _ id: Int32) {
        if lookup(bytes) != nil { return }
        let hash = bytes.withUnsafeBufferPointer { Self.hash($0) }
        if table.insertIfAbsent(hash, UInt64(strings.count) << 32 | UInt64(UInt32(bitPattern: id))) {
            strings.append(bytes)
        } else {
            overflow[bytes] = id
        }
    }

    /// The id of `bytes`, or nil.
    @inline(__always) func lookup(_ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBufferPointer { lookup($0) }
    }

    /// The id of `bytes`, or nil.
    @inline(__always) func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        if let packed = table.value(Self.hash(bytes)) {
            let stored = strings[Int(packed >> 32)]
            if stored.count == bytes.count && stored.withUnsafeBufferPointer({ $0.elementsEqual(bytes) }) {
                return Int32(bitPattern: UInt32(truncatingIfNeeded: packed))
            }
        }
        return overflow.isEmpty ? nil : overflow[Array(bytes)]
    }
}

/// The ids of words already tokenized during one `encode` call, so a text's repeated words are
/// segmented once: hash → entry in a ``FlatHashMap``, the word's bytes checked on a hit. Words and
/// ids live in two flat buffers, so a hit costs no reference counting.
struct WordCache {
    private var table = FlatHashMap(capacity: 4096)
    private var wordBytes: [UInt8] = []
    /// Per entry: start and end in ``wordBytes``, start and end in ``ids``.
    private var entries: [(Int, Int, Int, Int)] = []
    private var ids: [Int32] = []

    /// Words longer than this are not cached.
    static let maximumLength = 64

    /// Appends the cached ids of `word` to `output` and returns true, or returns false.
    mutating func lookup(_ word: UnsafeBufferPointer<UInt8>, hash: UInt64, into output: inout [Int32]) -> Bool {
        guard let entry = table.value(hash) else { return false }
        let (wordStart, wordEnd, idStart, idEnd) = entries[Int(entry)]
        guard wordEnd - wordStart == word.count else { return false }
        let equal = wordBytes.withUnsafeBufferPointer { stored in
            memcmp(stored.baseAddress! + wordStart, word.baseAddress!, word.count) == 0
        }
        guard equal else { return false }
        ids.withUnsafeBufferPointer { output.append(contentsOf: UnsafeBufferPointer(rebasing: $0[idStart..<idEnd])) }
        return true
    }

    /// Remembers `result` as the ids of `word` (the first word with a given hash wins).
    mutating func insert(_ word: UnsafeBufferPointer<UInt8>, hash: UInt64, result: ArraySlice<Int32>) {
        guard !word.isEmpty, table.insertIfAbsent(hash, UInt64(entries.count)) else { return }
        let wordStart = wordBytes.count
        wordBytes.append(contentsOf: word)
        let idStart = ids.count
        ids.append(contentsOf: result)
        entries.append((wordStart, wordBytes.count, idStart, ids.count))
    }
}
