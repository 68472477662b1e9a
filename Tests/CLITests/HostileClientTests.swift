import Foundation
import Glibc
import SentinelCore
import SentinelTestSupport
import Synchronization
import Testing

/// Hostile clients against the real daemon binary on its real socket (issue 6, item 3).
@Suite(.serialized) struct HostileClientTests {
    /// A daemon with nothing slow to audit (one configured service that is down), pinging the
    /// watchdog every 0.5 s.
    static func daemon() throws -> DaemonUnderTest {
        try DaemonUnderTest(config: """
            interval: 1h
            services:
              - name: absent
                unit: sentinel-absent-\(UUID().uuidString.prefix(6).lowercased())
            """, watchdogUSec: 1_000_000)
    }

    /// One GET /v1/health on a fresh raw connection: its status and the milliseconds from connect()
    /// to the whole answer (no curl start-up in the figure).
    static func probeHealth(_ socket: String) -> (status: Int, ms: Double) {
        let start = ContinuousClock.now
        guard let c = try? RawClient(socket: socket, timeoutSeconds: 10) else { return (0, 0) }
        c.send("GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let reply = String(decoding: c.readToEnd().data, as: UTF8.self)
        let d = ContinuousClock.now - start
        let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        let status = Int(reply.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, ms)
    }

    /// Raises this process's soft RLIMIT_NOFILE to at least `n` (the daemon it starts inherits it).
    static func raiseFileLimit(to n: rlim_t) throws {
        var rl = rlimit()
        try #require(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0)
        guard rl.rlim_cur < n else { return }
        try #require(rl.rlim_max >= n, "hard RLIMIT_NOFILE \(rl.rlim_max) < \(n)")
        rl.rlim_cur = n
        try #require(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0)
    }

    final class LoadResults: Sendable {
        let latencies = Locked<[Double]>([])
        let probeStatuses = Locked<[Int]>([])
        /// Per client: "shed" (closed without an answer), "408", "200", "503", "open", or "connect failed".
        let outcomes = Locked<[String: Int]>([:])
        let done = Atomic<Bool>(false)
        let error = Locked<String?>(nil)
    }

    @Test func aThousandConnectionsHalfNeverFinishingTheirHeadersNeitherSlowHealthNorStopTheWatchdog() throws {
        // 1,000 clients + probes here, and the daemon's 512 connections + 64 reserve; the unit's
        // LimitNOFILE must cover the latter too.
        try Self.raiseFileLimit(to: 4096)
        let unit = try String(contentsOfFile: FixtureScripts.packageRoot + "/systemd/crypto-sentinel.service", encoding: .utf8)
        let limit = unit.split(separator: "\n").first { $0.hasPrefix("LimitNOFILE=") }.flatMap { Int($0.dropFirst(12)) }
        #expect((limit ?? 0) >= 512 + 64, "the unit's LimitNOFILE (\(String(describing: limit))) must cover 512 connections + 64 reserved")

        let d = try Self.daemon()
        defer { d.remove() }
        try #require(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(d.stderr)")

        let results = LoadResults()
        let socket = d.socket
        let load = Thread {
            var clients: [(RawClient, Bool)] = []
            var failedConnects = 0
            for i in 0..<1000 {
                guard let c = try? RawClient(socket: socket, timeoutSeconds: 10) else { failedConnects += 1; continue }
                let slow = i % 2 == 0
                if slow {
                    c.send("GET /v1/health HTTP/1.1\r\nHost: x\r\nUser-Agent: never-finished\r\n")
                } else {
                    // Finished, answered, then left open and idle (keep-alive).
                    c.send("GET /v1/report HTTP/1.1\r\nHost: x\r\n\r\n")
                    _ = c.read(until: "\r\n\r\n", timeoutSeconds: 10)
                }
                clients.append((c, slow))
                if i % 40 == 39 {
                    let p = Self.probeHealth(socket)
                    results.latencies.withLock { $0.append(p.ms) }
                    results.probeStatuses.withLock { $0.append(p.status) }
                }
            }
            // All 1,000 held open (minus what the daemon shed) while the probes go on.
            for _ in 0..<20 {
                let p = Self.probeHealth(socket)
                results.latencies.withLock { $0.append(p.ms) }
                results.probeStatuses.withLock { $0.append(p.status) }
                usleep(100_000)
            }
            var outcomes: [String: Int] = ["connect failed": failedConnects]
            for (c, _) in clients {
                let seen = c.available()
                var probe: UInt8 = 0
                let n = recv(c.fd, &probe, 1, Int32(MSG_DONTWAIT))
                let closed = n == 0 || (n < 0 && errno == ECONNRESET)
                let key: String
                if seen.contains(" 503 ") { key = "503" }
                else if seen.contains(" 408 ") { key = "408" }
                else if closed { key = "shed" }
                else { key = "open" }
                outcomes[key, default: 0] += 1
            }
            results.outcomes.withLock { $0 = outcomes }
            clients.removeAll()
            results.done.store(true, ordering: .releasing)
        }
        load.stackSize = 1 << 22
        load.start()

        // Meanwhile: WATCHDOG=1 keeps coming, never further apart than WATCHDOG_USEC (1 s).
        var pings: [ContinuousClock.Instant] = [.now]
        let deadline = Date().addingTimeInterval(180)
        while !results.done.load(ordering: .acquiring) && Date() < deadline {
            if d.notify.receive() == "WATCHDOG=1" { pings.append(.now) }
        }
        pings.append(.now)
        let finished = results.done.load(ordering: .acquiring)
        try #require(finished, "the load did not finish within 180 s")
        let gaps = zip(pings.dropFirst(), pings).map { Double(($0 - $1).components.attoseconds) / 1e18 + Double(($0 - $1).components.seconds) }
        let maxGap = gaps.max() ?? 0
        let latencies = results.latencies.withLock { $0 }
        let statuses = results.probeStatuses.withLock { $0 }
        let outcomes = results.outcomes.withLock { $0 }
        let maxMs = latencies.max() ?? .infinity
        print("hostile load: \(latencies.count) health probes, max \(String(format: "%.1f", maxMs)) ms, median \(String(format: "%.1f", latencies.sorted()[latencies.count / 2])) ms; \(pings.count - 2) WATCHDOG=1, max gap \(String(format: "%.2f", maxGap)) s; clients \(outcomes)")

        #expect(latencies.count >= 20)
        #expect(statuses.allSatisfy { $0 == 200 }, "health probes: \(statuses)")
        #expect(maxMs <= 100 * Sanitizers.timeScale, "GET /v1/health took up to \(maxMs) ms under load")
        #expect(maxGap < 1.0, "WATCHDOG=1 gap of \(maxGap) s (WATCHDOG_USEC=1 s)")
        #expect(pings.count - 2 >= 2)
        // Full table: old idle and slow connections were shed for new clients; nobody was refused.
        #expect(outcomes["503", default: 0] == 0)
        #expect(outcomes["connect failed", default: 0] == 0)
        #expect(outcomes["shed", default: 0] >= 300, "\(outcomes)")
        #expect(d.process.isRunning)
        #expect(try d.health()["status"] as? String != nil)
    }

    @Test func hugeLinesGarbageTraversalAndAnUnauthorisedScanGetClearErrorsAndTheDaemonCarriesOn() throws {
        let d = try Self.daemon()
        defer { d.remove() }
        try #require(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(d.stderr)")

        func exchange(_ bytes: [UInt8]) throws -> String {
            let c = try RawClient(socket: d.socket, timeoutSeconds: 10)
            c.send(bytes)  // may stop early: the daemon answers and closes before reading it all
            return String(decoding: c.readToEnd().data, as: UTF8.self)
        }

        // A 1 MiB request line.
        let huge = try exchange(Array("GET /v1/targets/\(String(repeating: "a", count: 1 << 20)) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(huge.hasPrefix("HTTP/1.1 414 "), "\(huge.prefix(200))")
        #expect(huge.contains("\"error\""))

        // Binary garbage, with and without a line end.
        var rng = SplitMix64(state: 6)
        for length in [64, 4096, 70_000] {
            let garbage = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) } + Array("\r\n\r\n".utf8)
            let reply = try exchange(garbage)
            #expect(reply.hasPrefix("HTTP/1.1 4"), "garbage of \(length) bytes: \(reply.prefix(200))")
        }

        // Path traversal, raw and percent-encoded: refused, and nothing of /etc/passwd comes back.
        for target in ["/v1/targets/../../../../etc/passwd", "/../../etc/passwd", "/v1/targets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                       "/v1/targets/..%2F..%2Fetc%2Fpasswd", "/v1/../v1/report"] {
            let reply = try exchange(Array("GET \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
            #expect(reply.hasPrefix("HTTP/1.1 400 ") || reply.hasPrefix("HTTP/1.1 404 "), "\(target): \(reply.prefix(200))")
            #expect(!reply.contains("root:"), "\(target) leaked a file")
        }

        // An unauthorised POST /v1/scan from uid 65534. The socket is 0660 root:root, so the test opens
        // it up (as an admin loosening the mode might): SO_PEERCRED must still refuse the scan.
        try #require(chmod(d.socket, 0o666) == 0)
        let stranger = try Curl.request(socket: d.socket, "/v1/scan", ["-X", "POST"], user: 65534)
        #expect(stranger.status == 403, "\(stranger.curlError) \(stranger.body)")
        #expect(stranger.body.contains("peer uid 65534"))
        let look = try Curl.request(socket: d.socket, "/v1/health", user: 65534)
        #expect(look.status == 200, "reading stays open to whoever may connect")
        let cyclesBefore = try d.health()["cycles"] as? Int

        // Still alive, still answering, no cycle started by the stranger.
        #expect(d.process.isRunning)
        let p = Self.probeHealth(d.socket)
        #expect(p.status == 200)
        #expect(try d.health()["cycles"] as? Int == cyclesBefore)
        #expect(try Curl.request(socket: d.socket, "/v1/scan", ["-X", "POST"]).status == 202, "root may scan")
    }
}
