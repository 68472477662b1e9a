import ArgumentParser
import FoundationEssentials
import Glibc
import SentinelCore

struct Status: ParsableCommand {
    static let defaultSocket = "/run/crypto-sentinel/api.sock"

    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Query a running daemon over its socket.",
        discussion: """
        Asks the daemon (crypto-sentinel daemon) for its health and last report over its Unix socket and \
        prints the STATUS line, where the report comes from and how old it is, then every target with its \
        state and findings. The daemon answers from memory, so this never waits for an audit cycle.

        Exit status: 0 every target healthy; 1 a target degraded or failed, or no report yet (the first \
        cycle is still running); 2 no daemon: the socket is missing, refuses connections, does not answer \
        in time, or answers with something that is not the crypto-sentinel API (one line on stderr says which).

        Examples:
          crypto-sentinel status
          crypto-sentinel status --full        # each finding with evidence, why, fix
          crypto-sentinel status --format json | jq '.targets[] | {name, state}'
          crypto-sentinel status --socket /tmp/lab/api.sock || page-the-on-call
          crypto-sentinel status --check       # a Nagios/Icinga check command (exit 0/1/2/3)

        The same queries with curl (S=/run/crypto-sentinel/api.sock):
          curl --unix-socket $S http://localhost/v1/health
          curl --unix-socket $S http://localhost/v1/report
          curl --unix-socket $S http://localhost/v1/targets/product-api
          curl --unix-socket $S http://localhost/metrics
          curl --unix-socket $S -X POST http://localhost/v1/scan   # root/group
        """
    )

    @Option(help: ArgumentHelp("The daemon's API socket.", discussion: "Default: $CRYPTO_SENTINEL_SOCKET, else \(Status.defaultSocket)."),
            completion: .file())
    var socket: String?

    @Option(help: "Output format: text (for people) or json (the daemon's report document, as served).")
    var format: OutputFormat = .text

    @Flag(help: "Text format: print each finding in full (evidence, why it matters, how to fix it).")
    var full = false

    @Flag(help: ArgumentHelp("Monitoring-plugin mode (Nagios, Icinga): one line, exit 0 OK, 1 WARNING (a target degraded), 2 CRITICAL (a target failed), 3 UNKNOWN (no daemon or no report yet).",
                             discussion: "e.g. CRYPTO-SENTINEL CRITICAL - 1 failed (process-split-libcrypto on product-api) | targets=5 failed=1 degraded=0"))
    var check = false

    static let maxTimeout = 600.0

    // .unconditional: `--timeout -1` is a value to refuse with a reason, not a missing one.
    @Option(parsing: .unconditional, help: "Seconds to wait for the daemon's answer (at most \(Int(Status.maxTimeout))).")
    var timeout: Double = 5

    func validate() throws {
        guard timeout > 0, timeout <= Self.maxTimeout else {
            throw ValidationError("--timeout must be positive and at most \(Int(Self.maxTimeout)) seconds")
        }
        if let socket, socket.isEmpty { throw ValidationError("--socket must not be empty") }
        if check, format == .json || full { throw ValidationError("--check prints its own line: no --format json or --full with it") }
    }

    var socketPath: String {
        if let socket { return socket }
        if let env = ProcessInfo.processInfo.environment["CRYPTO_SENTINEL_SOCKET"], !env.isEmpty { return env }
        return Self.defaultSocket
    }

    func run() throws {
        let path = socketPath
        do {
            let healthReply = try UnixHTTPClient.get(socket: path, target: "/v1/health", timeout: timeout)
            guard healthReply.status == 200, let health = try? JSONDecoder().decode(Health.self, from: healthReply.body) else {
                throw NoDaemon("\(path) answered /v1/health with HTTP \(healthReply.status) and no crypto-sentinel health document")
            }
            let reportReply = try UnixHTTPClient.get(socket: path, target: "/v1/report", timeout: timeout)
            switch reportReply.status {
            case 200:
                guard let report = try? JSONDecoder().decode(Report.self, from: reportReply.body) else {
                    throw NoDaemon("\(path) answered /v1/report with something that is not a report")
                }
                if check { emitCheck(MonitoringCheck.line(report)) }
                if format == .json {
                    writeAll(STDOUT_FILENO, [UInt8](reportReply.body))
                } else {
                    writeAll(STDOUT_FILENO, Array(text(health: health, report: report, socket: path).utf8))
                }
                throw ExitCode(report.state == .healthy ? 0 : 1)
            case 503:
                // Up, but the first cycle has not finished and nothing was restored from disk.
                if check { emitCheck(MonitoringCheck.unknown("no report yet (the daemon's first cycle is still running)")) }
                if format == .json {
                    writeAll(STDOUT_FILENO, [UInt8](reportReply.body))
                } else {
                    writeAll(STDOUT_FILENO, Array("STATUS: \(health.summary)\nreport: none yet (the first cycle is still running)\n".utf8))
                }
                throw ExitCode(1)
            default:
                throw NoDaemon("\(path) answered /v1/report with HTTP \(reportReply.status)")
            }
        } catch let failure as NoDaemon {
            if check { emitCheck(MonitoringCheck.unknown("no daemon: \(failure.reason)")) }
            warn("no daemon: \(failure.reason)")
            throw ExitCode(2)
        }
    }

    /// The plugin's line on stdout and its status; nothing else is printed.
    func emitCheck(_ result: (text: String, status: Int32)) -> Never {
        writeAll(STDOUT_FILENO, Array((result.text + "\n").utf8))
        Glibc.exit(result.status)
    }

    private func text(health: Health, report: Report, socket: String) -> String {
        var out = "STATUS: \(health.summary)\n"
        var origin: String
        switch health.reportSource {
        case "restored": origin = "restored from disk (no cycle of this run has finished yet)"
        case "cycle": origin = "cycle \(health.cycles) of this run"
        default: origin = health.reportSource
        }
        out += "report: \(origin), generated \(report.generatedAt)"
        if let age = Self.age(of: report.generatedAt) { out += " (\(age) ago)" }
        if let ms = health.lastCycleMs { out += ", cycle took \(ms) ms" }
        out += "\n"
        guard !full else { return out + "\n" + TextRenderer.render(report) }

        out += "\n"
        for t in report.targets {
            let place = t.root.map { ", \($0)" } ?? ""
            out += "\(t.name) (\(t.kind)\(place)): \(t.state == .healthy ? "healthy" : t.state.rawValue.uppercased())\n"
            for f in t.findings {
                let sev = f.severity.rawValue + String(repeating: " ", count: max(0, 9 - f.severity.rawValue.count))
                let waived = f.waived.map { " [waived until \($0.expires): \($0.reason)]" } ?? ""
                out += "  \(sev) \(f.code.rawValue): \(f.summary)\(waived)\n"
            }
            for w in t.warnings { out += "  (unreadable) \(w)\n" }
        }
        if report.targets.contains(where: { !$0.findings.isEmpty }) {
            out += "\nDetails: crypto-sentinel status --full, or curl --unix-socket \(socket) http://localhost/v1/targets/NAME\n"
        }
        return out
    }

    /// "42 s", "3 min", "2 h", "5 d"; nil when the timestamp does not parse.
    static func age(of timestamp: String) -> String? {
        var whole = timestamp  // fractional seconds dropped: the age is shown in whole units
        if let dot = whole.firstIndex(of: "."), let zone = whole.lastIndex(of: "Z"), dot < zone { whole.removeSubrange(dot..<zone) }
        guard let date = try? Date.ISO8601FormatStyle().parse(whole) else { return nil }
        let s = max(0, Int(Date().timeIntervalSince(date)))
        switch s {
        case ..<120: return "\(s) s"
        case ..<7200: return "\(s / 60) min"
        case ..<172_800: return "\(s / 3600) h"
        default: return "\(s / 86400) d"
        }
    }
}

