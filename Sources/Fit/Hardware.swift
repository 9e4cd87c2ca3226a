import Foundation
import Formats

/// What kind of device a catalog entry describes.
public enum DeviceKind: String, Codable, Sendable {
    /// A GPU with its own memory (NVIDIA, AMD).
    case gpu
    /// A Google TPU chip.
    case tpu
    /// Another accelerator card (Intel Gaudi).
    case accelerator
    /// A CPU socket with its DRAM; weights are read from host memory.
    case cpu
}

/// One accelerator or CPU socket of the hardware catalog (schema: formats/fit-catalog.md).
///
/// Rates are dense (not 2:4 sparse); memory sizes are decimal gigabytes as the datasheet writes
/// them unless `usableMemoryGiB` gives what the driver actually exposes.
public struct Hardware: Codable, Sendable, Hashable {
    /// The name users type after `--gpu` (lowercase, `h100-sxm-80gb`).
    public var name: String
    /// The marketing name.
    public var displayName: String
    /// GPU, TPU, accelerator or CPU.
    public var kind: DeviceKind
    /// Memory per device in decimal gigabytes (10^9 bytes), as on the datasheet.
    public var memoryGB: Double
    /// Memory per device the runtime can allocate, in GiB, when known from a measurement.
    public var usableMemoryGiB: Double?
    /// Memory bandwidth per device in decimal gigabytes per second.
    public var memoryBandwidthGBps: Double
    /// Dense peak rates in TFLOPS (TOPS for int8), keyed by precision: `fp32`, `fp16`, `bf16`, `fp8`, `int8`, `fp4`.
    public var teraflops: [String: Double]
    /// Precisions the matrix units run natively; a weight format not listed is dequantized to 16-bit (weight-only).
    public var native: [String]
    /// How many devices the bare name stands for (2 for the H100 NVL pair); nil means 1.
    public var defaultCount: Int?
    /// Name of the device-to-device link (a `links` entry) used for tensor parallelism.
    public var interconnect: String?
    /// How many devices share `interconnect` (an NVLink domain); beyond it traffic goes over `hostLink`. nil means all.
    public var interconnectGroup: Int?
    /// Name of the link to host memory (a `links` entry), used for weight offloading.
    public var hostLink: String?
    /// Thermal design power in watts.
    public var tdpWatts: Double?
    /// Default rental price in US dollars per device-hour; nil when no source gave one.
    public var pricePerHour: Double?
    /// Why the entry has no `pricePerHour` (no listing found, sold only as part of a host); nil when it has one.
    public var priceNote: String?
    /// Physical cores (CPU entries).
    public var cores: Int?
    /// Source key (from the catalog's `sources`) for each field group: memory, bandwidth, compute, tdp, links, price.
    public var sources: [String: String]
    /// Free-text caveats.
    public var notes: String?
    /// What `--device local` measured on this machine (nil for catalog entries); the CPU model
    /// (``CPUModel``) predicts llama.cpp decode and prefill from it.
    public var probe: CPUProbe? = nil

    /// Bytes one device can hold: `usableMemoryGiB` when known, else the datasheet gigabytes.
    public var memoryBytes: Double {
        if let usableMemoryGiB { return usableMemoryGiB * 1_073_741_824 }
        return memoryGB * 1e9
    }

    /// Memory bandwidth in bytes per second.
    public var bandwidthBytesPerSecond: Double { memoryBandwidthGBps * 1e9 }

    /// Whether the matrix units run `precision` natively.
    public func runsNatively(_ precision: String) -> Bool { native.contains(precision) }

    /// Dense peak in FLOP/s for `precision`, falling back to the 16-bit rate (then fp32) when the
    /// precision is not listed.
    public func peakFlops(_ precision: String) -> Double {
        let tera = teraflops[precision] ?? teraflops["bf16"] ?? teraflops["fp16"] ?? teraflops["fp32"] ?? 0
        return tera * 1e12
    }
}

/// A device-to-device or host link of the catalog.
public struct Link: Codable, Sendable, Hashable {
    /// The name hardware entries refer to (`nvlink4`, `pcie-gen5-x16`).
    public var name: String
    /// Bandwidth per direction in decimal gigabytes per second.
    public var gigabytesPerSecond: Double
    /// Fixed cost of one all-reduce over this link in microseconds (launch and synchronisation).
    public var allReduceLatencyMicroseconds: Double
    /// Source key.
    public var source: String
}

/// The hardware catalog: devices, links and the sources their numbers come from.
///
/// The built-in catalog is `Resources/catalog.json`; `merging(_:)` adds or replaces entries from a
/// user file in the same schema (formats/fit-catalog.md).
public struct HardwareCatalog: Codable, Sendable {
    /// Schema version (1).
    public var schemaVersion: Int
    /// Source texts by key (URL plus what was read there).
    public var sources: [String: String]
    /// Links by name.
    public var links: [Link]
    /// Devices.
    public var hardware: [Hardware]

