import Foundation

/// The fixture builders of scripts/fixtures/, shared by every test target. Each script is idempotent
/// and takes a flock on its output, so concurrent test processes build a tree once.
public enum FixtureScripts {
    /// Where built fixtures are cached ($SENTINEL_FIXTURES, as `make test` sets it).
    public static let root = ProcessInfo.processInfo.environment["SENTINEL_FIXTURES"] ?? "/tmp/crypto-sentinel-fixtures"

    /// The package's top folder (this file is Tests/SentinelTestSupport/FixtureScripts.swift).
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    public static var folder: String { packageRoot + "/scripts/fixtures" }

    /// The gcc fixture trees of elf-trees.sh, built once per test process (a static let is a thread-safe once).
    public static func elfTrees() throws -> String { try elfTreesResult.get() }

    private static let elfTreesResult = Result<String, any Error> {
        let out = root + "/elf"
        try build("elf-trees.sh", out: out)
        return out
    }

    /// Runs `folder/script OUT`, throwing with the script's output when it fails.
    public static func build(_ script: String, out: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [folder + "/" + script, out]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // Drain before waiting so a chatty build cannot fill the pipe and stall.
        let log = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FixtureScriptError(message: "\(script) failed (\(process.terminationStatus)):\n" + String(decoding: log, as: UTF8.self))
        }
    }
}

public struct FixtureScriptError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
