import Foundation

extension AccuracyReport {
    /// This report as one self-contained HTML page (see ``html(reports:title:)``).
    public func html(title: String = "Accuracy report") -> String {
        AccuracyReport.html(reports: [self], title: title)
    }

    /// One self-contained HTML page for one or more reports (for example one per scheme): the
    /// verdict, the relative output error per layer (by block index, one line per layer type, one
    /// chart per scheme, the threshold dashed), the error against bits per weight of every scheme
    /// (log scale), the summary by layer type and every tensor worst first.
    ///
    /// Inline CSS and SVG only: no script, no external reference of any kind, so the file opens
    /// offline and renders the same in a headless browser (tools/render_report.sh). Tensor names
    /// and scheme names are HTML-escaped.
    ///
    /// - Parameters:
    ///   - original: the checkpoint the reports were measured against, named on the page.
    ///   - checkpoints: the quantized checkpoint of each report (same order), named on the page;
    ///     when two reports hold the same scheme (int4 and int4 `--asymmetric`), their charts and
    ///     rows are told apart by these names (by position when not given).
    public static func html(reports: [AccuracyReport], title: String = "Accuracy report", original: String? = nil,
                            checkpoints: [String]? = nil) -> String {
        let labelled = variantEntries(reports, checkpoints: checkpoints)
        let entries = labelled.flatMap(\.self)
        let failed = entries.count { !$0.passed }
        let schemes = orderedSchemes(entries)
        var page = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        page += "<title>\(escape(title))</title>\n<style>\n\(stylesheet)</style></head><body>\n"
        page += "<h1>\(escape(title))</h1>\n"
        if original != nil || checkpoints != nil {
            var compared: [String] = []
            if let original { compared.append("original <b>\(escape(original))</b>") }
            for (index, path) in (checkpoints ?? []).enumerated() {
                let names = orderedSchemes(index < labelled.count ? labelled[index] : [])
                compared.append("<b>\(escape(path))</b>" + (names.isEmpty ? "" : " (\(escape(names.joined(separator: ", "))))"))
            }
            page += "<p>Compared: \(compared.joined(separator: "; ")).</p>\n"
        }
        let verdict =
            failed == 0
            ? "<span class=\"ok\">passed</span>: all \(entries.count) tensors within their limits"
            : "<span class=\"fail\">FAILED</span>: \(failed) of \(entries.count) tensors over their limits"
        page += "<p>\(verdict). Schemes: \(escape(schemes.joined(separator: ", "))).</p>\n"
        if let probe = reports.first?.probe {
            var text = "Probe: \(probe.rows) rows, seed \(probe.seed)"
            if let outliers = probe.outliers {
                text += ", \(outliers.count) outlier channels ×\(format(Double(outliers.magnitude), digits: 0))"
            }
            if let file = probe.file { text += ", activations from \(file)" }
            text += ". Relative error = ‖Ŷ−Y‖/‖Y‖ with Y = X·Wᵀ, Ŷ = X·Ŵᵀ (FP32 sgemm)."
            page += "<p class=\"note\">\(escape(text))</p>\n"
        }
        if let worst = worstFirst(entries).first {
            page += "<p>Worst tensor: <b>\(escape(worst.name))</b> [\(escape(worst.scheme))], relative error "
            page += scientific(worst.accuracy.relativeError)
            if let threshold = worst.threshold { page += " (limit \(scientific(threshold)))" }
            page += ".</p>\n"
        }
        if entries.contains(where: { $0.accuracy.isSampled }) {
            page += "<p class=\"note\">Tensors marked * were checked on an evenly spaced sample of their rows.</p>\n"
        }

        page += "<h2>Relative output error per layer</h2>\n"
        for scheme in schemes {
            page += layerChart(entries.filter { $0.scheme == scheme }, scheme: scheme)
        }
        page += "<h2>Error against bits per weight</h2>\n"
        page += bitsChart(entries, schemes: schemes)
        if schemes.count < 2 {
            page += "<p class=\"note\">One scheme only: check the model with other schemes and pass all the "
            page += "reports to compare them here.</p>\n"
        }

        page += "<h2>Summary by layer type</h2>\n<table>\n"
        page += headerRow([
            "layer type", "scheme", "tensors", "failed", "mean rel. error", "max rel. error", "bits/weight",
            "worst tensor",
        ])
        for (report, entries) in zip(reports, labelled) {
            // The summary's scheme column shows the variant label the charts use.
            let label = Dictionary(zip(report.tensors, entries).map { ($0.scheme, $1.scheme) }, uniquingKeysWith: { first, _ in first })
            for summary in report.summary {
                page += row(
                    [
                        .text(summary.layerType.rawValue), .text(label[summary.scheme] ?? summary.scheme), .number(String(summary.count)),
                        .number(String(summary.failedCount)), .number(summary.meanRelativeError.map(scientific) ?? "inf"),
                        .number(summary.maxRelativeError.map(scientific) ?? "inf"),
                        .number(summary.bitsPerWeight.map { format($0, digits: 2) } ?? "-"), .text(summary.worstTensor),
                    ], bad: summary.failedCount > 0)
            }
        }
        page += "</table>\n"

        page += "<h2>Tensors, worst first</h2>\n<table>\n"
        page += headerRow([
            "tensor", "scheme", "type", "layer", "shape", "bits/w", "rel. error", "SQNR dB", "cosine", "max abs",
            "weight err.", "limit", "",
        ])
        for entry in worstFirst(entries) {
            let a = entry.accuracy
            page += row(
                [
                    .text(entry.name + (a.isSampled ? " *" : "")), .text(entry.scheme), .text(entry.layerType.rawValue),
                    .number(entry.layerIndex.map(String.init) ?? "-"), .text("\(a.rows)×\(a.columns)"),
                    .number(a.bitsPerWeight.map { format($0, digits: 2) } ?? "-"), .number(scientific(a.relativeError)),
                    .number(format(a.sqnrDecibels, digits: 1)), .number(format(a.cosineSimilarity, digits: 6)),
                    .number(scientific(a.maxAbsoluteError)), .number(scientific(a.relativeWeightError)),
                    .number(entry.threshold.map(scientific) ?? "-"), .verdict(entry.passed),
                ], bad: !entry.passed)
        }
        page += "</table>\n</body></html>\n"
        return page
    }