    /// Creates a catalog from its parts.
    public init(schemaVersion: Int = 1, sources: [String: String], links: [Link], hardware: [Hardware]) {
        self.schemaVersion = schemaVersion
        self.sources = sources
        self.links = links
        self.hardware = hardware
    }

    /// The catalog shipped with the tool.
    public static func builtIn() throws -> HardwareCatalog {
        guard let url = Bundle.module.url(forResource: "catalog", withExtension: "json", subdirectory: "Resources") else {
            throw FitError(.unreadable, path: "Resources/catalog.json", message: "the built-in hardware catalog is missing from the bundle",
                           remedy: "rebuild the package")
        }
        return try load(url.path)
    }

    /// Reads a catalog file; all of `sources`, `links` and `hardware` are optional in a user file.
    public static func load(_ path: String) throws -> HardwareCatalog {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw FitError(.unreadable, path: path, message: "cannot read the catalog file (\(error.localizedDescription))",
                           remedy: "check the path given to --catalog")
        }
        return try decode(data, path: path)
    }

    /// Decodes catalog JSON, checking that every number is positive and every source key exists.
    public static func decode(_ data: Data, path: String) throws -> HardwareCatalog {
        struct Partial: Decodable {
            var schemaVersion: Int?
            var sources: [String: String]?
            var links: [Link]?
            var hardware: [Hardware]?
        }
        let partial: Partial
        do { partial = try JSONValueDecoder().decode(Partial.self, from: [UInt8](data), path: path) } catch {
            throw FitError(.invalidCatalog, path: path, message: "not a hardware catalog: \(describe(error))",
                           remedy: "follow the schema in formats/fit-catalog.md")
        }
        let catalog = HardwareCatalog(schemaVersion: partial.schemaVersion ?? 1, sources: partial.sources ?? [:],
                                      links: partial.links ?? [], hardware: partial.hardware ?? [])
        for entry in catalog.hardware {
            let numbers = [entry.memoryGB, entry.memoryBandwidthGBps] + Array(entry.teraflops.values)
            guard numbers.allSatisfy({ $0.isFinite && $0 > 0 }), !entry.teraflops.isEmpty else {
                throw FitError(.invalidCatalog, path: path, entry: entry.name,
                               message: "memoryGB, memoryBandwidthGBps and every teraflops value must be positive numbers",
                               remedy: "fix the entry '\(entry.name)'")
            }
            let optional = [entry.usableMemoryGiB, entry.tdpWatts].compactMap { $0 }
            guard optional.allSatisfy({ $0.isFinite && $0 > 0 }), (entry.pricePerHour ?? 0) >= 0, (entry.interconnectGroup ?? 1) >= 1 else {
                throw FitError(.invalidCatalog, path: path, entry: entry.name,
                               message: "usableMemoryGiB and tdpWatts must be positive, pricePerHour not negative, interconnectGroup at least 1",
                               remedy: "fix the entry '\(entry.name)'")
            }
            if let count = entry.defaultCount, count < 1 {
                throw FitError(.invalidCatalog, path: path, entry: entry.name, message: "defaultCount must be at least 1",
                               remedy: "fix the entry '\(entry.name)'")
            }
        }
        for link in catalog.links where !(link.gigabytesPerSecond > 0 && link.allReduceLatencyMicroseconds >= 0) {
            throw FitError(.invalidCatalog, path: path, entry: link.name, message: "a link needs gigabytesPerSecond > 0 and allReduceLatencyMicroseconds ≥ 0",
                           remedy: "fix the link '\(link.name)'")
        }
        return catalog
    }

    /// This catalog with `other`'s sources, links and devices added; entries with the same name are replaced.
    public func merging(_ other: HardwareCatalog) -> HardwareCatalog {
        var result = self
        result.sources.merge(other.sources) { _, new in new }
        for link in other.links {
            if let index = result.links.firstIndex(where: { $0.name == link.name }) { result.links[index] = link } else { result.links.append(link) }
        }
        for entry in other.hardware {
            if let index = result.hardware.firstIndex(where: { $0.name == entry.name }) { result.hardware[index] = entry } else { result.hardware.append(entry) }
        }
        return result
    }

    /// Short names people type for catalog devices (`h100` is the SXM 80 GB part, `a100` the SXM 80 GB one).
    public static let aliases: [String: String] = [
        "h100": "h100-sxm-80gb", "h100-sxm": "h100-sxm-80gb", "h100-80gb": "h100-sxm-80gb", "h100-pcie": "h100-pcie-80gb",
        "a100": "a100-sxm-80gb", "a100-80gb": "a100-sxm-80gb", "a100-sxm": "a100-sxm-80gb", "a100-40gb": "a100-sxm-40gb",
        "a100-pcie": "a100-pcie-80gb", "h200": "h200-sxm-141gb", "h200-sxm": "h200-sxm-141gb", "4090": "rtx-4090", "rtx4090": "rtx-4090",
        "b200-sxm": "b200", "mi300": "mi300x", "mi325": "mi325x", "gaudi-3": "gaudi3", "gaudi": "gaudi3", "v5e": "tpu-v5e", "v5p": "tpu-v5p",
        "tpu": "tpu-v5e", "l40": "l40s", "epyc": "epyc-9654", "xeon": "xeon-8480", "h100-nvl-pair": "h100-nvl",
    ]

    /// The device called `name` (case-insensitive, or one of ``aliases``); an unknown name throws
    /// `unknownHardware` with the closest known name ("did you mean") and every known name.
    public func device(named name: String) throws -> Hardware {
        var key = name.lowercased()
        if !hardware.contains(where: { $0.name.lowercased() == key }), let alias = Self.aliases[key] { key = alias }
        if let found = hardware.first(where: { $0.name.lowercased() == key }) {
            for linkName in [found.interconnect, found.hostLink].compactMap({ $0 }) where link(named: linkName) == nil {
                throw FitError(.invalidCatalog, path: name, message: "'\(found.name)' refers to the link '\(linkName)', which the catalog does not define; links: \(links.map(\.name).joined(separator: ", "))",
                               remedy: "add the link to the catalog's links or use a defined one")
            }
            return found
        }
        let suggestion = closestName(to: key, among: hardware.map(\.name) + Self.aliases.keys.sorted()).map { " — did you mean '\(Self.aliases[$0] ?? $0)'?" } ?? ""
        throw FitError(.unknownHardware, path: name,
                       message: "unknown hardware '\(name)'\(suggestion); known: \(hardware.map(\.name).joined(separator: ", "))",
                       remedy: "use one of the known names, or describe the device in a JSON file passed with --catalog")
    }

    /// The link called `name`, or nil.
    public func link(named name: String?) -> Link? {
        guard let name else { return nil }
        return links.first { $0.name == name }
    }
}

