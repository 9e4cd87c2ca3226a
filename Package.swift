// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "quantize",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "quantize", targets: ["QuantizeCLI"]),
        .library(name: "Formats", targets: ["Formats"]),
        .library(name: "Quantize", targets: ["Quantize"]),
        .library(name: "Fit", targets: ["Fit"]),
        .library(name: "Model", targets: ["Model"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // MARK: System libraries and C kernels
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),

        // MARK: Library modules (each imports only those below it)
        .target(name: "Formats", dependencies: ["CZstd", "CKernels", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Quantize", dependencies: ["Formats", "CBLAS", "CKernels"]),
        .target(name: "Fit", dependencies: ["Quantize", "Formats", "CBLAS", "CKernels"], resources: [.copy("Resources")]),
        // The forward pass, tokenizers and model-level evaluation (above Quantize, beside Fit).
        .target(name: "Model", dependencies: ["Quantize", "Formats", "CBLAS"]),

        // MARK: Command line
        .executableTarget(
            name: "QuantizeCLI",
            dependencies: [
                "Formats", "Quantize", "Fit", "Model",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .executableTarget(name: "QuantizeBench", dependencies: ["Formats", "Quantize", "Fit", "CKernels"]),

        // MARK: Tests
        .target(name: "TestSupport", dependencies: ["Formats"], path: "Sources/TestSupport"),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "TestSupport"]),
        .testTarget(name: "QuantizeTests", dependencies: ["Quantize", "Formats", "TestSupport"]),
        .testTarget(name: "FitTests", dependencies: ["Fit", "TestSupport"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Quantize", "Formats", "TestSupport"]),
        .testTarget(name: "QuantizeCLITests", dependencies: ["TestSupport"]),

        // MARK: Fuzzing (fuzz/README.md)
        // The in-memory entry points the fuzz harness drives; the test replays fuzz/corpus through them.
        .target(name: "FuzzSupport", dependencies: ["Formats", "Quantize", "Fit", "Model"], path: "Sources/FuzzSupport"),
        .testTarget(name: "FuzzCorpusTests", dependencies: ["FuzzSupport", "Formats", "Quantize", "Fit", "Model"]),
    ]
)

// The libFuzzer harness needs -sanitize=fuzzer to link, so it exists only when tools/fuzz.sh
// builds it (QUANTIZE_FUZZ=1); `swift build` and `swift test` never see it.
if Context.environment["QUANTIZE_FUZZ"] == "1" {
    package.targets.append(
        .executableTarget(name: "QuantizeFuzz", dependencies: ["FuzzSupport"], path: "fuzz/Harness",
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
}