    static let stylesheet = """
        body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:24px;color:#1d2330;background:#fff;
        max-width:1180px}
        h1{font-size:22px;margin:0 0 6px}
        h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #d5d9e0;padding-bottom:4px}
        p{margin:6px 0}.ok{color:#17803d;font-weight:bold}.fail{color:#c0262d;font-weight:bold}
        .note{color:#5a6270;font-size:12px}
        table{border-collapse:collapse;font-size:12px;margin:6px 0}
        th,td{padding:3px 8px;border-bottom:1px solid #e6e9ee;text-align:left}
        th{background:#f2f4f7}td.n{text-align:right;font-variant-numeric:tabular-nums}tr.bad td{background:#fdecec}
        svg{display:block;margin:6px 0 2px}

        """

    /// A table cell.
    enum Cell {
        case text(String)
        case number(String)
        case verdict(Bool)
    }

    static func headerRow(_ titles: [String]) -> String {
        "<tr>" + titles.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
    }

    static func row(_ cells: [Cell], bad: Bool) -> String {
        var html = bad ? "<tr class=\"bad\">" : "<tr>"
        for cell in cells {
            switch cell {
            case .text(let text): html += "<td>\(escape(text))</td>"
            case .number(let text): html += "<td class=\"n\">\(escape(text))</td>"
            case .verdict(let passed): html += passed ? "<td>ok</td>" : "<td><span class=\"fail\">FAIL</span></td>"
            }
        }
        return html + "</tr>\n"
    }

    static let palette: [LayerType: String] = [
        .embedding: "#7f7f7f", .query: "#1f77b4", .key: "#ff7f0e", .value: "#2ca02c", .queryKeyValue: "#17becf",
        .keyValue: "#bcbd22", .attentionOutput: "#d62728", .gate: "#9467bd", .up: "#8c564b", .gateUp: "#e377c2",
        .down: "#e7298a", .router: "#393b79", .outputHead: "#000000", .other: "#aaaaaa",
    ]

    static let schemePalette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#e377c2"]

