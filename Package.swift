// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "crypto-sentinel",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "crypto-sentinel", targets: ["crypto-sentinel"]),
        .executable(name: "sentinel-probe", targets: ["sentinel-probe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // libelf (elfutils) through pkg-config: `apt-get install libelf-dev`.
        .systemLibrary(name: "CLibElf", pkgConfig: "libelf", providers: [.apt(["libelf-dev"])]),
        // Pure core: ELF model, loader resolution, findings, report. No I/O side effects.
        .target(name: "SentinelCore"),
        // Thin adapters: libelf reader, filesystem walk and cache, host loader facts, /proc.
        .target(name: "SentinelSystem", dependencies: ["SentinelCore", "CLibElf"]),
        .executableTarget(
            name: "crypto-sentinel",
            dependencies: [
                "SentinelCore", "SentinelSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The native POST helper: C, links only libc/libdl, dlopen()s one libcrypto and resolves every
        // OpenSSL function with dlsym (OpenSSL's headers from libssl-dev give types and prototypes only).
        .executableTarget(
            name: "sentinel-probe",
            cSettings: [.unsafeFlags(["-Wall", "-O1"])],
            linkerSettings: [
                .linkedLibrary("dl"),
                // swiftc links every executable with swiftrt.o and -lswiftCore; the Embedded link mode
                // adds neither, so readelf -d shows libc only: no Swift runtime in the service's env.
                .unsafeFlags(["-enable-experimental-feature", "Embedded", "-no-toolchain-stdlib-rpath"]),
            ]
        ),
        // Benchmark driver for scripts/bench.sh: repeated audits in one process (cache effect).
        .executableTarget(name: "sentinel-bench", dependencies: ["SentinelCore", "SentinelSystem"]),
        // Helpers the test targets share.
        .target(name: "SentinelTestSupport", path: "Tests/SentinelTestSupport"),
        .testTarget(name: "SentinelCoreTests", dependencies: ["SentinelCore", "SentinelSystem", "SentinelTestSupport"]),
        .testTarget(name: "SentinelSystemTests", dependencies: ["SentinelCore", "SentinelSystem", "SentinelTestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["SentinelCore", "SentinelTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
