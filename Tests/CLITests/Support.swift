import Foundation
import SentinelCore
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
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        let errData = Mutex(Data())
        let reader = Thread { errData.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() } }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData.withLock { $0 }, as: UTF8.self))
    }
}

enum Fixtures {
    static let root = ProcessInfo.processInfo.environment["SENTINEL_FIXTURES"] ?? "/tmp/crypto-sentinel-fixtures"
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/fixtures").path

    /// gcc-built trees (scripts/fixtures/elf-trees.sh; idempotent and locked, so every test may call it).
    static func elf(_ tree: String) throws -> String {
        let r = try Sentinel.shell(["bash", scripts + "/elf-trees.sh", root + "/elf"])
        guard r.status == 0 else { throw FixtureError(message: "elf-trees.sh failed: \(r.stderr)") }
        return root + "/elf/" + tree
    }

    /// Real cx_Freeze bundles (scripts/fixtures/cxfreeze-bundles.sh; needs PyPI on first use).
    static func cxfreeze(_ variant: String) throws -> String {
        let r = try Sentinel.shell(["bash", scripts + "/cxfreeze-bundles.sh", root + "/cxfreeze"])
        guard r.status == 0 else { throw FixtureError(message: "cxfreeze-bundles.sh failed: \(r.stdout)\(r.stderr)") }
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
