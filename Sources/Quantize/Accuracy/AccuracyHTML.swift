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
    /// offline and renders the same in a headless browser (tools/render_report.sh).
    public static func html(reports: [AccuracyReport], title: String = "Accuracy report") -> String {
        let entries = reports.flatMap(\.tensors)
        let failed = entries.count { !$0.passed }
        let schemes = orderedSchemes(entries)
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>
            body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:24px;color:#1d2330;background:#fff;max-width:1180px}
            h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #d5d9e0;padding-bottom:4px}
            p{margin:6px 0}.ok{color:#17803d;font-weight:bold}.fail{color:#c0262d;font-weight:bold}
            table{border-collapse:collapse;font-size:12px;margin:6px 0}th,td{padding:3px 8px;border-bottom:1px solid #e6e9ee;text-align:left}
            th{background:#f2f4f7}td.n{text-align:right;font-variant-numeric:tabular-nums}tr.bad td{background:#fdecec}
            svg{display:block;margin:6px 0 2px}.note{color:#5a6270;font-size:12px}
            </style></head><body>

            """
        page += "<h1>\(escape(title))</h1>\n"
        let verdict =
            failed == 0
            ? "<span class=\"ok\">passed</span>: all \(entries.count) tensors within their limits"
            : "<span class=\"fail\">FAILED</span>: \(failed) of \(entries.count) tensors over their limits"
        page += "<p>\(verdict). Schemes: \(escape(schemes.joined(separator: ", "))).</p>\n"
        for report in reports.prefix(1) {
            let probe = report.probe
            var text = "Probe: \(probe.rows) rows, seed \(probe.seed)"
            if let outliers = probe.outliers {
                text += ", \(outliers.count) outlier channels ×\(format(Double(outliers.magnitude), digits: 0))"
            }
            if let file = probe.file { text += ", activations from \(file)" }
            page += "<p class=\"note\">\(escape(text)). Relative error = ‖Ŷ−Y‖/‖Y‖ with Y = X·Wᵀ, Ŷ = X·Ŵᵀ (FP32 sgemm).</p>\n"
        }
        if let worst = worstFirst(entries).first {
            page += "<p>Worst tensor: <b>\(escape(worst.name))</b> [\(escape(worst.scheme))], relative error "
            page += "\(scientific(worst.accuracy.relativeError))"
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
            page += "<p class=\"note\">One scheme only: check the same model with other schemes and pass all reports to compare them here.</p>\n"
        }

        page += "<h2>Summary by layer type</h2>\n<table><tr><th>layer type</th><th>scheme</th><th>tensors</th><th>failed</th>"
        page += "<th>mean rel. error</th><th>max rel. error</th><th>bits/weight</th><th>worst tensor</th></tr>\n"
        for summary in reports.flatMap(\.summary) {
            page += "<tr\(summary.failedCount > 0 ? " class=\"bad\"" : "")><td>\(summary.layerType.rawValue)</td>"
            page += "<td>\(escape(summary.scheme))</td><td class=\"n\">\(summary.count)</td><td class=\"n\">\(summary.failedCount)</td>"
            page += "<td class=\"n\">\(summary.meanRelativeError.map(scientific) ?? "inf")</td>"
            page += "<td class=\"n\">\(summary.maxRelativeError.map(scientific) ?? "inf")</td>"
            page += "<td class=\"n\">\(summary.bitsPerWeight.map { format($0, digits: 2) } ?? "-")</td>"
            page += "<td>\(escape(summary.worstTensor))</td></tr>\n"
        }
        page += "</table>\n"

        page += "<h2>Tensors, worst first</h2>\n<table><tr><th>tensor</th><th>scheme</th><th>type</th><th>layer</th>"
        page += "<th>shape</th><th>bits/w</th><th>rel. error</th><th>SQNR dB</th><th>cosine</th><th>max abs</th>"
        page += "<th>weight err.</th><th>limit</th><th></th></tr>\n"
        for entry in worstFirst(entries) {
            let a = entry.accuracy
            page += "<tr\(entry.passed ? "" : " class=\"bad\"")><td>\(escape(entry.name))\(a.isSampled ? " *" : "")</td>"
            page += "<td>\(escape(entry.scheme))</td><td>\(entry.layerType.rawValue)</td>"
            page += "<td class=\"n\">\(entry.layerIndex.map(String.init) ?? "-")</td><td>\(a.rows)×\(a.columns)</td>"
            page += "<td class=\"n\">\(a.bitsPerWeight.map { format($0, digits: 2) } ?? "-")</td>"
            page += "<td class=\"n\">\(scientific(a.relativeError))</td><td class=\"n\">\(format(a.sqnrDecibels, digits: 1))</td>"
            page += "<td class=\"n\">\(format(a.cosineSimilarity, digits: 6))</td><td class=\"n\">\(scientific(a.maxAbsoluteError))</td>"
            page += "<td class=\"n\">\(scientific(a.relativeWeightError))</td>"
            page += "<td class=\"n\">\(entry.threshold.map(scientific) ?? "-")</td>"
            page += "<td>\(entry.passed ? "ok" : "<span class=\"fail\">FAIL</span>")</td></tr>\n"
        }
        page += "</table>\n</body></html>\n"
        return page
    }

    static let palette: [LayerType: String] = [
        .embedding: "#7f7f7f", .query: "#1f77b4", .key: "#ff7f0e", .value: "#2ca02c", .queryKeyValue: "#17becf",
        .keyValue: "#bcbd22", .attentionOutput: "#d62728", .gate: "#9467bd", .up: "#8c564b", .gateUp: "#e377c2",
        .down: "#e7298a", .router: "#393b79", .outputHead: "#000000", .other: "#aaaaaa",
    ]

    static let schemePalette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#e377c2"]

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
        let width = 1000.0
        let height = 300.0
        let left = 70.0
        let right = 150.0
        let top = 24.0
        let bottom = 40.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let finiteErrors = indexed.map(\.accuracy.relativeError).filter(\.isFinite)
        let thresholds = Set(entries.compactMap(\.threshold))
        let yMax = max((finiteErrors + thresholds).max() ?? 1, 1e-12) * 1.1
        let maxIndex = indexed.compactMap(\.layerIndex).max() ?? 0
        func x(_ index: Int) -> Double { left + (maxIndex == 0 ? plotWidth / 2 : Double(index) / Double(maxIndex) * plotWidth) }
        func y(_ error: Double) -> Double { top + plotHeight * (1 - min(error.isFinite ? error : yMax, yMax) / yMax) }

        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\">\n"
        svg += "<text x=\"\(left)\" y=\"16\" font-size=\"13\" font-weight=\"bold\">\(escape(scheme))</text>\n"
        svg += axes(left: left, top: top, width: plotWidth, height: plotHeight)
        for tick in niceTicks(upTo: yMax) {
            let ty = y(tick)
            svg += "<line x1=\"\(left)\" y1=\"\(fmt(ty))\" x2=\"\(left + plotWidth)\" y2=\"\(fmt(ty))\" stroke=\"#eceff3\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(fmt(ty + 4))\" font-size=\"11\" text-anchor=\"end\">\(tickLabel(tick))</text>\n"
        }
        for tick in integerTicks(upTo: maxIndex) {
            svg += "<text x=\"\(fmt(x(tick)))\" y=\"\(fmt(top + plotHeight + 16))\" font-size=\"11\" text-anchor=\"middle\">\(tick)</text>"
        }
        svg += "<text x=\"\(fmt(left + plotWidth / 2))\" y=\"\(fmt(height - 6))\" font-size=\"12\" text-anchor=\"middle\">layer index</text>\n"
        svg += "<text x=\"14\" y=\"\(fmt(top + plotHeight / 2))\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(fmt(top + plotHeight / 2)))\">relative error</text>\n"
        for threshold in thresholds.sorted() {
            svg += "<line x1=\"\(left)\" y1=\"\(fmt(y(threshold)))\" x2=\"\(left + plotWidth)\" y2=\"\(fmt(y(threshold)))\" stroke=\"#c0262d\" stroke-dasharray=\"6 4\"/>"
            svg += "<text x=\"\(left + plotWidth - 4)\" y=\"\(fmt(y(threshold) - 4))\" font-size=\"11\" fill=\"#c0262d\" text-anchor=\"end\">limit \(scientific(threshold))</text>\n"
        }
        let types = Set(indexed.map(\.layerType)).sorted()
        for (row, type) in types.enumerated() {
            let color = palette[type] ?? "#444444"
            let group = indexed.filter { $0.layerType == type }
            var worstPerIndex: [Int: Double] = [:]
            for entry in group {
                guard let index = entry.layerIndex else { continue }
                let error = entry.accuracy.relativeError.isNaN ? .infinity : entry.accuracy.relativeError
                worstPerIndex[index] = max(worstPerIndex[index] ?? 0, error)
            }
            let points = worstPerIndex.keys.sorted().map { "\(fmt(x($0))),\(fmt(y(worstPerIndex[$0]!)))" }
            if points.count > 1 {
                svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>\n"
            }
            for entry in group {
                guard let index = entry.layerIndex else { continue }
                let stroke = entry.passed ? "" : " stroke=\"#c0262d\" stroke-width=\"2\""
                svg += "<circle cx=\"\(fmt(x(index)))\" cy=\"\(fmt(y(entry.accuracy.relativeError)))\" r=\"3\" fill=\"\(color)\"\(stroke)>"
                svg += "<title>\(escape(entry.name)): \(scientific(entry.accuracy.relativeError))</title></circle>\n"
            }
            let ly = top + 8 + Double(row) * 16
            svg += "<rect x=\"\(fmt(left + plotWidth + 16))\" y=\"\(fmt(ly - 8))\" width=\"12\" height=\"10\" fill=\"\(color)\"/>"
            svg += "<text x=\"\(fmt(left + plotWidth + 34))\" y=\"\(fmt(ly + 1))\" font-size=\"12\">\(type.rawValue)</text>\n"
        }
        svg += "</svg>\n"
        let unindexed = entries.filter { $0.layerIndex == nil }
        if indexed.isEmpty {
            svg += "<p class=\"note\">No tensor of \(escape(scheme)) has a layer index in its name.</p>\n"
        }
        if !unindexed.isEmpty {
            let list = worstFirst(unindexed).prefix(12).map {
                "\(escape($0.name)) \(scientific($0.accuracy.relativeError))\($0.passed ? "" : " FAIL")"
            }
            let more = unindexed.count > 12 ? ", … \(unindexed.count - 12) more" : ""
            svg += "<p class=\"note\">Outside the blocks: \(list.joined(separator: "; "))\(more).</p>\n"
        }
        return svg
    }

    /// Relative error (log axis) against stored bits per weight: a faint dot per tensor and a large
    /// labelled dot per scheme at its weighted mean bits and mean error.
    static func bitsChart(_ entries: [Entry], schemes: [String]) -> String {
        let points = entries.compactMap { entry -> (scheme: String, bits: Double, error: Double)? in
            guard let bits = entry.accuracy.bitsPerWeight, bits.isFinite, entry.accuracy.relativeError.isFinite,
                entry.accuracy.relativeError > 0
            else { return nil }
            return (entry.scheme, bits, entry.accuracy.relativeError)
        }
        guard !points.isEmpty else {
            return "<p class=\"note\">No tensor has both a known size and a finite non-zero error to plot.</p>\n"
        }
        let width = 1000.0
        let height = 340.0
        let left = 70.0
        let right = 150.0
        let top = 20.0
        let bottom = 40.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let bitsLow = max(0, floor((points.map(\.bits).min() ?? 0) - 0.5))
        let bitsHigh = ceil((points.map(\.bits).max() ?? 16) + 0.5)
        let thresholds = entries.compactMap(\.threshold).filter { $0 > 0 }
        let logLow = floor(log10(min(points.map(\.error).min() ?? 1e-4, thresholds.min() ?? 1)))
        let logHigh = max(ceil(log10(max(points.map(\.error).max() ?? 1, thresholds.max() ?? 1e-4))), logLow + 1)
        func x(_ bits: Double) -> Double { left + (bits - bitsLow) / (bitsHigh - bitsLow) * plotWidth }
        func y(_ error: Double) -> Double { top + plotHeight * (1 - (log10(error) - logLow) / (logHigh - logLow)) }

        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\">\n"
        svg += axes(left: left, top: top, width: plotWidth, height: plotHeight)
        var decade = logLow
        while decade <= logHigh {
            let ty = y(pow(10, decade))
            svg += "<line x1=\"\(left)\" y1=\"\(fmt(ty))\" x2=\"\(left + plotWidth)\" y2=\"\(fmt(ty))\" stroke=\"#eceff3\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(fmt(ty + 4))\" font-size=\"11\" text-anchor=\"end\">1e\(Int(decade))</text>\n"
            decade += 1
        }
        var bits = bitsLow
        let step = bitsHigh - bitsLow > 12 ? 2.0 : 1.0
        while bits <= bitsHigh {
            svg += "<text x=\"\(fmt(x(bits)))\" y=\"\(fmt(top + plotHeight + 16))\" font-size=\"11\" text-anchor=\"middle\">\(Int(bits))</text>"
            bits += step
        }
        svg += "<text x=\"\(fmt(left + plotWidth / 2))\" y=\"\(fmt(height - 6))\" font-size=\"12\" text-anchor=\"middle\">bits per weight stored</text>\n"
        svg += "<text x=\"14\" y=\"\(fmt(top + plotHeight / 2))\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(fmt(top + plotHeight / 2)))\">relative error (log)</text>\n"
        for (row, scheme) in schemes.enumerated() {
            let color = schemePalette[row % schemePalette.count]
            let mine = points.filter { $0.scheme == scheme }
            for point in mine {
                svg += "<circle cx=\"\(fmt(x(point.bits)))\" cy=\"\(fmt(y(point.error)))\" r=\"2.5\" fill=\"\(color)\" fill-opacity=\"0.3\"/>"
            }
            svg += "\n"
            let ly = top + 8 + Double(row) * 16
            svg += "<circle cx=\"\(fmt(left + plotWidth + 22))\" cy=\"\(fmt(ly - 3))\" r=\"5\" fill=\"\(color)\"/>"
            svg += "<text x=\"\(fmt(left + plotWidth + 34))\" y=\"\(fmt(ly + 1))\" font-size=\"12\">\(escape(scheme))</text>\n"
            guard !mine.isEmpty else { continue }
            let meanBits = mine.map(\.bits).reduce(0, +) / Double(mine.count)
            let meanError = mine.map(\.error).reduce(0, +) / Double(mine.count)
            svg += "<circle cx=\"\(fmt(x(meanBits)))\" cy=\"\(fmt(y(meanError)))\" r=\"7\" fill=\"\(color)\" stroke=\"#fff\" stroke-width=\"1.5\">"
            svg += "<title>\(escape(scheme)): \(format(meanBits, digits: 2)) bits, mean error \(scientific(meanError))</title></circle>"
            svg += "<text x=\"\(fmt(x(meanBits) + 10))\" y=\"\(fmt(y(meanError) - 8))\" font-size=\"12\" font-weight=\"bold\" fill=\"\(color)\">\(escape(scheme))</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    static func axes(left: Double, top: Double, width: Double, height: Double) -> String {
        "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width)\" height=\"\(height)\" fill=\"#fbfcfd\" stroke=\"#9aa3af\"/>\n"
    }

    /// About five round tick values from 0 to `upper`.
    static func niceTicks(upTo upper: Double) -> [Double] {
        guard upper > 0, upper.isFinite else { return [0] }
        let raw = upper / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        return stride(from: 0.0, through: upper, by: step).map { $0 }
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

    static func fmt(_ value: Double) -> String { String(format: "%.1f", value) }

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
