import Foundation
import SentinelCore
import SentinelTestSupport
import Synchronization

/// Runs the built `crypto-sentinel` and the fixture scripts for the end-to-end tests.
enum Sentinel {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var report: Report? {
            try? JSONDecoder().decode(Report.self, from: Data(stdout.utf8))
        }
        var findings: [Finding] { report?.targets.flatMap(\.findings) ?? [] }
        func codes() -> [String] { findings.map(\.code.rawValue).sorted() }
        func findings(_ code: FindingCode) -> [Finding] { findings.filter { $0.code == code } }
    }

    /// The executable next to the test bundle (swift test builds every product into the same folder).
    static var binary: String {
        if let override = ProcessInfo.processInfo.environment["SENTINEL_BIN"] { return override }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The xctest bundle may sit one level down (…/debug/crypto-sentinelPackageTests.xctest).
        if dir.lastPathComponent.hasSuffix(".xctest") { dir = dir.deletingLastPathComponent() }
        return dir.appendingPathComponent("crypto-sentinel").path
    }

    static func run(_ args: [String], as user: String? = nil) throws -> Result {
        var argv = [binary] + args
        if let user { argv = ["setpriv", "--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--"] + argv }
        return try shell(argv)
    }

    static func shell(_ argv: [String], environment: [String: String]? = nil) throws -> Result {
        let r = try Subprocess.run(argv, environment: environment)
        return Result(status: r.status, stdout: r.text, stderr: r.stderr)
    }
}

enum Fixtures {
    static let root = FixtureScripts.root
    static let scripts = FixtureScripts.folder

    /// A gcc-built tree of scripts/fixtures/elf-trees.sh.
    static func elf(_ tree: String) throws -> String { try FixtureScripts.elfTrees() + "/" + tree }

    /// Real cx_Freeze bundles (scripts/fixtures/cxfreeze-bundles.sh; needs PyPI on first use).
    static func cxfreeze(_ variant: String) throws -> String {
        try FixtureScripts.build("cxfreeze-bundles.sh", out: root + "/cxfreeze")
        return root + "/cxfreeze/" + variant
    }

    /// A private copy of a fixture tree the test may change.
    static func copy(_ path: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-\(UUID().uuidString)").path
        let r = try Sentinel.shell(["cp", "-a", path, dir])
        guard r.status == 0 else { throw FixtureError(message: "cp failed: \(r.stderr)") }
        return dir
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

extension Fixtures {
    /// Fake libcrypto files that hang, crash or print garbage (scripts/fixtures/post-libs.sh).
    static func postLib(_ mode: String) throws -> String {
        try FixtureScripts.build("post-libs.sh", out: root + "/post")
        return root + "/post/\(mode)/libcrypto.so.3"
    }
}

/// A private folder with fips.so, its fipsmodule.cnf (openssl fipsinstall) and the configs the POST
/// tests use; world-readable so a non-root service user can load it. Tests remove it (`defer`).
struct FIPSLab {
    let dir: String
    var modules: String { dir + "/modules" }
    /// fips + base activated, default_properties = fips=yes, module config through `.include`.
    var fipsConf: String { dir + "/openssl-fips.cnf" }
    /// The same with a typo in the `.include` path.
    var typoConf: String { dir + "/openssl-typo.cnf" }
    /// A config without any FIPS setting.
    var plainConf: String { dir + "/openssl-plain.cnf" }
    /// An empty modules folder (no fips.so).
    var emptyModules: String { dir + "/empty" }

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-fips-\(UUID().uuidString)").path
        let r = try Sentinel.shell(["bash", Fixtures.scripts + "/fips-lab.sh", dir])
        guard r.status == 0 else { throw FixtureError(message: "fips-lab.sh failed: \(r.stderr)") }
        try #"""
        {"schema_version": 1, "checked": "2026-12-07", "modules": [
          {"name": "OpenSSL FIPS Provider", "versions": ["3.5.9"], "standard": "FIPS 140-3", "certificate": 99999,
           "status": "active", "sunset": "2099-12-31", "source": "test data: the lab's provider, not a real certificate"}]}
        """#.write(toFile: validations, atomically: true, encoding: .utf8)
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    /// Validation data that lists the lab's provider (Debian 13's 3.5.9, which has no certificate) as
    /// validated: for tests that expect a clean FIPS run and are not about validation.
    var validations: String { dir + "/fips-validations.json" }

    /// Flips one byte in the middle of fips.so (after fipsinstall): the integrity self-test fails.
    func corruptModule() throws {
        let path = modules + "/fips.so"
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[data.count / 2] ^= 0xff
        try data.write(to: URL(fileURLWithPath: path))
    }
}

/// A stand-in service started by a test and stopped (by pid) when the test ends.
final class Service {
    let process = Process()
    var pid: Int32 { process.processIdentifier }

    /// Runs `argv` with exactly `environment`, optionally as `user` (setpriv, supplementary groups cleared).
    init(_ argv: [String], environment: [String: String], user: String? = nil, cwd: String? = nil) throws {
        // The environment applies only after the user change (setpriv itself runs with ours).
        var full = ["/usr/bin/env", "-i"] + environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + argv
        if let user { full = ["setpriv", "--reuid=\(user)", "--regid=\(user == "nobody" ? "nogroup" : user)", "--clear-groups", "--"] + full }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = full
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Waits until the process maps a libcrypto (it has loaded OpenSSL and its config).
    func waitForLibcrypto(count: Int = 1, seconds: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            // /proc files report size 0: read to EOF (String(contentsOfFile:) may stop early).
            if let data = FileHandle(forReadingAtPath: "/proc/\(pid)/maps")?.readDataToEndOfFile() {
                let maps = String(decoding: data, as: UTF8.self)
                let libs = Set(maps.split(separator: "\n").compactMap { line -> String? in
                    guard let slash = line.firstIndex(of: "/") else { return nil }
                    let path = String(line[slash...])
                    return (path.split(separator: "/").last ?? "").hasPrefix("libcrypto") ? path : nil
                })
                if libs.count >= count { usleep(200_000); return true }
            }
            usleep(50_000)
        }
        return false
    }

    var isRunning: Bool { process.isRunning }

    func stop() {
        if process.isRunning { kill(pid, SIGKILL); process.waitUntilExit() }
    }
    deinit { stop() }
}
