import Foundation
import Glibc
import SentinelTestSupport

/// Shared, build-once test fixtures.
enum Fixtures {
    static let cacheRoot = FixtureScripts.root

    static func elfTrees() throws -> String { try FixtureScripts.elfTrees() }

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