    /// Each report's entries with `scheme` replaced by the label its charts use: the scheme alone
    /// when no other report holds it, else the scheme and its checkpoint's name (or position).
    static func variantEntries(_ reports: [AccuracyReport], checkpoints: [String]?) -> [[Entry]] {
        var reportsOfScheme: [String: Set<Int>] = [:]
        for (index, report) in reports.enumerated() {
            for entry in report.tensors { reportsOfScheme[entry.scheme, default: []].insert(index) }
        }
        var names = reports.indices.map { index -> String in
            guard let checkpoints, index < checkpoints.count else { return "#\(index + 1)" }
            return URL(fileURLWithPath: checkpoints[index]).lastPathComponent
        }
        if Set(names).count < names.count { names = reports.indices.map { index in "\(names[index]) #\(index + 1)" } }
        return reports.enumerated().map { index, report in
            report.tensors.map { entry in
                guard (reportsOfScheme[entry.scheme]?.count ?? 0) > 1 else { return entry }
                var copy = entry
                copy.scheme = "\(entry.scheme) (\(names[index]))"
                return copy
            }
        }
    }

    static func orderedSchemes(_ entries: [Entry]) -> [String] {
        var seen: [String] = []
        for entry in entries where !seen.contains(entry.scheme) { seen.append(entry.scheme) }
        return seen
    }

    /// Relative error (linear axis) against block index, one polyline per layer type through the
    /// largest error of each block (experts collapse into it), a dot per tensor, failures ringed
    /// red, the threshold dashed.
    static func layerChart(_ entries: [Entry], scheme: String) -> String {
        let indexed = entries.filter { $0.layerIndex != nil }
        var svg = SVGChart(height: 300)
        let finiteErrors = indexed.map(\.accuracy.relativeError).filter(\.isFinite)
        let thresholds = Set(entries.compactMap(\.threshold))
        let yMax = max((finiteErrors + thresholds).max() ?? 1, 1e-12) * 1.1
        let maxIndex = indexed.compactMap(\.layerIndex).max() ?? 0
        let plot = svg.plot
        func x(_ index: Int) -> Double {
            plot.x + (maxIndex == 0 ? plot.width / 2 : Double(index) / Double(maxIndex) * plot.width)
        }
        func y(_ error: Double) -> Double {
            let clamped = min(error.isFinite ? error : yMax, yMax)
            return plot.y + plot.height * (1 - clamped / yMax)
        }
        svg.text(x: plot.x, y: 16, escape(scheme), size: 13, bold: true)
        for tick in niceTicks(upTo: yMax) {
            svg.gridLine(y: y(tick), label: tickLabel(tick))
        }
        for tick in integerTicks(upTo: maxIndex) {
            svg.text(x: x(tick), y: plot.y + plot.height + 16, String(tick), anchor: "middle")
        }
        svg.axisTitles(x: "layer index", y: "relative error")
        for threshold in thresholds.sorted() {
            svg.line(x1: plot.x, y1: y(threshold), x2: plot.x + plot.width, y2: y(threshold), color: "#c0262d", dashed: true)
            svg.text(
                x: plot.x + plot.width - 4, y: y(threshold) - 4, "limit \(scientific(threshold))", color: "#c0262d",
                anchor: "end")
        }
        let types = Set(indexed.map(\.layerType)).sorted()
        for (legendRow, type) in types.enumerated() {
            let color = palette[type] ?? "#444444"
            let group = indexed.filter { $0.layerType == type }
            var worstPerIndex: [Int: Double] = [:]
            for entry in group {
                guard let index = entry.layerIndex else { continue }
                let error = entry.accuracy.relativeError.isNaN ? .infinity : entry.accuracy.relativeError
                worstPerIndex[index] = max(worstPerIndex[index] ?? 0, error)
            }
            let line = worstPerIndex.sorted { $0.key < $1.key }.map { (x($0.key), y($0.value)) }
            if line.count > 1 { svg.polyline(line, color: color) }
            for entry in group {
                guard let index = entry.layerIndex else { continue }
                svg.circle(
                    x: x(index), y: y(entry.accuracy.relativeError), radius: 3, color: color, ringed: !entry.passed,
                    tooltip: "\(escape(entry.name)): \(scientific(entry.accuracy.relativeError))")
            }
            svg.legend(row: legendRow, label: type.rawValue, color: color)
        }
        var html = svg.finish()
        if indexed.isEmpty {
            html += "<p class=\"note\">No tensor of \(escape(scheme)) has a layer index in its name.</p>\n"
        }
        let unindexed = entries.filter { $0.layerIndex == nil }
        if !unindexed.isEmpty {
            let list = worstFirst(unindexed).prefix(12).map {
                "\($0.name) \(scientific($0.accuracy.relativeError))\($0.passed ? "" : " FAIL")"
            }
            let more = unindexed.count > 12 ? ", … \(unindexed.count - 12) more" : ""
            html += "<p class=\"note\">Outside the blocks: \(escape(list.joined(separator: "; ") + more)).</p>\n"
        }
        return html
    }