/// GET /v1/health.
struct Health: Decodable {
    var summary: String
    var reportSource: String
    var cycles: Int
    var ready: Bool
    var lastCycleMs: Int?
    enum CodingKeys: String, CodingKey {
        case summary, reportSource = "report_source", cycles, ready, lastCycleMs = "last_cycle_ms"
    }
}

/// Why there is no daemon to talk to (exit 2).
struct NoDaemon: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

/// A minimal blocking HTTP/1.1 client over AF_UNIX: one request per connection, `Connection: close`,
/// an overall deadline, a size cap. Enough for a CLI; no event loop needed.
enum UnixHTTPClient {
    struct Reply {
        var status: Int
        var body: Data
    }

    static let maxReplyBytes = 64 << 20

    static func get(socket path: String, target: String, timeout: Double) throws(NoDaemon) -> Reply {
        var st = stat()
        if stat(path, &st) != 0 {
            let reason = errno == ENOENT ? "no socket at \(path) (is crypto-sentinel daemon running?)" : "\(path): \(String(cString: strerror(errno)))"
            throw NoDaemon(reason)
        }
        guard st.st_mode & S_IFMT == S_IFSOCK else { throw NoDaemon("\(path) is not a socket") }
        guard path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else { throw NoDaemon("socket path too long: \(path)") }

        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NoDaemon("socket(): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let whole = Int(timeout), micro = Int((timeout - Double(whole)) * 1_000_000)
        var tv = timeval(tv_sec: whole, tv_usec: micro)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // Also bounds connect() when the daemon's accept queue is full.
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))

        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 {
            switch errno {
            case ECONNREFUSED: throw NoDaemon("\(path) refuses connections (a stale socket: the daemon is not running)")
            case EACCES, EPERM: throw NoDaemon("permission denied on \(path) (root or the socket's group may query it)")
            case EAGAIN, EINPROGRESS, ETIMEDOUT: throw NoDaemon("\(path) did not accept within \(timeout) s")
            default: throw NoDaemon("cannot connect to \(path): \(String(cString: strerror(errno)))")
            }
        }

