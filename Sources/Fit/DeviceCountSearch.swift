extension FitPlanner {
    /// The device counts the overview tries for `hardware`, smallest first: 1, 2, 4 and 8, or the
    /// catalog's default count and the larger of those; a CPU runs as one device.
    public static func overviewCounts(for hardware: Hardware) -> [Int] {
        if hardware.kind == .cpu { return [1] }
        let counts = [1, 2, 4, 8]
        guard let base = hardware.defaultCount else { return counts }
        return [base] + counts.filter { $0 > base }
    }

    /// The plan on the smallest of ``overviewCounts(for:)`` devices of `hardware` that fits,
    /// without offloading, or the plan at the largest count when none fits; a count the model's heads
    /// do not divide runs as TP × PP, and counts no parallelism takes are skipped.
    /// - Parameter request: the request for a device selection (the caller's options).
    /// - Throws: what ``plan(_:)`` or `request` throws.
    public static func smallestFit(on hardware: Hardware, request: (DeviceSelection) throws -> FitRequest) throws -> FitResult? {
        var chosen: FitResult?
        for count in overviewCounts(for: hardware) {
            var fitRequest = try request(DeviceSelection(hardware: hardware, count: count))
            // Counts tensor parallelism cannot take run as TP × PP; counts no parallelism takes are skipped.
            if (try? parallelism(fitRequest)) == nil { continue }
            fitRequest.offload = .none
            let result = try plan(fitRequest)
            chosen = result
            if result.fits { break }
        }
        return chosen
    }
}
