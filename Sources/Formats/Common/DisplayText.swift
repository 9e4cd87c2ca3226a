/// Shortening of names for messages and tables: a hostile file may carry a tensor name or a key
/// of megabytes, and a message or a table must stay a line a person can read, built in time
/// linear in the text.
public enum DisplayText {
    /// The longest name shown whole (characters).
    public static let nameLimit = 120
    /// The longest sentence of a message shown whole (characters): a message whose every word is
    /// short can still quote kilobytes of hostile text between its spaces.
    public static let sentenceLimit = 1000

    /// `name` itself when it has at most `limit` characters, else its start and end around
    /// `…(N characters)…`, so the shown text has about `limit` characters.
    public static func shortened(_ name: String, limit: Int = nameLimit) -> String {
        var count = 0
        for _ in name.unicodeScalars {
            count += 1
            if count > limit { break }
        }
        guard count > limit else { return name }
        let total = name.count
        let keep = max(8, limit / 2 - 12)
        return String(name.prefix(keep)) + "…(\(total) characters)…" + String(name.suffix(keep))
    }

    /// `text` with its long words shortened (``shorteningLongWords(_:limit:)``), then, when still
    /// longer than ``sentenceLimit``, its start and end around `…(N characters)…`.
    public static func sentence(_ text: String) -> String {
        shortened(shorteningLongWords(text), limit: sentenceLimit)
    }

    /// `text` with every run of non-space characters longer than `limit` shortened as
    /// ``shortened(_:limit:)`` does (sentences keep their words; a huge name in them is cut).
    public static func shorteningLongWords(_ text: String, limit: Int = nameLimit) -> String {
        guard text.utf8.count > limit else { return text }
        var result = ""
        var word = Substring()
        var start = text.startIndex
        var index = text.startIndex
        func flush(_ end: String.Index) {
            word = text[start..<end]
            result += word.count > limit ? shortened(String(word), limit: limit) : String(word)
        }
        while index < text.endIndex {
            let character = text[index]
            if character == " " || character == "\n" {
                flush(index)
                result.append(character)
                start = text.index(after: index)
            }
            index = text.index(after: index)
        }
        flush(text.endIndex)
        return result
    }
}
