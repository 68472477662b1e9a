import Foundation
import Glibc

/// A process a test starts and reads the first stdout line of (it prints it once ready); stopped by pid.
public final class LiveProcess {
    public let process = Process()
    public let firstLine: String
    public var pid: Int32 { process.processIdentifier }

    public init(_ argv: [String], environment: [String: String] = ["PATH": "/usr/bin:/bin"], as user: String? = nil) throws {
        let argv = user.map { ["setpriv", "--reuid=\($0)", "--regid=\($0)", "--clear-groups", "--"] } .map { $0 + argv } ?? argv
        process.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/" + argv[0])
        process.arguments = Array(argv.dropFirst())
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var data = Data()
        while !data.contains(0x0a) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            data += chunk
        }
        firstLine = String(decoding: data, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        guard !firstLine.isEmpty else {
            stop()
            throw FixtureScriptError(message: "\(argv) exited before printing a line")
        }
    }

    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
