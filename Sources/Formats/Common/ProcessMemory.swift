import Foundation

/// Memory figures of the running process, read from /proc on Linux.
public enum ProcessMemory {
    /// Peak resident set size in bytes (`VmHWM`), or nil where /proc is unavailable.
    public static func peakResidentBytes() -> Int? { statusField("VmHWM:") }

    /// Current resident set size in bytes (`VmRSS`), or nil where /proc is unavailable.
    public static func residentBytes() -> Int? { statusField("VmRSS:") }

    private static func statusField(_ field: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field) {
            let digits = line.dropFirst(field.count).filter(\.isNumber)
            return Int(digits).map { $0 * 1024 }
        }
        return nil
    }
}