/// A device choice as users write it: `h100-sxm-80gb`, `h100-sxm-80gb:2`, `h100-nvl` (a pair) or `h100-nvl:1`.
public struct DeviceSelection: Sendable, Hashable {
    /// The catalog entry.
    public var hardware: Hardware
    /// How many devices (tensor-parallel degree for GPU engines).
    public var count: Int

    /// Creates a selection.
    public init(hardware: Hardware, count: Int) {
        self.hardware = hardware
        self.count = count
    }

    /// Parses `NAME[:COUNT]` (also `NAMExCOUNT` is not accepted, to keep names with `x` unambiguous).
    public static func parse(_ text: String, catalog: HardwareCatalog) throws -> DeviceSelection {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2, let name = parts.first, !name.isEmpty else {
            throw FitError(.invalidRequest, path: text, message: "a device is written NAME or NAME:COUNT",
                           remedy: "for example h100-sxm-80gb:2")
        }
        let hardware = try catalog.device(named: name)
        var count = hardware.defaultCount ?? 1
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), parsed >= 1, parsed <= 4096 else {
                throw FitError(.invalidRequest, path: text, message: "the device count '\(parts[1])' is not a whole number from 1 to 4096",
                               remedy: "write NAME:COUNT, for example h100-sxm-80gb:2")
            }
            count = parsed
        }
        return DeviceSelection(hardware: hardware, count: count)
    }

    /// `name:count`.
    public var label: String { "\(hardware.name):\(count)" }
}

/// The candidate nearest to `text` by edit distance (or one that starts with it), when close enough
/// to be a likely typo: at most a third of the longer name's characters differ.
func closestName(to text: String, among candidates: [String]) -> String? {
    let key = text.lowercased()
    if let prefixed = candidates.first(where: { $0.hasPrefix(key) && key.count >= 2 }) { return prefixed }
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() { current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))) }
            previous = current
        }
        return previous[b.count]
    }
    let scored = candidates.map { ($0, distance(Array(key), Array($0.lowercased()))) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(2, max(key.count, best.0.count) / 3) ? best.0 : nil
}

/// A short description of a decoding error (the coding path and what was wrong).
func describe(_ error: Error) -> String {
    switch error {
    case let error as FormatError:
        return error.description
    case DecodingError.keyNotFound(let key, let context):
        return "missing key '\(key.stringValue)' at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
    case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
        return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
    case DecodingError.dataCorrupted(let context):
        return context.debugDescription
    default:
        return String(describing: error)
    }
}
