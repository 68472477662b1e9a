import Foundation
import Glibc

/// Shared, build-once test fixtures.
enum Fixtures {
    static let cacheRoot = ProcessInfo.processInfo.environment["SENTINEL_FIXTURES"] ?? "/tmp/crypto-sentinel-fixtures"

    /// The gcc fixture trees of scripts/fixtures/elf-trees.sh, built once per process (a static let is a
    /// thread-safe once).
    static func elfTrees() throws -> String { try elfTreesResult.get() }

    private static let elfTreesResult = Result<String, any Error> {
        let out = cacheRoot + "/elf"
        try run(script: "scripts/fixtures/elf-trees.sh", out: out)
        return out
    }

    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    private static func run(script: String, out: String) throws {
        // The script itself takes flock on OUT.lock, so concurrent test processes build the tree once.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [packageRoot + "/" + script, out]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // Drain before waiting so a chatty build cannot fill the pipe and stall.
        let log = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FixtureError("\(script) failed (\(process.terminationStatus)):\n" + String(decoding: log, as: UTF8.self))
        }
    }

    /// A fresh empty directory under the cache root, removed by the caller with `removeItem`.
    static func temporaryDirectory(_ label: String) throws -> String {
        try FileManager.default.createDirectory(atPath: cacheRoot, withIntermediateDirectories: true)
        var template = Array("\(cacheRoot)/\(label)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw FixtureError("mkdtemp: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a tool and returns its stdout (stderr discarded).
func run(_ tool: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

