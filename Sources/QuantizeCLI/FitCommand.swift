import ArgumentParser
import Fit
import Formats
import Foundation

extension QuantizeCommand {
    /// `quantize fit MODEL`: which hardware a variant fits, how fast, at what cost.
    struct FitCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fit",
            abstract: "Which GPU, multi-GPU or offload setup a model variant fits, and how fast it runs there.",
            discussion: """
            MODEL is a model directory with config.json (weights optional), a config.json file, or a preset:
            \(((try? ModelShape.presets()) ?? []).map(\.name).joined(separator: ", ")).
            Without --gpu, prints a table of every catalog device × bf16/fp8/int8/int4, each at the count (1, 2, 4, 8) \
            that serves a typical load cheapest: as many users as each get ≥ 10 tok/s (--slo-tps) with TTFT ≤ 2 s (--slo-ttft).
            A count tensor parallelism cannot take runs as TP × PP (pipeline stages); --expert-parallel spreads a \
            mixture's experts over the devices.
            Devices (--gpu NAME[:COUNT]; --list-devices for details): \(((try? HardwareCatalog.builtIn())?.hardware ?? []).map(\.name).joined(separator: ", ")).
            Short names: \(HardwareCatalog.aliases.keys.sorted().map { "\($0)=\(HardwareCatalog.aliases[$0] ?? "")" }.joined(separator: ", ")).
            Engines: vllm, vllm-0.5, trtllm (tensorrt-llm), llamacpp (llama.cpp), transformers (hf), gpt-fast.
            Exit status: 0 fits (also with --offload when an offload plan exists, and when users beyond the KV \
            budget are queued), 1 does not fit, 2 bad usage or input.
            """)

        @Argument(help: "Model directory, config.json, or preset name.")
        var model: String?
        @Flag(help: "List the catalog's devices (memory, bandwidth, price and its source) and exit.")
        var listDevices = false
        @Flag(help: "Predict the measured rows of Resources/validation.json and print the errors (no MODEL).")
        var validate = false
        @Option(help: "With --validate: row (leave-one-out, the default), source (k-fold by source) or none (shipped parameters, in-sample).")
        var holdout: ValidationSet.Holdout = .row
        @Option(name: .customLong("gpu"), help: "Device NAME or NAME:COUNT (repeatable). h100-nvl alone is the NVLink pair.")
        var gpus: [String] = []
        @Option(help: "Describe this machine instead of a catalog device: 'local' probes cores, memory and read bandwidth.")
        var device: DeviceOption?
        @Option(help: "A JSON catalog whose entries add to or replace the built-in ones (formats/fit-catalog.md).")
        var catalog: String?
        @Option(help: "Weight variant: bf16, fp16, fp8, int8, int4, int4-gN, or a GGUF type (q8_0, q4_0, q4_k …); default bf16, or what a quantized checkpoint stores.")
        var variant: String?
        @Option(help: "Context tokens per sequence for the KV budget (default: input + output tokens).")
        var context: Int?
        @Option(help: "Concurrent sequences: a number or 'max'.")
        var concurrency: Concurrency = .max
        @Option(help: "Prompt tokens per request.")
        var inputTokens: Int = 1024
        @Option(help: "Generated tokens per request.")
        var outputTokens: Int = 256
        @Option(help: "Serving engine: vllm, vllm-0.5, trtllm, llamacpp, transformers, gpt-fast (default vllm; llamacpp on CPUs).")
        var engine: String?
        @Option(help: "KV-cache element type: fp16 (also bf16) or fp8.")
        var kvDtype: KVCacheType = .fp16
        @Option(help: "When weights do not fit: none, auto, stream, split or cpu.")
        var offload: OffloadMode = .auto
        @Option(help: "Host CPU catalog entry used by offload plans (default: this machine under --device local, else xeon-8480).")
        var host: String?
        @Option(help: "Price per device-hour in US dollars (overrides the catalog).")
        var price: Double?
        @Option(help: "Service objective: tokens per second each user must see.")
        var sloTps: Double?
        @Option(help: "Service objective: longest time to first token, seconds.")
        var sloTtft: Double?
        @Option(help: "Users to serve at once; without --gpu, ranks every priced plan that serves them at --slo-tps/--slo-ttft by $ per million tokens.")
        var users: Int?
        @Option(help: "A `quantize eval --json` report: each variant's measured mean KL divergence is shown beside its plans.")
        var accuracy: String?
        @Flag(help: "Mixture of experts: spread whole experts over the devices with data-parallel attention (vLLM --enable-expert-parallel) instead of splitting every expert (TP).")
        var expertParallel = false
        @Flag(help: "Print one JSON document on stdout.")
        var json = false

        func run() throws {
            if try !execute() { throw ExitCode(1) }
        }

        /// Runs the command; returns whether every requested configuration fits.
        func execute() throws -> Bool {
            var hardware = try HardwareCatalog.builtIn()
            if let catalog { hardware = hardware.merging(try HardwareCatalog.load(catalog)) }
            if listDevices {
                print(FitReport.deviceList(hardware))
                return true
            }
            if validate { return try runValidation(catalog: hardware) }
            guard let model else {
                throw FitError(.invalidRequest, path: "MODEL", message: "no model given", remedy: "write quantize fit MODEL (a directory, config.json or preset), or --list-devices")
            }
            let shape = try loadModelShape(path: model)
            if expertParallel, !shape.isMixtureOfExperts {
                throw FitError(.invalidRequest, path: "--expert-parallel", message: "--expert-parallel needs a mixture-of-experts model; \(shape.name) is dense",
                               remedy: "drop --expert-parallel")
            }
            // A quantized checkpoint is planned as what it stores (when fit models that variant)
            // unless another variant is asked for.
            let variantValue = try variant.map(Variant.parse)
                ?? shape.storedQuantization.flatMap { try? Variant.parse($0.schemeName) } ?? Variant.parse("bf16")
            guard inputTokens >= 1, outputTokens >= 1, (context ?? 1) >= 1 else {
                throw FitError(.invalidRequest, path: "options", message: "--input-tokens, --output-tokens and --context must be at least 1", remedy: "fix the numbers")
            }
            // Offload plans use the host that was named, else the probed machine, else a Xeon 8480 server (said in a note).
            let probed = device == .local ? LocalProbe.probe() : nil
            if let probed { FileHandle.standardError.write(Data("probed this machine: \(probed.notes ?? "")\n".utf8)) }
            let hostHardware: Hardware? = try host.map { try hardware.device(named: $0) } ?? probed ?? (try? hardware.device(named: "xeon-8480"))
            guard (users ?? 1) >= 1 else {
                throw FitError(.invalidRequest, path: "--users", message: "--users must be at least 1", remedy: "give the number of users served at once")
            }
            let load = users.map { Concurrency.count($0) } ?? concurrency
            func request(_ selection: DeviceSelection, variant: Variant) throws -> FitRequest {
                let engineName = engine ?? (selection.hardware.kind == .cpu ? "llamacpp" : "vllm")
                var fitRequest = FitRequest(model: shape, variant: variant, devices: selection, engine: try Engines.named(engineName), catalog: hardware,
                                  context: context, inputTokens: inputTokens, outputTokens: outputTokens, concurrency: load,
                                  kvBytesPerElement: kvDtype.bytesPerElement, offload: offload, host: hostHardware, pricePerHour: price,
                                  sloTokensPerSecond: sloTps, sloTTFTSeconds: sloTtft)
                fitRequest.expertParallel = expertParallel
                return fitRequest
            }

            var selections = try gpus.map { try DeviceSelection.parse($0, catalog: hardware) }
            if let probed { selections.append(DeviceSelection(hardware: probed, count: 1)) }
            if selections.isEmpty, let users {
                return try deploy(users: users, catalog: hardware, request: request)
            }
            if selections.isEmpty {
                return try overview(shape: shape, catalog: hardware, request: request)
            }
            var results = try selections.map { try FitPlanner.plan(try request($0, variant: variantValue)) }
            if results.count > 1 {
                // Several selections: each also priced at the typical load, and a cheaper count of the same device named.
                for (index, selection) in selections.enumerated() where results[index].fits {
                    let typical = try FitPlanner.atTypicalLoad(try request(selection, variant: variantValue), tokensPerSecond: floor, ttft: ttftBound)
                    results[index].typicalLoad = typical.typicalLoad
                    if let better = try FitPlanner.cheapestAtTypicalLoad(on: selection.hardware, tokensPerSecond: floor, ttft: ttftBound, request: { try request($0, variant: variantValue) }),
                       better.deviceCount != selection.count, let load = better.typicalLoad, load.users >= 1, let cost = load.costPerMillionTokens,
                       cost < (typical.typicalLoad.flatMap { $0.users >= 1 ? $0.costPerMillionTokens : nil } ?? .infinity) {
                        results[index].notes.append(String(format: "at the typical load %@ (%@) serves %d users at $%.3f/M tokens", better.hardware, better.parallelism.summary, load.users, cost)
                                                    + (typical.typicalLoad.flatMap { $0.users >= 1 ? $0.costPerMillionTokens : nil }.map { String(format: " (this selection: $%.3f/M)", $0) } ?? " (this selection serves none at the bounds)"))
                    }
                }
            }
            if json {
                let document = results.count == 1 ? try JSONValueEncoder().encode(results[0]) : try JSONValueEncoder().encode(results)
                print(document.serializedString(.document))
            } else if results.count > 1 {
                print(FitReport.sideBySide(results))
            } else {
                for result in results { print(FitReport.breakdown(result)) }
            }
            return results.allSatisfy { $0.fits || $0.offloadBest != nil }
        }

        /// `--users N` without `--gpu`: every priced plan that serves N users, cheapest first, and why the runner-up lost.
        func deploy(users: Int, catalog: HardwareCatalog, request: (DeviceSelection, Variant) throws -> FitRequest) throws -> Bool {
            let variantNames = Variant.overview + ["q8_0", "q4_k"]
            let kl = try accuracy.map { try DeploymentSearch.accuracy(report: $0, variants: variantNames) } ?? [:]
            let plans = try DeploymentSearch.search(catalog: catalog, users: users, tokensPerSecond: sloTps, ttft: sloTtft, accuracy: kl) { selection, variant, profile in
                var fitRequest = try request(selection, variant)
                fitRequest.engine = profile
                return fitRequest
            }
            let meeting = plans.filter(\.meetsObjectives)
            if json {
                print(try JSONValueEncoder().encode(meeting.map(\.result)).serializedString(.document))
                return !meeting.isEmpty
            }
            let objectives = [sloTps.map { "≥ \(FitReport.number($0)) tok/s each" }, sloTtft.map { "TTFT ≤ \($0) s" }].compactMap { $0 }
            var lines = ["\(users) users, \(inputTokens) prompt + \(outputTokens) output tokens" + (objectives.isEmpty ? "" : ", " + objectives.joined(separator: ", "))
                         + ": \(meeting.count) priced plans meet it, cheapest first (catalog prices; KL from \(accuracy ?? "no --accuracy report"))"]
            var table = [["#", "hardware", "split", "engine", "variant", "in flight", "tok/s each", "TTFT", "total tok/s", "$/hour", "$/M tok", "KL divergence"]]
            for (index, plan) in meeting.prefix(10).enumerated() {
                let r = plan.result
                table.append(["\(index + 1)", r.hardware, r.parallelism.summary, r.engine, r.variant, r.load.map { "\($0.inFlight)" + ($0.queued > 0 ? "+\($0.queued)q" : "") } ?? "-",
                              r.throughput.map { FitReport.number($0.tokensPerSecondPerUser) } ?? "-", r.load.map { String(format: "%.2f s", $0.ttftSeconds) } ?? "-",
                              r.throughput.map { FitReport.number($0.outputTokensPerSecond) } ?? "-",
                              r.pricePerHour.map { String(format: "%.2f", $0 * Double(r.deviceCount)) } ?? "-",
                              r.costPerMillionTokens.map { String(format: "%.3f", $0) } ?? "-",
                              plan.klDivergence.map { String(format: "%.4g", $0) } ?? (r.variant == "bf16" ? "0 (reference)" : "not measured")])
            }
            let widths = (0..<table[0].count).map { column in table.map { $0[column].count }.max() ?? 0 }
            for row in table { lines.append(FitReport.line(row, widths: widths)) }
            if meeting.count >= 2 {
                lines.append("why #2 lost: " + DeploymentSearch.whyRunnerUpLost(first: meeting[0], second: meeting[1]))
            }
            if let cheapestMiss = plans.filter({ !$0.meetsObjectives }).min(by: { ($0.result.costPerMillionTokens ?? .infinity) < ($1.result.costPerMillionTokens ?? .infinity) }),
               let missCost = cheapestMiss.result.costPerMillionTokens, missCost < (meeting.first?.result.costPerMillionTokens ?? .infinity) {
                lines.append(String(format: "cheaper but out: %@ %@ on %@ at $%.3f/M misses it: %@", cheapestMiss.result.variant, cheapestMiss.result.engine,
                                    cheapestMiss.result.hardware, missCost, cheapestMiss.miss ?? ""))
            }
            if meeting.isEmpty { lines.append("no priced plan meets the objectives; relax them or give --price for unpriced devices") }
            print(lines.joined(separator: "\n"))
            return !meeting.isEmpty
        }

        /// `--validate`: every measured row predicted with its engine refitted without its fold.
        func runValidation(catalog: HardwareCatalog) throws -> Bool {
            let set = try ValidationSet.builtIn()
            let predictions = try set.crossValidate(holdout, engines: try Engines.all(), catalog: catalog)
            let summaries = ValidationSet.summarize(predictions)
            if json {
                struct Report: Encodable { var holdout: String; var refitted: [String]; var summaries: [ValidationSummary]; var rows: [ValidationPrediction] }
                let report = Report(holdout: holdout.rawValue, refitted: holdout == .none ? [] : ValidationSet.fittedParameters.map(\.name),
                                    summaries: summaries, rows: predictions)
                print(try JSONValueEncoder().encode(report).serializedString(.document))
            } else {
                var lines = ["holdout: \(holdout.rawValue)" + (holdout == .none ? " (shipped parameters, every row in view)"
                    : "; refitted per engine without the held-out rows: \(ValidationSet.fittedParameters.map(\.name).joined(separator: ", "))")]
                for p in predictions {
                    lines.append("\(p.id)\t\(p.engine)\t\(p.metric)\tmeasured \(String(format: "%.4g", p.measured))\tpredicted \(p.predicted.map { String(format: "%.4g", $0) } ?? "none")\t\(p.error.map { String(format: "%+.1f %%", $0 * 100) } ?? "-")\t(\(p.trainingRows) training rows)")
                }
                for s in summaries {
                    lines.append("\(s.group): \(s.rows) rows, median |error| \(String(format: "%.1f", s.medianError * 100)) %, worst \(s.worstRow) \(String(format: "%.2f", s.worstRatio))×")
                }
                print(lines.joined(separator: "\n"))
            }
            guard let all = summaries.first else { return false }
            return all.medianError <= 0.15 && all.worstRatio <= 2
        }

        /// The per-user speed floor of the typical load (`--slo-tps`, else ``TypicalLoad/defaultTokensPerSecond``).
        var floor: Double { sloTps ?? TypicalLoad.defaultTokensPerSecond }
        /// The TTFT bound of the typical load (`--slo-ttft`, else ``TypicalLoad/defaultTTFTSeconds``).
        var ttftBound: Double { sloTtft ?? TypicalLoad.defaultTTFTSeconds }

        /// The table of every catalog device × the overview variants, each at the count that serves the typical load cheapest.
        func overview(shape: ModelShape, catalog: HardwareCatalog, request: (DeviceSelection, Variant) throws -> FitRequest) throws -> Bool {
            var rows: [FitResult] = []
            let variants = try Variant.overview.map { try Variant.parse($0) }
            for hardware in catalog.hardware {
                for variant in variants {
                    if let chosen = try FitPlanner.cheapestAtTypicalLoad(on: hardware, tokensPerSecond: floor, ttft: ttftBound, request: { try request($0, variant) }) {
                        rows.append(chosen)
                    }
                }
            }
            if json {
                print(try JSONValueEncoder().encode(rows).serializedString(.document))
            } else {
                print(FitReport.table(rows, model: shape, context: context ?? inputTokens + outputTokens, floor: floor, ttft: ttftBound))
            }
            return true
        }
    }
}

