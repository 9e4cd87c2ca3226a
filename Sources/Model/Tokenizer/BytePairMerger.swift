/// Byte-pair merging of one word by merge rank, as `tokenizers`' `Word::merge_all` and llama.cpp's
/// `llm_tokenizer_bpe_session` do it: repeatedly merge the adjacent pair with the lowest rank, the
/// leftmost one among equal ranks, until no pair has a merge rule.
///
/// Symbols live in a linked list and candidate pairs in a binary heap, so a long word (a run of
/// thousands of spaces is one pre-token) costs O(n log n), not O(n²).
struct BytePairMerger {
    /// A merge rule: its rank (position in the merges list) and the id of the merged token.
    struct Rule: Sendable {
        var rank: Int32
        var result: Int32
    }

    /// The merge rules keyed by token pair, in a ``FlatHashMap``.
    struct Rules: Sendable {
        private var table: FlatHashMap

        /// No rules, sized for about `capacity`.
        init(capacity: Int = 0) { table = FlatHashMap(capacity: capacity) }

        /// Adds the rule for (`left`, `right`) unless the pair already has one (the first, lowest
        /// rank, wins as in both references).
        mutating func add(_ left: Int32, _ right: Int32, _ rule: Rule) {
            table.insertIfAbsent(BytePairMerger.key(left, right),
                                 UInt64(UInt32(bitPattern: rule.rank)) << 32 | UInt64(UInt32(bitPattern: rule.result)))
        }

        /// The rule merging `left` and `right`, or nil.
        @inline(__always) func rule(_ left: Int32, _ right: Int32) -> Rule? {
            guard left >= 0, right >= 0, let packed = table.value(BytePairMerger.key(left, right)) else { return nil }
            return Rule(rank: Int32(bitPattern: UInt32(truncatingIfNeeded: packed >> 32)),
                        result: Int32(bitPattern: UInt32(truncatingIfNeeded: packed)))
        }
    }

    private struct Candidate {
        var rank: Int32
        var position: Int32
        var left: Int32
        var right: Int32

        @inline(__always) static func < (a: Candidate, b: Candidate) -> Bool {
            a.rank != b.rank ? a.rank < b.rank : a.position < b.position
        }
    }

    private var ids: [Int32] = []
    private var next: [Int32] = []
    private var previous: [Int32] = []
    private var heap: [Candidate] = []

    @inline(__always) static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Merges `symbols` (initial token ids, in order) with `rules` and appends the result to `output`.
    mutating func merge(_ symbols: UnsafeBufferPointer<Int32>, rules: Rules, into output: inout [Int32]) {
        let count = symbols.count
        if count == 0 { return }
        if count == 1 { output.append(symbols[0]); return }
        ids.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        previous.removeAll(keepingCapacity: true)
        heap.removeAll(keepingCapacity: true)
        ids.append(contentsOf: symbols)
        for index in 0..<count {
            next.append(index + 1 < count ? Int32(index + 1) : -1)
            previous.append(Int32(index - 1))
        }
        for index in 0..<(count - 1) {
            if let rule = rules.rule(ids[index], ids[index + 1]) {
                push(Candidate(rank: rule.rank, position: Int32(index), left: ids[index], right: ids[index + 1]))
            }
        }
        while let top = pop() {
            let position = Int(top.position)
            // Stale when the left symbol was merged away or changed, or its right neighbour changed.
            guard ids[position] == top.left else { continue }
            let rightPosition = Int(next[position])
            guard rightPosition >= 0, ids[rightPosition] == top.right else { continue }
            guard let rule = rules.rule(top.left, top.right) else { continue }
            ids[position] = rule.result
            ids[rightPosition] = -1
            let after = next[rightPosition]
            next[position] = after
            if after >= 0 { previous[Int(after)] = Int32(position) }
            let before = previous[position]
            if before >= 0, let left = rules.rule(ids[Int(before)], ids[position]) {
                push(Candidate(rank: left.rank, position: before, left: ids[Int(before)], right: ids[position]))
            }
            if after >= 0, let right = rules.rule(ids[position], ids[Int(after)]) {
                push(Candidate(rank: right.rank, position: Int32(position), left: ids[position], right: ids[Int(after)]))
            }
        }
        var index = 0
        while index >= 0 {
            output.append(ids[index])
            index = Int(next[index])
        }
    }

    private mutating func push(_ candidate: Candidate) {
        heap.append(candidate)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if heap[child] < heap[parent] {
                heap.swapAt(child, parent)
                child = parent
            } else {
                break
            }
        }
    }

    private mutating func pop() -> Candidate? {
        guard let first = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return first }
        heap[0] = last
        var parent = 0
        let count = heap.count
        while true {
            let left = 2 * parent + 1
            if left >= count { break }
            var smallest = left
            if left + 1 < count && heap[left + 1] < heap[left] { smallest = left + 1 }
            if heap[smallest] < heap[parent] {
                heap.swapAt(smallest, parent)
                parent = smallest
            } else {
                break
            }
        }
        return first
    }
}
