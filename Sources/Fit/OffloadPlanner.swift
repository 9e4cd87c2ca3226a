import Foundation

/// Plans for a model whose weights do not fit the devices: stream them over the host link, split
/// layers with the CPU computing its share, or run on the CPU alone (at the request's concurrency, 1 for `max`).
public enum OffloadPlanner {
    /// Every applicable plan for `request` (stream needs a host link; split and cpu need `request.host`).
    public static func plans(_ request: FitRequest, bytes: WeightBytes, execution: Execution) -> [OffloadPlan] {
        let users: Int
        if case .count(let n) = request.concurrency { users = n } else { users = 1 }
        var single = request
        single.concurrency = .count(users)
        let memory = FitPlanner.memoryBreakdown(single, bytes: bytes)
        let count = Double(request.devices.count)
        let total = Double(bytes.total)
        // Room for weights on all devices once overhead, activations and one sequence's KV are set aside.
        let room = max(0, (memory.available - memory.activations - memory.overhead - memory.kvCache) * count)
        let perLayer = total / Double(request.model.layerCount)
        let deviceLayers = min(request.model.layerCount, Int(room / perLayer))
        let deviceBytes = Double(deviceLayers) * perLayer
        let hostBytes = total - deviceBytes
        let fraction = deviceBytes / total

        // Device time for its share: the full-model step scaled by the share, fixed costs kept.
        let full = SpeedModel(request: single, bytes: bytes, execution: execution, memory: memory)
        let step = full.decode(concurrency: users).stepSeconds
        let fixed = full.overhead(sequences: Double(users))
        let deviceSeconds = fraction * max(step - fixed, 0) + fixed

        var plans: [OffloadPlan] = []
        if let link = request.hostLink {
            let transfer = hostBytes / (link.gigabytesPerSecond * 1e9 * request.engine.offloadLinkEfficiency)
            let seconds = deviceSeconds + transfer
            plans.append(OffloadPlan(mode: "stream", deviceWeightBytes: deviceBytes, hostWeightBytes: hostBytes, deviceLayers: deviceLayers,
                                     secondsPerToken: seconds, tokensPerSecond: Double(users) / seconds,
                                     bound: "\(link.name) at \(Int(request.engine.offloadLinkEfficiency * 100)) % of \(link.gigabytesPerSecond) GB/s"))
        }
        if let host = request.host, let cpu = cpuStep(request, host: host, bytes: bytes, users: users) {
            let cpuShare = (1 - fraction) * cpu
            let seconds = deviceSeconds + cpuShare
            plans.append(OffloadPlan(mode: "split", deviceWeightBytes: deviceBytes, hostWeightBytes: hostBytes, deviceLayers: deviceLayers,
                                     secondsPerToken: seconds, tokensPerSecond: Double(users) / seconds, bound: "host memory bandwidth of \(host.name)"))
            plans.append(OffloadPlan(mode: "cpu", deviceWeightBytes: 0, hostWeightBytes: total, deviceLayers: 0,
                                     secondsPerToken: cpu, tokensPerSecond: Double(users) / cpu, bound: "host memory bandwidth of \(host.name)"))
        }
        switch request.offload {
        case .stream, .split, .cpu: return plans.filter { $0.mode == request.offload.rawValue }
        default: return plans
        }
    }

    /// Seconds per token at batch 1 with every weight on `host` (llama.cpp-style CPU decode).
    static func cpuStep(_ request: FitRequest, host: Hardware, bytes: WeightBytes, users: Int) -> Double? {
        var cpu = request
        cpu.devices = DeviceSelection(hardware: host, count: 1)
        cpu.concurrency = .count(users)
        cpu.interconnect = nil
        let execution = request.variant.execution(on: host)
        let memory = FitPlanner.memoryBreakdown(cpu, bytes: bytes)
        return SpeedModel(request: cpu, bytes: bytes, execution: execution, memory: memory).decode(concurrency: users).stepSeconds
    }

    /// CPU-only estimate for `request` on `host` as a full result (used by `--device local`).
    public static func cpuOnly(_ request: FitRequest, host: Hardware) throws -> FitResult {
        var cpu = request
        cpu.devices = DeviceSelection(hardware: host, count: 1)
        cpu.interconnect = nil
        cpu.hostLink = nil
        return try FitPlanner.plan(cpu)
    }
}