/// Builds the model shape for `quantize fit MODEL` (``ModelShape/load(model:)``).
func loadModelShape(path: String) throws -> ModelShape { try ModelShape.load(model: path) }

extension ValidationSet.Holdout: ExpressibleByArgument {}

extension String {
    /// The string with its first letter upper-cased.
    var uppercasedFirst: String { prefix(1).uppercased() + dropFirst() }
}

/// Human-readable renderings of fit results.
enum FitReport {
    static func gb(_ bytes: Double) -> String { Format.bytes(Int(bytes.rounded())) }
    /// One table row: cells padded to their column's width, two spaces apart, no trailing spaces.
    static func line(_ cells: [String], widths: [Int]) -> String {
        var text = cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        while text.hasSuffix(" ") { text.removeLast() }
        return text
    }
    static func number(_ value: Double) -> String {
        if value >= 100 { return String(format: "%.0f", value) }
        if value >= 10 { return String(format: "%.1f", value) }
        return String(format: "%.2f", value)
    }

    static func breakdown(_ r: FitResult) -> String {
        var lines: [String] = []
        let m = r.memory
        lines.append("\(r.model.name) \(r.variant) on \(r.hardware) (\(r.engine), \(r.parallelism.summary)): \(r.verdict.uppercasedFirst)")
        lines.append("  parameters      \(Format.count(r.model.parameterCount)) (active per token \(Format.count(r.model.activeParameterCount))), \(r.execution)")
        lines.append("  memory / device weights \(gb(m.weights)) + KV \(gb(m.kvCache)) + activations \(gb(m.activations)) + overhead \(gb(m.overhead)) = \(gb(m.total)) of \(gb(m.available)) available (headroom \(gb(m.headroom)))")
        lines.append("  KV cache        \(Int(m.kvBytesPerTokenModel)) bytes/token for the model, budget \(gb(m.kvCapacity))/device = \(m.kvCacheTokens) tokens")
        lines.append("  context \(r.context): max concurrent sequences \(r.maxConcurrency); longest single context \(r.longestContext)")
        if let d = r.decodeSingleUser {
            lines.append("  decode, 1 user  \(number(d.tokensPerSecondPerUser)) tok/s (\(String(format: "%.1f", d.stepSeconds * 1000)) ms/token, \(d.bound)-bound)")
        }
        if let d = r.decode, d.concurrency > 1 {
            lines.append("  decode, \(d.concurrency) users \(number(d.tokensPerSecondPerUser)) tok/s each, \(number(d.tokensPerSecondTotal)) tok/s total (\(d.bound)-bound)")
        }
        if let t = r.throughput {
            lines.append("  serving         \(number(t.outputTokensPerSecond)) output tok/s at \(t.concurrency) in flight with prompts interleaved (\(number(t.tokensPerSecondPerUser)) tok/s each)")
        }
        if let load = r.load, load.users > 1 || load.queued > 0 {
            let queue = load.queued > 0 ? "\(load.inFlight) in flight, \(load.queued) queued (wait \(String(format: "%.1f", load.queueSeconds)) s)" : "\(load.inFlight) in flight"
            lines.append("  under load      \(load.users) users: \(queue); TTFT \(String(format: "%.2f", load.ttftSeconds)) s, E2E \(String(format: "%.1f", load.e2eSeconds)) s")
        }
        if let p = r.prefill {
            lines.append("  prefill         \(p.inputTokens) tokens: TTFT \(String(format: "%.3f", p.ttftSeconds)) s (\(number(p.tokensPerSecond)) tok/s, \(p.bound)-bound)")
        }
        if let s = r.slo {
            lines.append("  SLO             \(s.maxUsers) users meet \(s.tokensPerSecondPerUser.map { "≥ \(number($0)) tok/s" } ?? "")\(s.ttftSeconds.map { " TTFT ≤ \($0) s" } ?? "") (\(number(s.tokensPerSecondTotal)) tok/s total)")
        }
        if let cost = r.costPerMillionTokens, let price = r.pricePerHour {
            lines.append("  cost            $\(String(format: "%.3f", cost)) per million output tokens at $\(String(format: "%.2f", price))/device-hour")
        } else if r.pricePerHour == nil, let note = r.priceNote {
            lines.append("  cost            no price: \(note)")
        }
        if let plans = r.offload {
            for plan in plans {
                let marker = plan.mode == r.offloadBest ? " (fastest)" : ""
                let speed = plan.secondsPerToken >= 1 ? String(format: "%.1f s/token", plan.secondsPerToken) : String(format: "%.1f ms/token", plan.secondsPerToken * 1000)
                lines.append("  offload \(plan.mode.padding(toLength: 6, withPad: " ", startingAt: 0)) \(speed) = \(number(plan.tokensPerSecond)) tok/s; \(plan.deviceLayers) layers on device, \(gb(plan.hostWeightBytes)) on host; \(plan.bound)\(marker)")
            }
        }
        if let cpu = r.cpu { lines.append(cpu.summary) }
        for note in r.notes { lines.append("  note: \(note)") }
        return lines.joined(separator: "\n")
    }