    /// Relative error (log axis) against stored bits per weight: a faint dot per tensor and a large
    /// labelled dot per scheme at its mean bits and mean error.
    static func bitsChart(_ entries: [Entry], schemes: [String]) -> String {
        let points = entries.compactMap { entry -> (scheme: String, bits: Double, error: Double)? in
            let error = entry.accuracy.relativeError
            guard let bits = entry.accuracy.bitsPerWeight, bits.isFinite, error.isFinite, error > 0 else { return nil }
            return (entry.scheme, bits, error)
        }
        guard !points.isEmpty else {
            return "<p class=\"note\">No tensor has both a known size and a finite non-zero error to plot.</p>\n"
        }
        var svg = SVGChart(height: 340)
        let plot = svg.plot
        let bitsLow = max(0, floor((points.map(\.bits).min() ?? 0) - 0.5))
        let bitsHigh = ceil((points.map(\.bits).max() ?? 16) + 0.5)
        let thresholds = entries.compactMap(\.threshold).filter { $0 > 0 }
        let logLow = floor(log10(min(points.map(\.error).min() ?? 1e-4, thresholds.min() ?? 1)))
        let logHigh = max(ceil(log10(max(points.map(\.error).max() ?? 1, thresholds.max() ?? 1e-4))), logLow + 1)
        func x(_ bits: Double) -> Double { plot.x + (bits - bitsLow) / (bitsHigh - bitsLow) * plot.width }
        func y(_ error: Double) -> Double {
            plot.y + plot.height * (1 - (log10(error) - logLow) / (logHigh - logLow))
        }
        for decade in stride(from: logLow, through: logHigh, by: 1) {
            svg.gridLine(y: y(pow(10, decade)), label: "1e\(Int(decade))")
        }
        for bits in stride(from: bitsLow, through: bitsHigh, by: bitsHigh - bitsLow > 12 ? 2 : 1) {
            svg.text(x: x(bits), y: plot.y + plot.height + 16, String(Int(bits)), anchor: "middle")
        }
        svg.axisTitles(x: "bits per weight stored", y: "relative error (log)")
        var placedLabels: [(x: Double, y: Double, width: Double)] = []
        for (legendRow, scheme) in schemes.enumerated() {
            let color = schemePalette[legendRow % schemePalette.count]
            let mine = points.filter { $0.scheme == scheme }
            for point in mine {
                svg.circle(x: x(point.bits), y: y(point.error), radius: 2.5, color: color, opacity: 0.3)
            }
            svg.legend(row: legendRow, label: escape(scheme), color: color)
            guard !mine.isEmpty else { continue }
            let meanBits = mine.map(\.bits).reduce(0, +) / Double(mine.count)
            let meanError = mine.map(\.error).reduce(0, +) / Double(mine.count)
            svg.circle(
                x: x(meanBits), y: y(meanError), radius: 7, color: color,
                tooltip: "\(escape(scheme)): \(format(meanBits, digits: 2)) bits, mean error \(scientific(meanError))")
            // Labels of schemes at nearly the same point (fp8 and int8 store ~8.1 bits at ~2 %
            // error) are stacked instead of drawn over each other.
            let labelX = x(meanBits) + 10, width = Double(scheme.count) * 7.5
            var labelY = y(meanError) - 8
            while placedLabels.contains(where: { abs($0.y - labelY) < 14 && labelX < $0.x + $0.width && $0.x < labelX + width }) {
                labelY += 15
            }
            placedLabels.append((labelX, labelY, width))
            svg.text(x: labelX, y: labelY, escape(scheme), size: 12, bold: true, color: color)
        }
        return svg.finish()
    }

