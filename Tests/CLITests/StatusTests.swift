import Foundation
import SentinelCore
import SentinelDaemon
import SentinelTestSupport
import Testing

/// `crypto-sentinel status` (the built binary) against an APIServer this process starts.
@Suite struct StatusTests {
    static func report(healthy: Bool) -> Report {
        let split = Finding(code: .splitLibcrypto, target: "product-api", subject: "libcrypto 8:1 ino 2, 8:1 ino 3", summary: "two libcrypto copies mapped",
                            evidence: .object(["chain": .string("_ssl.so -> libcrypto-a1b2.so.3")]))
        return Report(command: "daemon", toolVersion: "test", generatedAt: ISO8601DateFormatter().string(from: Date().addingTimeInterval(-42)),
                      targets: [TargetReport(name: "product-api", kind: "service", findings: healthy ? [] : [split]),
                                TargetReport(name: "product", kind: "bundle", root: "/opt/product", findings: [])])
    }

    /// A folder with a started server; always stopped and removed.
    static func withDaemon(report: Report?, socketGroup: gid_t? = nil, _ body: (String, StateBoard) async throws -> Void) async throws {
        let dir = "/tmp/sentinel-st-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let board = StateBoard()
        if let report { board.publish(report, source: "cycle", cycleSeconds: 0.31) }
        let server = APIServer(board: board, metrics: DaemonMetrics(), scanGroup: nil) { .started }
        let socket = dir + "/api.sock"
        do {
            try await server.start(socketPath: socket, group: socketGroup)
            try await body(socket, board)
        } catch {
            await server.stop()
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
        await server.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func textShowsTheStatusLineTheReportAgeAndEveryFinding() async throws {
        try await Self.withDaemon(report: Self.report(healthy: false)) { socket, _ in
            let r = try Sentinel.run(["status", "--socket", socket])
            #expect(r.status == 1, "a failed target: \(r.stderr)")
            let lines = r.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "STATUS: 2 targets: 1 healthy, 1 failed (split-libcrypto on product-api)")
            // Generated 42 s before the test started; a loaded machine may add a little.
            let age = lines.lazy.compactMap { $0.wholeMatch(of: /report: cycle 1 of this run, generated \S+Z \((\d+) (s|min) ago\), cycle took 310 ms/) }.first
            #expect(age.map { $0.output.2 == "min" || Int($0.output.1)! >= 42 } == true, "\(lines)")
            #expect(lines.contains("product-api (service): FAILED"))
            #expect(lines.contains("  critical  split-libcrypto: two libcrypto copies mapped"))
            #expect(lines.contains("product (bundle, /opt/product): healthy"))
            #expect(r.stderr.isEmpty)

            let full = try Sentinel.run(["status", "--socket", socket, "--full"])
            #expect(full.status == 1)
            #expect(full.stdout.contains("critical[split-libcrypto]: two libcrypto copies mapped"))
            #expect(full.stdout.contains("= why: "))
        }
    }

    /// --check: the monitoring-plugin line and exit status (0 OK, 2 CRITICAL, 3 UNKNOWN).
    @Test func checkModeIsOneLineAndAPluginExitStatus() async throws {
        try await Self.withDaemon(report: Self.report(healthy: false)) { socket, board in
            let r = try Sentinel.run(["status", "--socket", socket, "--check"])
            #expect(r.status == 2)
            #expect(r.stdout == "CRYPTO-SENTINEL CRITICAL - 1 failed (split-libcrypto on product-api) | targets=2 failed=1 degraded=0\n")
            board.publish(Self.report(healthy: true), source: "cycle", cycleSeconds: 0.2)
            let ok = try Sentinel.run(["status", "--socket", socket, "--check"])
            #expect(ok.status == 0 && ok.stdout == "CRYPTO-SENTINEL OK - 2 targets healthy | targets=2 failed=0 degraded=0\n", "\(ok.stdout)")
        }
        try await Self.withDaemon(report: nil) { socket, _ in
            let r = try Sentinel.run(["status", "--socket", socket, "--check"])
            #expect(r.status == 3 && r.stdout.hasPrefix("CRYPTO-SENTINEL UNKNOWN - no report yet"), "\(r.stdout)")
        }
        let none = try Sentinel.run(["status", "--socket", "/nonexistent/api.sock", "--check"])
        #expect(none.status == 3 && none.stdout.hasPrefix("CRYPTO-SENTINEL UNKNOWN - no daemon: "), "\(none.stdout)")
        #expect(none.stdout.split(separator: "\n").count == 1)
        #expect(try Sentinel.run(["status", "--check", "--format", "json"]).status == 2)
    }

    @Test func jsonPrintsTheReportDocumentAsServed() async throws {
        try await Self.withDaemon(report: Self.report(healthy: false)) { socket, board in
            let r = try Sentinel.run(["status", "--socket", socket, "--format", "json"])
            #expect(r.status == 1)
            #expect(Array(r.stdout.utf8) == board.current().reportJSON)
            #expect(r.report?.targets.map(\.name) == ["product-api", "product"])
        }
    }

    @Test func healthyIsExit0AndTheSocketComesFromTheEnvironment() async throws {
        try await Self.withDaemon(report: Self.report(healthy: true)) { socket, _ in
            let env = ProcessInfo.processInfo.environment.merging(["CRYPTO_SENTINEL_SOCKET": socket]) { $1 }
            let r = try Sentinel.shell([Sentinel.binary, "status"], environment: env)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.hasPrefix("STATUS: 2 targets: 2 healthy\n"))
            #expect(!r.stdout.contains("Details:"))
        }
    }

