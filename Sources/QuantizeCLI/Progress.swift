import Formats
import Foundation

/// Progress on stderr while a long job runs: item i/N, bytes done, rate and ETA, redrawn in place
/// on a terminal and silent otherwise (or with `--quiet`/`--json`).
final class ProgressReporter: @unchecked Sendable {
    private let totalItems: Int
    private let totalBytes: Int
    private let enabled: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var lastWidth = 0
    private let lock = NSLock()

    /// Creates a reporter; it draws only when `enabled` and stderr is a terminal.
    init(totalItems: Int, totalBytes: Int, enabled: Bool) {
        self.totalItems = totalItems
        self.totalBytes = max(totalBytes, 1)
        self.enabled = enabled && isatty(STDERR_FILENO) == 1
    }

    /// Seconds since the reporter was created.
    var elapsedSeconds: Double { Date().timeIntervalSince(start) }

    /// Reports that `item` items and `bytes` input bytes are done; `label` names the current item.
    func update(item: Int, bytes: Int, label: String, force: Bool = false) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(start), 1e-3)
        let rate = Double(bytes) / elapsed
        let fraction = Double(bytes) / Double(totalBytes)
        let eta = bytes > 0 && rate > 0 ? Double(totalBytes - bytes) / rate : -1  // unknown until something is done
        var text = String(format: "[%d/%d] %@ / %@  %.0f%%  %@/s  ETA %@  %@", item, totalItems,
                          Format.bytes(bytes), Format.bytes(totalBytes), fraction * 100,
                          Format.bytes(Int(rate)), Format.duration(eta), label)
        if text.count > 120 { text = String(text.prefix(117)) + "..." }
        let pad = max(0, lastWidth - text.count)
        lastWidth = text.count
        FileHandle.standardError.write(Data(("\r" + text + String(repeating: " ", count: pad)).utf8))
    }

    /// Clears the progress line.
    func finish() {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        FileHandle.standardError.write(Data(("\r" + String(repeating: " ", count: lastWidth) + "\r").utf8))
    }
}

/// Formatting of sizes and durations for people.
enum Format {
    /// `1.23 GB`, `456.7 MB`, `12.0 kB`, `512 B` (decimal units, as disk sizes are sold).
    static func bytes(_ count: Int) -> String {
        let value = Double(count)
        switch abs(count) {
        case ..<1_000: return "\(count) B"
        case ..<1_000_000: return String(format: "%.1f kB", value / 1e3)
        case ..<1_000_000_000: return String(format: "%.1f MB", value / 1e6)
        default: return String(format: "%.2f GB", value / 1e9)
        }
    }

    /// `0.4 s`, `12 s`, `3 min 05 s`, `1 h 02 min`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        if seconds < 1 { return String(format: "%.0f ms", seconds * 1000) }
        if seconds < 10 { return String(format: "%.1f s", seconds) }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return String(format: "%d min %02d s", s / 60, s % 60) }
        return String(format: "%d h %02d min", s / 3600, (s % 3600) / 60)
    }

    /// Writes a line to stderr.
    static func note(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Renders rows as an aligned text table (first row is the header).
    static func table(_ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        // A hostile file's megabyte names would make the table unreadable (and slow): cells are shortened.
        let rows = rows.map { $0.map { DisplayText.shortened($0) } }
        guard let header = rows.first else { return "" }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ row: [String]) -> String {
            row.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: max(0, widths[i] - cell.count))
                return rightAligned.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        var out = [line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
        out += rows.dropFirst().map(line)
        return out.joined(separator: "\n")
    }
}

extension Format {
    /// `1.23B`, `45.6M`, `7.9K`, `512` (parameter counts).
    static func count(_ value: Int) -> String {
        let v = Double(value)
        switch value {
        case ..<1_000: return "\(value)"
        case ..<1_000_000: return String(format: "%.1fK", v / 1e3)
        case ..<1_000_000_000: return String(format: "%.2fM", v / 1e6)
        default: return String(format: "%.2fB", v / 1e9)
        }
    }
}