    /// Several device choices side by side: one column each, one row per figure.
    static func sideBySide(_ results: [FitResult]) -> String {
        guard let first = results.first else { return "" }
        var lines = ["\(first.model.name) \(first.variant), context \(first.context)"]
        func ms(_ seconds: Double?) -> String { seconds.map { $0 >= 10 ? String(format: "%.1f s", $0) : String(format: "%.1f ms", $0 * 1000) } ?? "-" }
        let rows: [(String, (FitResult) -> String)] = [
            ("verdict", { $0.fits ? ($0.kvFitsAllUsers ? "fits" : "fits, queued") : ($0.offloadBest != nil ? "offload" : "does not fit") }),
            ("engine / split", { "\($0.engine) \($0.parallelism.summary)" }),
            ("weights/device", { gb($0.memory.weights) }),
            ("KV budget/device", { gb($0.memory.kvCapacity) }),
            ("KV holds (sequences)", { $0.fits ? "\($0.maxConcurrency)" : "-" }),
            ("in flight", { $0.load.map { "\($0.inFlight)" + ($0.queued > 0 ? " (+\($0.queued) queued)" : "") } ?? "-" }),
            ("tok/s, 1 user", { $0.decodeSingleUser.map { number($0.tokensPerSecondPerUser) } ?? "-" }),
            ("TTFT idle", { ms($0.prefill?.ttftSeconds) }),
            ("TTFT loaded", { $0.load.map { String(format: "%.2f s", $0.ttftSeconds) } ?? "-" }),
            ("tok/s total", { r in
                if let t = r.throughput { return number(t.outputTokensPerSecond) }
                if let best = r.offload?.first(where: { $0.mode == r.offloadBest }) { return "\(number(best.tokensPerSecond)) (offload \(best.mode))" }
                return "-"
            }),
            ("tok/s each, loaded", { $0.throughput.map { number($0.tokensPerSecondPerUser) } ?? "-" }),
            ("$/device-hour", { $0.pricePerHour.map { String(format: "%.2f", $0) } ?? "no price" }),
            ("$/M tokens", { $0.costPerMillionTokens.map { String(format: "%.3f", $0) } ?? "-" }),
            ("typical load: users", { r in r.typicalLoad.map { $0.users >= 1 ? "\($0.users) (\($0.limitedBy))" : "0 (\($0.limitedBy))" } ?? "-" }),
            ("typical: tok/s each", { r in r.typicalLoad.map { $0.users >= 1 ? number($0.servedTokensPerSecondPerUser) : "-" } ?? "-" }),
            ("typical: $/M tokens", { r in r.typicalLoad.map { $0.users >= 1 ? ($0.costPerMillionTokens.map { String(format: "%.3f", $0) } ?? "no price") : "-" } ?? "-" }),
        ]
        var table = [[""] + results.map(\.hardware)]
        for (label, value) in rows { table.append([label] + results.map(value)) }
        let widths = (0..<table[0].count).map { column in table.map { $0[column].count }.max() ?? 0 }
        for row in table {
            lines.append(FitReport.line(row, widths: widths))
        }
        if let load = results.compactMap(\.typicalLoad).first {
            lines.append("typical load: \(load.rule)")
        }
        for (index, r) in results.enumerated() {
            for note in r.notes { lines.append("note (\(results[index].hardware)): \(note)") }
        }
        return lines.joined(separator: "\n")
    }