    @Test func beforeTheFirstCycleItSaysSoAndExits1() async throws {
        try await Self.withDaemon(report: nil) { socket, _ in
            let r = try Sentinel.run(["status", "--socket", socket])
            #expect(r.status == 1)
            #expect(r.stdout == "STATUS: starting: first cycle running\nreport: none yet (the first cycle is still running)\n")
            let json = try Sentinel.run(["status", "--socket", socket, "--format", "json"])
            #expect(json.status == 1 && json.stdout.contains(#""status":503"#))
        }
    }

    @Test func noDaemonIsExit2WithOneLineSayingWhy() async throws {
        let dir = "/tmp/sentinel-st-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let missing = try Sentinel.run(["status", "--socket", dir + "/none.sock"])
        #expect(missing.status == 2 && missing.stdout.isEmpty)
        #expect(missing.stderr == "crypto-sentinel: no daemon: no socket at \(dir)/none.sock (is crypto-sentinel daemon running?)\n")

        // A socket left by a killed daemon: bound, nobody listening.
        let stale = try Listener(path: dir + "/stale.sock", listen: false)
        let refused = try Sentinel.run(["status", "--socket", stale.path])
        #expect(refused.status == 2 && refused.stderr.contains("refuses connections"), "\(refused.stderr)")

        // Listening but never answering (a hung daemon): the timeout decides.
        let hung = try Listener(path: dir + "/hung.sock", listen: true)
        let started = Date()
        let timeout = try Sentinel.run(["status", "--socket", hung.path, "--timeout", "0.5"])
        #expect(timeout.status == 2 && timeout.stderr.contains("did not answer within 0.5 s"), "\(timeout.stderr)")
        #expect(Date().timeIntervalSince(started) < 5)

        // What the message says is what is checked; a negative value gets that message, not "missing value".
        for bad in ["0", "-1", "600.5", "1e999"] {
            let r = try Sentinel.run(["status", "--socket", hung.path, "--timeout", bad])
            #expect(r.status == 2 && r.stderr.contains("--timeout must be positive and at most 600 seconds"), "\(bad): \(r.stderr)")
        }
        let longest = try Sentinel.run(["status", "--socket", dir + "/none.sock", "--timeout", "600"])
        #expect(longest.status == 2 && longest.stderr.contains("no socket at"), "\(longest.stderr)")

        // Something else on the socket answering garbage.
        let garbage = try Listener(path: dir + "/junk.sock", listen: true)
        let server = Thread {
            let c = accept(garbage.fd, nil, nil)
            guard c >= 0 else { return }
            var junk: [UInt8] = [0x00, 0xff, 0x13, 0x37] + Array("SSH-2.0-OpenSSH_9.2\r\n".utf8)
            _ = send(c, &junk, junk.count, Int32(MSG_NOSIGNAL))
            close(c)
        }
        server.start()
        let junk = try Sentinel.run(["status", "--socket", garbage.path])
        #expect(junk.status == 2 && junk.stderr.contains("did not answer with HTTP"), "\(junk.stderr)")
        #expect(junk.stderr.split(separator: "\n").count == 1)

        let file = dir + "/plain"
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        let notSocket = try Sentinel.run(["status", "--socket", file])
        #expect(notSocket.status == 2 && notSocket.stderr.contains("is not a socket"))
    }

    @Test func aUserOutsideTheSocketGroupIsToldPermissionDenied() async throws {
        try await Self.withDaemon(report: Self.report(healthy: true)) { socket, _ in
            let r = try Sentinel.shell(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
                                        Sentinel.binary, "status", "--socket", socket])
            #expect(r.status == 2)
            #expect(r.stderr.contains("permission denied on \(socket)"), "\(r.stderr)")
        }
        // In the socket's group the same user may read.
        try await Self.withDaemon(report: Self.report(healthy: true), socketGroup: 65534) { socket, _ in
            let r = try Sentinel.shell(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
                                        Sentinel.binary, "status", "--socket", socket])
            #expect(r.status == 0, "\(r.stderr)")
        }
    }
}

/// A bare AF_UNIX socket bound to a path (listening or not), closed and unlinked on deinit.
final class Listener: Sendable {
    let fd: Int32
    let path: String

    init(path: String, listen shouldListen: Bool) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, !shouldListen || listen(fd, 4) == 0 else {
            throw FixtureError(message: "bind/listen \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }
}
