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
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        // libelf (elfutils) through pkg-config: `apt-get install libelf-dev`.
        .systemLibrary(name: "CLibElf", pkgConfig: "libelf", providers: [.apt(["libelf-dev"])]),
        // libsystemd's headers (libsystemd-dev): sd_notify, sd_journal_sendv, sd_listen_fds. Not linked: the
        // shim dlopen()s libsystemd.so.0 on first use (see shim.h), so only the daemon loads it.
        .systemLibrary(name: "CLibSystemd", providers: [.apt(["libsystemd-dev"])]),
        // Linux calls Swift's Glibc module leaves out (closefrom in posix_spawn, pipe2, pidfd, epoll): header only.
        .systemLibrary(name: "CLinux"),
        // zlib and libdeflate (zlib1g-dev, libdeflate-dev): PyInstaller archive members are inflated in memory.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev", "libdeflate-dev"])]),
        // libyaml through pkg-config (libyaml-dev): the config file's parser.
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        // Pure core: ELF model, loader resolution, findings, report, daemon config and change tracking.
        // No I/O side effects (libyaml only parses text it is given).
        .target(name: "SentinelCore", dependencies: ["CYAML"]),
        // Thin adapters: libelf reader, filesystem walk and cache, host loader facts, /proc, the probe,
        // sd_notify and the journal.
        .target(name: "SentinelSystem", dependencies: ["SentinelCore", "CLibElf", "CLibSystemd", "CLinux", "CZlib"]),
        // The long-running service: scheduler, cycle, persistence, the Unix-socket API and metrics.
        .target(
            name: "SentinelDaemon",
            dependencies: [
                "SentinelCore", "SentinelSystem", "CLibSystemd", "CLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "crypto-sentinel",
            dependencies: [
                "SentinelCore", "SentinelSystem", "SentinelDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The native POST helper: C, links only libc/libdl, dlopen()s one libcrypto and resolves every
        // OpenSSL function with dlsym (OpenSSL's headers from libssl-dev give types and prototypes only).
        .executableTarget(
            name: "sentinel-probe",
            cSettings: [.unsafeFlags(["-Wall", "-O2"])],
            linkerSettings: [
                .linkedLibrary("dl"),
                // swiftc links every executable with swiftrt.o and -lswiftCore; the Embedded link mode
                // adds neither, so readelf -d shows libc only: no Swift runtime in the service's env.
                // -no-static-stdlib (the last of the pair wins) undoes `--static-swift-stdlib` for this
                // C target: it would add NEEDED libstdc++ and libm, which ld.so loads and relocates in
                // both of the probe's execs (~0.5 ms each) for nothing the probe calls.
                .unsafeFlags(["-enable-experimental-feature", "Embedded", "-no-toolchain-stdlib-rpath", "-no-static-stdlib"]),
            ]
        ),
        // Benchmark driver for scripts/bench.sh (repeated audits in one process: the cache effect) and
        // `serve` (the API alone on a fixed report, for scripts/bench/uds-load.c before or beside the daemon).
        .executableTarget(name: "sentinel-bench", dependencies: ["SentinelCore", "SentinelSystem", "SentinelDaemon"]),
        // Helpers the test targets share.
        .target(name: "SentinelTestSupport", dependencies: ["SentinelCore"], path: "Tests/SentinelTestSupport"),
        .testTarget(name: "SentinelCoreTests", dependencies: ["SentinelCore", "SentinelSystem", "SentinelTestSupport"]),
        .testTarget(name: "SentinelSystemTests", dependencies: ["SentinelCore", "SentinelSystem", "SentinelTestSupport"]),
        .testTarget(
            name: "SentinelDaemonTests",
            dependencies: [
                "SentinelCore", "SentinelSystem", "SentinelDaemon", "SentinelTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "CLITests", dependencies: ["SentinelCore", "SentinelDaemon", "SentinelTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
