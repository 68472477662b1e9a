import Foundation
import SentinelCore

/// A finished child process.
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: String
    public var text: String { String(decoding: stdout, as: UTF8.self) }
}

public enum Subprocess {
    /// Runs argv[0] through /usr/bin/env, reading both pipes concurrently so a chatty child never blocks.
    public static func run(_ argv: [String], environment: [String: String]? = nil) throws -> ProcessOutput {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let errData = Locked(Data())
        let reader = Thread { errData.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() } }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        return ProcessOutput(status: p.terminationStatus, stdout: outData,
                             stderr: String(decoding: errData.withLock { $0 }, as: UTF8.self))
    }
}

/// One HTTP answer as curl printed it with `-i`.
public struct HTTPReply: Sendable {
    public var status: Int
    /// Lowercased names.
    public var headers: [String: String]
    public var body: String
    public var curlExit: Int32
    public var curlError: String
}

/// The real curl over the daemon's socket.
public enum Curl {
    /// `user` runs curl through setpriv as that uid/gid with only `groups` as supplementary groups.
    public static func request(socket: String, _ path: String, _ extra: [String] = [], user: UInt32? = nil,
                               groups: [UInt32] = []) throws -> HTTPReply {
        var argv = ["curl", "-s", "-S", "-i", "--max-time", "10", "--unix-socket", socket] + extra + ["http://localhost" + path]
        if let user {
            let groupArgs = groups.isEmpty ? ["--clear-groups"] : ["--groups", groups.map(String.init).joined(separator: ",")]
            argv = ["setpriv", "--reuid", "\(user)", "--regid", "\(user)"] + groupArgs + ["--"] + argv
        }
        let out = try Subprocess.run(argv)
        return parse(out.text, exit: out.status, error: out.stderr)
    }

    /// Splits `curl -i` output (the last response when curl printed several).
    public static func parse(_ text: String, exit: Int32, error: String) -> HTTPReply {
        guard let split = text.range(of: "\r\n\r\n") else {
            return HTTPReply(status: 0, headers: [:], body: text, curlExit: exit, curlError: error)
        }
        let headLines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = headLines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        var headers: [String: String] = [:]
        for line in headLines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return HTTPReply(status: status, headers: headers, body: String(text[split.upperBound...]), curlExit: exit, curlError: error)
    }
}

/// A raw AF_UNIX stream client for what curl cannot send: garbage, half requests, slow clients.
public final class RawClient {
    public let fd: Int32

    public init(socket path: String, timeoutSeconds: Int = 10) throws {
        fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureScriptError(message: "socket(): \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw FixtureScriptError(message: "connect(\(path)): \(reason)")
        }
    }

    deinit { close(fd) }

    /// Writes everything; false if the server closed first.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    public func send(_ text: String) { send(Array(text.utf8)) }

    /// Reads until the server closes (closed = true) or the receive timeout passes (closed = false).
    public func readToEnd() -> (data: [UInt8], closed: Bool) {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (out, true) }
            if n < 0 { return (out, errno == ECONNRESET) }
            out += chunk[0..<n]
        }
    }

    /// What has arrived so far, without waiting.
    public func available() -> String {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Reads until the bytes received contain `needle`, the server closes, or the timeout passes.
    public func read(until needle: String, timeoutSeconds: Int = 5) -> String {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(TimeInterval(timeoutSeconds))
        while Date() < deadline {
            if String(decoding: out, as: UTF8.self).contains(needle) { break }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