    /// The catalog's devices, one line each.
    static func deviceList(_ catalog: HardwareCatalog) -> String {
        var table = [["name", "device", "kind", "memory GB", "GB/s", "bf16 TFLOPS", "$/hour", "price source"]]
        for h in catalog.hardware {
            let price = h.pricePerHour.map { String(format: "%.2f", $0) } ?? "-"
            let source = h.pricePerHour != nil ? (h.sources["price"] ?? "-") : (h.priceNote ?? "none given")
            table.append([h.name + (h.defaultCount.map { " (×\($0))" } ?? ""), h.displayName, h.kind.rawValue, String(format: "%g", h.memoryGB),
                          String(format: "%g", h.memoryBandwidthGBps), h.teraflops["bf16"].map { String(format: "%g", $0) } ?? "-", price, source])
        }
        let widths = (0..<7).map { column in table.map { $0[column].count }.max() ?? 0 }
        var lines = table.map { row in (row.prefix(7).enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) } + [row[7]]).joined(separator: "  ") }
        lines.append("short names: " + HardwareCatalog.aliases.keys.sorted().map { "\($0) → \(HardwareCatalog.aliases[$0] ?? "")" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    static func table(_ rows: [FitResult], model: ModelShape, context: Int, floor: Double, ttft: Double) -> String {
        var lines = ["\(model.name): \(Format.count(model.parameterCount)) parameters, context \(context); each device × variant at the count (1, 2, 4, 8) "
                     + "with the lowest $ per million output tokens at a typical load: as many users as each get ≥ \(TypicalLoad.format(floor)) tok/s "
                     + "with TTFT ≤ \(TypicalLoad.format(ttft)) s (--slo-tps, --slo-ttft), up to what the KV cache and batch limit hold"]
        let header = ["hardware", "variant", "fits", "config", "users", "tok/s each", "TTFT", "total tok/s", "$/M tok", "1 user tok/s", "limited by"]
        var table = [header]
        for r in rows {
            let config = r.fits ? "\(r.deviceCount)× \(r.parallelism.summary)" : "-"
            let load = r.typicalLoad
            let serves = (load?.users ?? 0) >= 1
            table.append([
                r.hardware.split(separator: ":").first.map(String.init) ?? r.hardware, r.variant, r.fits ? "yes" : "no", config,
                r.fits ? "\(load?.users ?? 0)" : "-",
                serves ? (r.throughput.map { number($0.tokensPerSecondPerUser) } ?? "-") : "-",
                serves ? (r.load.map { String(format: "%.2f s", $0.ttftSeconds) } ?? "-") : "-",
                serves ? (r.throughput.map { number($0.outputTokensPerSecond) } ?? "-") : "-",
                serves ? (r.costPerMillionTokens.map { String(format: "%.3f", $0) } ?? "no price") : "-",
                r.decodeSingleUser.map { number($0.tokensPerSecondPerUser) } ?? "-",
                r.fits ? (load?.limitedBy ?? "-") : (r.weightsFit ? "no KV room" : "weights do not fit"),
            ])
        }
        let widths = (0..<header.count).map { column in table.map { $0[column].count }.max() ?? 0 }
        for row in table {
            lines.append(FitReport.line(row, widths: widths))
        }
        lines.append("users, tok/s each, TTFT, total tok/s and $/M: at that load with prompts interleaved (vLLM unless --engine; llama.cpp on CPUs); 1 user tok/s: decode of one user alone; users 0: not even one user meets the bounds.")
        return lines.joined(separator: "\n")
    }
}
