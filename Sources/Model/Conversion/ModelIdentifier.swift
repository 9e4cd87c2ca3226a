import Foundation

/// gguf-py's reading of a model id (`Metadata.get_model_id_components`, gguf-py/gguf/metadata.py):
/// `org/Name-Parts-7B-Instruct-v0.2` → full name, organization, basename, finetune, version and
/// size label, by the same regular expressions and annotation passes.
struct ModelIdentifier {
    var fullName: String?
    var organization: String?
    var basename: String?
    var finetune: String?
    var version: String?
    var sizeLabel: String?

    init(_ id: String, totalParameters: Int) {
        if id.contains(" ") {
            fullName = id
            return
        }
        var org: String? = nil
        var model = id
        if let slash = id.firstIndex(of: "/") {
            org = String(id[..<slash])
            model = String(id[id.index(after: slash)...])
        }
        if let o = org, o.first == "." { org = nil }
        fullName = model
        organization = org

        var parts = model.split(separator: "-", omittingEmptySubsequences: true).map(String.init)
        var types = [Set<String>](repeating: [], count: parts.count)
        for i in parts.indices {
            var part = parts[i]
            if Self.fullMatch(#"(v|iter)?\d+([.]\d+)*"#, part) {
                types[i].insert("version")
            } else if Self.fullMatch(#"i?q\d(_\w)*|b?fp?(16|32)"#, part) {
                types[i].insert("type")
                parts[i] = part.uppercased()
            } else if i > 0, Self.fullMatch(#"(([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)"#, part) {
                part = part.replacingOccurrences(of: "_", with: ".")
                var chars = Array(part)
                if let last = chars.last, last.isASCII, last.isNumber, chars.count >= 2 {
                    chars = Array(chars.dropLast(2)) + ["."] + [chars[chars.count - 1], chars[chars.count - 2]]
                }
                if chars.count > 1, chars[chars.count - 2].isASCII, chars[chars.count - 2].isNumber, "kmbt".contains(chars[chars.count - 1]) {
                    chars[chars.count - 1] = Character(chars[chars.count - 1].uppercased())
                }
                part = String(chars)
                if totalParameters != 0, let value = Double(String(chars.dropLast())), let last = chars.last {
                    let exponent = Array(" KMBT").firstIndex(of: last).map { $0 } ?? -1
                    let label = value * pow(1000, Double(exponent))
                    let total = Double(totalParameters)
                    if (totalParameters < 0 && label < Double(abs(totalParameters) / 8))
                        || (totalParameters > 0 && abs(label - total) > Double(7 * totalParameters / 8)) {
                        types[i].insert("finetune")
                        chars[chars.count - 1] = Character(chars[chars.count - 1].lowercased())
                        part = String(chars)
                    }
                }
                if types[i].isEmpty { types[i].insert("size_label") }
                parts[i] = part
            } else if i > 0, Self.fullMatch("chat|instruct|vision|lora", part) {
                if totalParameters < 0 && part.lowercased() == "lora" { types[i].insert("type") } else { types[i].insert("finetune") }
            }
        }
        if zip(parts, types).contains(where: { $1.contains("size_label") && $0.contains { $0.isNumber } }) {
            for i in parts.indices where types[i].contains("size_label") && parts[i].allSatisfy(\.isLetter) {
                types[i].remove("size_label")
            }
        }
        var atStart = true
        for i in parts.indices {
            if atStart && ((types[i].isEmpty && parts[i].first?.isLetter == true) || types[i].contains("version")) {
                types[i].insert("basename")
            } else {
                atStart = false
                if types[i].isEmpty { types[i].insert("finetune") }
            }
        }
        for i in parts.indices.reversed() {
            if types[i].contains("basename") && types[i].count > 1 { types[i].remove("basename") } else { break }
        }
        func joined(_ type: String, excluding: String? = nil) -> String? {
            var seen: [String] = []
            for (part, set) in zip(parts, types) where set.contains(type) && !(excluding.map { set.contains($0) } ?? false) {
                if type != "size_label" || !seen.contains(part) { seen.append(part) }
            }
            return seen.isEmpty ? nil : seen.joined(separator: "-")
        }
        basename = joined("basename")
        sizeLabel = joined("size_label")
        finetune = joined("finetune")
        version = joined("version", excluding: "basename")
        if sizeLabel == nil && finetune == nil && version == nil { basename = nil }
    }

    /// `Metadata.id_to_title`: words that are all lower case (and not a version or number) title-cased.
    static func title(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "-", with: " ")
            .split(whereSeparator: { $0.isWhitespace }).map { word -> String in
                let w = String(word)
                let cased = w.filter { $0.isUppercase || $0.isLowercase }
                let isLower = !cased.isEmpty && cased.allSatisfy(\.isLowercase)
                guard isLower, !fullMatch(#"^(v\d+(?:\.\d+)*|\d.*)$"#, w) else { return w }
                return pythonTitle(w)
            }.joined(separator: " ")
    }

    /// Python's `str.title()`: a cased letter after a non-cased character is upper-cased, others lower-cased.
    static func pythonTitle(_ word: String) -> String {
        var out = "", previousCased = false
        for c in word {
            let isCased = c.isUppercase || c.isLowercase
            out += isCased ? (previousCased ? c.lowercased() : c.uppercased()) : String(c)
            previousCased = isCased
        }
        return out
    }

    /// gguf-py's `size_label` for a dense model (`model_weight_count_rounded_notation`, two digits at least).
    static func sizeLabel(_ count: Int) -> String {
        let value = Double(count)
        let (scaled, suffix): (Double, String) = value > 1e12 ? (value * 1e-12, "T") : value > 1e9 ? (value * 1e-9, "B")
            : value > 1e6 ? (value * 1e-6, "M") : (value * 1e-3, "K")
        let rounded = String(Int(scaled.rounded(.toNearestOrEven)))
        let digits = rounded.drop { $0 == "0" }.count
        let fix = max(2 - digits, 0)
        return String(format: "%.\(fix)f", scaled) + suffix
    }

    static func fullMatch(_ pattern: String, _ text: String) -> Bool {
        guard let regex = try? NSRegularExpression(pattern: "^(?:" + pattern + ")$", options: [.caseInsensitive]) else { return false }
        return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}