    /// About five round tick values from 0 to `upper`.
    static func niceTicks(upTo upper: Double) -> [Double] {
        guard upper > 0, upper.isFinite else { return [0] }
        let raw = upper / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        return Array(stride(from: 0.0, through: upper, by: step))
    }

    /// At most about 16 integer ticks from 0 to `upper`.
    static func integerTicks(upTo upper: Int) -> [Int] {
        let step = max(1, Int((Double(upper) / 16).rounded(.up)))
        return Array(stride(from: 0, through: upper, by: step))
    }

    static func tickLabel(_ value: Double) -> String {
        if value == 0 { return "0" }
        return value >= 0.01 ? String(format: "%.3g", value) : String(format: "%.1e", value)
    }

    /// Text made safe for HTML element content and attribute values.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}

/// A 1000-pixel-wide inline SVG with a framed plot area, a legend column on the right and helpers
/// that append elements; text given to it must already be HTML-escaped.
struct SVGChart {
    let width = 1000.0
    let height: Double
    /// The plot area in pixels.
    let plot: (x: Double, y: Double, width: Double, height: Double)
    private var body = ""

    init(height: Double) {
        self.height = height
        plot = (x: 70, y: 24, width: width - 70 - 150, height: height - 24 - 40)
        body = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\""
        body += " role=\"img\">\n"
        body += "<rect x=\"\(f(plot.x))\" y=\"\(f(plot.y))\" width=\"\(f(plot.width))\" height=\"\(f(plot.height))\""
        body += " fill=\"#fbfcfd\" stroke=\"#9aa3af\"/>\n"
    }

    mutating func text(
        x: Double, y: Double, _ text: String, size: Int = 11, bold: Bool = false, color: String? = nil,
        anchor: String = "start"
    ) {
        body += "<text x=\"\(f(x))\" y=\"\(f(y))\" font-size=\"\(size)\" text-anchor=\"\(anchor)\""
        if bold { body += " font-weight=\"bold\"" }
        if let color { body += " fill=\"\(color)\"" }
        body += ">\(text)</text>\n"
    }

    mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, color: String, dashed: Bool = false) {
        body += "<line x1=\"\(f(x1))\" y1=\"\(f(y1))\" x2=\"\(f(x2))\" y2=\"\(f(y2))\" stroke=\"\(color)\""
        body += dashed ? " stroke-dasharray=\"6 4\"/>\n" : "/>\n"
    }

    mutating func gridLine(y: Double, label: String) {
        line(x1: plot.x, y1: y, x2: plot.x + plot.width, y2: y, color: "#eceff3")
        text(x: plot.x - 6, y: y + 4, label, anchor: "end")
    }

    mutating func axisTitles(x: String, y: String) {
        text(x: plot.x + plot.width / 2, y: height - 6, x, size: 12, anchor: "middle")
        let middle = f(plot.y + plot.height / 2)
        body += "<text x=\"14\" y=\"\(middle)\" font-size=\"12\" text-anchor=\"middle\""
        body += " transform=\"rotate(-90 14 \(middle))\">\(y)</text>\n"
    }

    mutating func polyline(_ points: [(Double, Double)], color: String) {
        let list = points.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ")
        body += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(list)\"/>\n"
    }

    mutating func circle(
        x: Double, y: Double, radius: Double, color: String, opacity: Double = 1, ringed: Bool = false,
        tooltip: String? = nil
    ) {
        body += "<circle cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"\(f(radius))\" fill=\"\(color)\""
        if opacity < 1 { body += " fill-opacity=\"\(f(opacity))\"" }
        if ringed { body += " stroke=\"#c0262d\" stroke-width=\"2\"" }
        body += tooltip.map { "><title>\($0)</title></circle>\n" } ?? "/>\n"
    }

    mutating func legend(row: Int, label: String, color: String) {
        let y = plot.y + 8 + Double(row) * 16
        body += "<rect x=\"\(f(plot.x + plot.width + 16))\" y=\"\(f(y - 8))\" width=\"12\" height=\"10\""
        body += " fill=\"\(color)\"/>\n"
        text(x: plot.x + plot.width + 34, y: y + 1, label, size: 12)
    }

    func finish() -> String { body + "</svg>\n" }

    private func f(_ value: Double) -> String { String(format: "%.1f", value) }
}