        let request = Array("GET \(target) HTTP/1.1\r\nHost: localhost\r\nUser-Agent: crypto-sentinel/\(toolVersion)\r\nAccept: application/json\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            // Whatever the peer wrote before hanging up is still readable and says more than EPIPE.
            guard n > 0 else { break }
            sent += n
        }

        let deadline = Date().addingTimeInterval(timeout)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 {
                if bytes.isEmpty { throw NoDaemon("\(path) closed the connection without answering") }
                break
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw NoDaemon("\(path) did not answer within \(timeout) s") }
                if errno == ECONNRESET, !bytes.isEmpty { break }
                throw NoDaemon("reading from \(path): \(String(cString: strerror(errno)))")
            }
            bytes += chunk[0..<n]
            if bytes.count > maxReplyBytes { throw NoDaemon("\(path) sent more than \(maxReplyBytes >> 20) MiB") }
            if Date() > deadline { throw NoDaemon("\(path) did not finish its answer within \(timeout) s") }
        }
        return try parse(bytes, from: path)
    }

    /// Status line, headers, and a body of exactly Content-Length bytes (or up to EOF without one).
    static func parse(_ bytes: [UInt8], from path: String) throws(NoDaemon) -> Reply {
        let garbage = NoDaemon("\(path) did not answer with HTTP (is it crypto-sentinel's socket?)")
        guard bytes.starts(with: Array("HTTP/1.".utf8)), bytes.count >= 12,
              let end = bytes.indices.dropLast(3).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10 })
        else { throw garbage }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let statusField = lines[0].split(separator: " ", maxSplits: 2)
        guard statusField.count >= 2, statusField[1].count == 3, let status = Int(statusField[1]) else { throw garbage }
        var body = Array(bytes[(end + 4)...])
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { continue }
            guard let length = Int(parts[1].filter { $0 != " " && $0 != "\t" }), length >= 0 else { throw garbage }
            guard body.count >= length else { throw NoDaemon("\(path) sent a truncated answer (\(body.count) of \(length) bytes)") }
            body = Array(body[..<length])
        }
        return Reply(status: status, body: Data(body))
    }
}
