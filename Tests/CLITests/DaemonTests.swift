import Foundation
import Glibc
import SentinelCore
import SentinelTestSupport
import Synchronization
import Testing

/// `crypto-sentinel daemon` run for real: its own runtime and state folders, a real NOTIFY_SOCKET
/// listener, the real journald, curl on its real socket, and the real split cx_Freeze service in a
/// unit-named cgroup as its target.
final class DaemonUnderTest {
    let process = Process()
    let dir: String
    let notify: NotifyListener
    var pid: Int32 { process.processIdentifier }
    var socket: String { dir + "/run/api.sock" }
    var configPath: String { dir + "/config.yaml" }
    let stderrPath: String
    /// When the daemon was started: its journal entries are those of its pid from then on.
    let started = Date()

    /// Starts the daemon with `config` (nil: the embedded default) in `dir` (kept across restarts).
    /// `notify: false` leaves NOTIFY_SOCKET unset; `wrapper` runs before the binary and must exec it
    /// (e.g. `unshare -m sh -c '...; exec "$@"' sh`), so the pid stays the daemon's.
    init(config: String?, dir: String? = nil, watchdogUSec: Int? = 2_000_000, extraEnv: [String: String] = [:],
         notify: Bool = true, wrapper: [String] = []) throws {
        self.dir = dir ?? FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-daemon-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: self.dir + "/run", withIntermediateDirectories: true)
        let configPath = self.dir + "/config.yaml"
        if let config { try config.write(toFile: configPath, atomically: true, encoding: .utf8) }
        self.notify = try NotifyListener(abstract: true, draining: true)
        stderrPath = self.dir + "/stderr.log"
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        var env = ["PATH": "/usr/bin:/bin", "RUNTIME_DIRECTORY": self.dir + "/run", "STATE_DIRECTORY": self.dir + "/state",
                   "NOTIFY_SOCKET": self.notify.address].merging(Sanitizers.environment) { a, _ in a }
        if !notify { env["NOTIFY_SOCKET"] = nil }
        if let watchdogUSec { env["WATCHDOG_USEC"] = String(watchdogUSec) }
        env.merge(extraEnv) { _, b in b }
        let argv = [Sentinel.binary, "daemon"] + (config == nil ? [] : ["--config", configPath])
        // No config: the embedded default (no /etc/crypto-sentinel/config.yaml on a test machine).
        process.executableURL = URL(fileURLWithPath: wrapper.first ?? Sentinel.binary)
        process.arguments = Array((wrapper + argv).dropFirst())
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
        self.notify.accept(pid: process.processIdentifier)
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits for a datagram matching `predicate` (datagrams before it are skipped).
    func waitForNotify(_ seconds: Double = 60, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let m = notify.receive(), predicate(m) { return m }
            if !process.isRunning { return nil }
        }
        return nil
    }

    func curl(_ path: String, method: String = "GET") throws -> (code: Int, body: String) {
        let r = try Curl.request(socket: socket, path, ["-X", method, "--max-time", "5"])
        return (r.status, r.body)
    }

    func health() throws -> [String: Any] {
        let body = try curl("/v1/health").body
        return (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]) ?? [:]
    }

    func signal(_ sig: Int32) { kill(pid, sig) }

    /// Waits for the exit; returns the status, or nil when it did not exit in time.
    func waitForExit(_ seconds: Double = 20) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    func stop() {
        if process.isRunning { kill(pid, SIGKILL); process.waitUntilExit() }
    }

    func remove() { stop(); try? FileManager.default.removeItem(atPath: dir) }
}

@Suite(.serialized) struct DaemonTests {
    func report(_ d: DaemonUnderTest) throws -> Report {
        let (code, body) = try d.curl("/v1/report")
        guard code == 200 else { throw FixtureError(message: "GET /v1/report: \(code) \(body)") }
        return try JSONDecoder().decode(Report.self, from: Data(body.utf8))
    }

    /// Polls the report until `predicate` holds (cycles run on their own: live changes, the interval).
    func waitForReport(_ d: DaemonUnderTest, seconds: Double = 90, _ predicate: (Report) -> Bool) -> Report? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let r = try? report(d), predicate(r) { return r }
            usleep(250_000)
        }
        return nil
    }

    @Test func splitServiceIsReportedEverywhereThenResolvesAfterARestartFromTheCanonicalBundle() throws {
        let journald = try JournaldLease()
        defer { journald.release() }
        let service = try SplitService()
        defer { service.remove() }
        let d = try DaemonUnderTest(config: service.daemonConfig())
        defer { d.remove() }

        // READY=1 once the socket listens and the first cycle is done; STATUS names the worst finding.
        let ready = try #require(d.waitForNotify { $0.contains("READY=1") }, "no READY=1; stderr: \(d.stderr)")
        #expect(ready.contains("STATUS=2 targets: 2 failed ("))
        #expect(ready.contains("split-libcrypto on p"))
        #expect(d.waitForNotify(5) { $0 == "WATCHDOG=1" } != nil, "WATCHDOG=1 at half of WATCHDOG_USEC")

        // The socket: mode 0660, the report from memory, the target by name.
        var st = stat()
        #expect(stat(d.socket, &st) == 0 && st.st_mode & 0o777 == 0o660)
        let first = try report(d)
        let api = try #require(first.targets.first { $0.name == "product-api" })
        #expect(api.state == .failed)
        #expect(Set(api.findings.map(\.code)).isSuperset(of: [.splitLibcrypto, .processSplitLibcrypto]))
        #expect(try d.curl("/v1/targets/product-api").body.contains("\"process-split-libcrypto\""))
        #expect(try d.curl("/metrics").body.contains("crypto_sentinel_target_state{"))

        // `status` reads the same over the socket.
        let status = try Sentinel.run(["status", "--socket", d.socket])
        #expect(status.status == 1)
        #expect(status.stdout.contains("product-api"))

        // The journal: one entry for the new finding, with its fixed MESSAGE_ID and fields.
        let entries = try JournaldLease.entries(matching: ["_PID=\(d.pid)", "SENTINEL_CODE=process-split-libcrypto"], since: d.started)
        let entry = try #require(entries.first)
        #expect(entry["MESSAGE_ID"] as? String == FindingCode.processSplitLibcrypto.messageID)
        #expect(entry["SENTINEL_TARGET"] as? String == "product-api")
        #expect(entry["SENTINEL_STATE"] as? String == "new")
        #expect(entry["PRIORITY"] as? String == "2")

        // Restart the service from the canonicalised bundle: the live watcher notices, a cycle runs,
        // the findings resolve in the report, in STATUS and in the journal.
        try service.heal()
        let healed = waitForReport(d) { r in
            guard let t = r.targets.first(where: { $0.name == "product-api" }) else { return false }
            return t.stats["pid"] == Int(service.pid) && !t.findings.contains { $0.code == .processSplitLibcrypto || $0.code == .splitLibcrypto }
        }
        let last = (try? report(d))?.targets.first { $0.name == "product-api" }
        try #require(healed != nil, "the report never showed the restarted service (pid \(service.pid)) without a split; last: \(String(describing: last?.stats)) \(last?.findings.map(\.summary) ?? []); health: \((try? d.health()) ?? [:])")
        let resolved = try JournaldLease.entries(matching: ["_PID=\(d.pid)", "SENTINEL_CODE=process-split-libcrypto", "SENTINEL_STATE=resolved"], since: d.started)
        #expect(resolved.count >= 1)
        #expect(d.waitForNotify(10) { $0.hasPrefix("STATUS=") && !$0.contains("split-libcrypto") } != nil)
        // An unchanged picture adds no journal entry: a scan now changes nothing.
        let before = try JournaldLease.entries(matching: ["_PID=\(d.pid)"], since: d.started, count: 0, timeout: 0).count
        #expect(try d.curl("/v1/scan", method: "POST").code == 202)
        _ = d.waitForNotify(30) { $0.hasPrefix("STATUS=") }
        usleep(500_000)
        #expect(try JournaldLease.entries(matching: ["_PID=\(d.pid)"], since: d.started, count: 0, timeout: 0).count == before)

        d.signal(SIGTERM)
        #expect(d.waitForNotify(10) { $0.contains("STOPPING=1") } != nil)
        #expect(d.waitForExit() == 0)
    }

    /// A configured service that is down, whose product POST command takes `seconds`: a slow cycle.
    func slowConfig(_ seconds: String, unit: String = "sentinel-absent-\(UUID().uuidString.prefix(6).lowercased())") -> String {
        """
        interval: 1h
        services:
          - name: slow
            unit: \(unit)
            post_command: [/bin/sleep, "\(seconds)"]
        """
    }

    @Test func sighupSwapsAGoodFileKeepsTheOldOnABadOneAndSigtermStopsMidCycle() throws {
        let journald = try JournaldLease()
        defer { journald.release() }
        let d = try DaemonUnderTest(config: slowConfig("0.2"))
        defer { d.remove() }
        try #require(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(d.stderr)")

        try "interval: -3s\njitter: 0.1\n".write(toFile: d.configPath, atomically: true, encoding: .utf8)
        d.signal(SIGHUP)
        let reloading = try #require(d.waitForNotify(10) { $0.contains("RELOADING=1") })
        // RELOADING=1 and MONOTONIC_USEC in one datagram.
        let usec = reloading.split(separator: "\n").first { $0.hasPrefix("MONOTONIC_USEC=") }.flatMap { UInt64($0.dropFirst(15)) }
        #expect(usec != nil && usec! > 0)
        let rejected = try #require(d.waitForNotify(10) { $0.contains("READY=1") })
        #expect(rejected.contains("config rejected"))
        #expect(rejected.contains("config.yaml:1"))
        let logged = try JournaldLease.entries(matching: ["_PID=\(d.pid)", "MESSAGE_ID=\(DaemonMessageID.configRejected)"], since: d.started)
        #expect((logged.first?["MESSAGE"] as? String)?.contains("NOT reloaded") == true)
        #expect(try d.health()["ready"] as? Bool == true)
        // The rejection stays visible until a good reload: /v1/health, `status`, and STATUS= of a later cycle.
        let health = try d.health()
        #expect((health["reload_error"] as? String)?.hasPrefix(d.configPath + ":1:") == true, "\(health)")
        let shown = try Sentinel.run(["status", "--socket", d.socket])
        #expect(shown.stdout.hasPrefix("STATUS: config rejected (\(d.configPath):1:"), "\(shown.stdout)\(shown.stderr)")
        #expect(try d.curl("/v1/scan", method: "POST").code == 202)
        let later = try #require(d.waitForNotify(30) { $0.contains("STATUS=") }, "no STATUS= after the requested cycle")
        #expect(later.contains("config rejected") && !later.contains("READY=1"), "\(later)")

        // A good file: swapped, then a cycle at once — slow this time, so SIGTERM lands mid-cycle. Sent
        // the way the unit's ExecReload= does, with $MAINPID as systemd sets it.
        let marker = "7.\(Int.random(in: 100...999))"
        try slowConfig(marker).write(toFile: d.configPath, atomically: true, encoding: .utf8)
        let reload = try Sentinel.shell([Sentinel.binary, "reload"], environment: ["MAINPID": String(d.pid)])
        #expect(reload.status == 0 && reload.stderr.isEmpty, "\(reload.stderr)")
        #expect(d.waitForNotify(10) { $0.contains("RELOADING=1") } != nil)
        let swapped = try #require(d.waitForNotify(10) { $0.contains("READY=1") })
        #expect(swapped.contains("reloaded"))
        #expect(try d.health()["reload_error"] == nil)
        var sleeping = false
        for _ in 0..<100 where !sleeping {
            sleeping = (try? Sentinel.shell(["pgrep", "-f", "sleep \(marker)"]))?.status == 0
            usleep(100_000)
        }
        try #require(sleeping, "the reloaded config's slow POST command never started")
        d.signal(SIGTERM)
        #expect(d.waitForNotify(10) { $0.contains("STOPPING=1") } != nil)
        #expect(d.waitForExit(10) == 0)
        // The cycle's children went with it.
        #expect((try Sentinel.shell(["pgrep", "-f", "sleep \(marker)"])).status != 0)
    }

    /// `reload` signals only a crypto-sentinel: a wrong or stale pid (a MAINPID gone, reused) is refused.
    @Test func reloadRefusesAProcessThatIsNotTheDaemon() throws {
        let other = try LiveProcess(["/bin/sh", "-c", "echo up; exec sleep 30"])
        defer { other.stop() }
        let refused = try Sentinel.run(["reload", "--pid", String(other.pid)])
        #expect(refused.status == 2 && refused.stderr.contains("is sleep, not crypto-sentinel"), "\(refused.stderr)")
        #expect(other.process.isRunning, "SIGHUP would have ended sleep")
        let gone = try Sentinel.shell([Sentinel.binary, "reload"], environment: ["MAINPID": "999999999"])
        #expect(gone.status == 2 && gone.stderr.contains("no process 999999999"), "\(gone.stderr)")
        let none = try Sentinel.shell([Sentinel.binary, "reload"], environment: [:])
        #expect(none.status == 2 && none.stderr.contains("--pid"), "\(none.stderr)")
    }

    @Test func afterKill9TheLastReportIsServedUntilTheFirstNewCycleCompletes() throws {
        let journald = try JournaldLease()
        defer { journald.release() }
        let unit = "sentinel-absent-\(UUID().uuidString.prefix(6).lowercased())"
        let a = try DaemonUnderTest(config: slowConfig("0.1", unit: unit))
        defer { a.remove() }
        try #require(a.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(a.stderr)")
        let before = try report(a)
        a.signal(SIGKILL)
        _ = a.waitForExit()

        // Same state folder, a first cycle slowed by the POST command. The first answer the socket gives
        // must be the restored report (a loaded machine may take seconds to bring the socket up).
        let b = try DaemonUnderTest(config: slowConfig("6", unit: unit), dir: a.dir)
        defer { b.stop() }
        var restored: Report?
        var firstSource: String?
        for _ in 0..<400 where firstSource == nil {
            if let h = try? b.health() {
                firstSource = h["report_source"] as? String
                if firstSource == "restored" { restored = try? report(b) }
            }
            usleep(50_000)
        }
        let served = try #require(restored, "the restarted daemon's first answer came from \(firstSource ?? "nowhere"), not the saved report; stderr: \(b.stderr)")
        #expect(served.generatedAt == before.generatedAt)
        #expect(served.targets.map(\.name) == before.targets.map(\.name))
        try #require(b.waitForNotify { $0.contains("READY=1") } != nil)
        #expect(try b.health()["report_source"] as? String == "cycle")
        // The restored report was the base of the first diff: the persisting finding is not re-announced.
        #expect(try JournaldLease.entries(matching: ["_PID=\(b.pid)", "SENTINEL_CODE=service-not-running", "SENTINEL_STATE=new"], since: b.started, count: 0, timeout: 0).isEmpty)
    }
}

/// Start-up, activation and the watchdog, on the real binary.
@Suite(.serialized) struct DaemonStartTests {
    @Test func aBadConfigStopsTheStartWithFileLineAndKey() throws {
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "interval: 5m\nservices:\n  - name: api\n    unit: api\n    colour: blue\n".write(toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let r = try Sentinel.shell(["env", "RUNTIME_DIRECTORY=\(dir)", "STATE_DIRECTORY=\(dir)", Sentinel.binary, "daemon", "--config", dir + "/c.yaml"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("\(dir)/c.yaml:5:5: services[0].colour: unknown key"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/api.sock"))
        let check = try Sentinel.run(["daemon", "--check", "--config", dir + "/c.yaml"])
        #expect(check.status == 2)
        // Without --config, $CRYPTO_SENTINEL_CONFIG (the installed unit's, CONFDIR under PREFIX) is the file.
        let fromEnv = try Sentinel.shell(["env", "CRYPTO_SENTINEL_CONFIG=\(dir)/c.yaml", Sentinel.binary, "daemon", "--check"])
        #expect(fromEnv.status == 2 && fromEnv.stderr.contains("\(dir)/c.yaml:5:5:"), "\(fromEnv.stderr)")
        let absentEnv = try Sentinel.shell(["env", "CRYPTO_SENTINEL_CONFIG=\(dir)/absent.yaml", Sentinel.binary, "daemon", "--check"])
        #expect(absentEnv.status == 0 && absentEnv.stdout.contains("embedded default (\(dir)/absent.yaml absent)"), "\(absentEnv.stdout)")
        let missing = try Sentinel.run(["daemon", "--check", "--config", dir + "/absent.yaml"])
        #expect(missing.status == 2 && missing.stderr.contains("absent.yaml: cannot read"))
        try "services:\n  - name: api\n    unit: api\n".write(toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let good = try Sentinel.run(["daemon", "--check", "--config", dir + "/c.yaml"])
        #expect(good.status == 0 && good.stdout.contains("services: api") && good.stdout.contains("discover: off"))
        // A state folder a service user could write: refused at start, before anything is written there.
        let state = dir + "/state"
        mkdir(state, 0o777); chmod(state, 0o777)
        let open = try Sentinel.shell(["env", "RUNTIME_DIRECTORY=\(dir)", "STATE_DIRECTORY=\(state)", Sentinel.binary, "daemon", "--config", dir + "/c.yaml"])
        #expect(open.status == 2)
        #expect(open.stderr.contains("\(state): writable by group or others (mode 777)"), "\(open.stderr)")
    }

    /// systemd-socket-activate binds the sockets and execs the daemon on the first connection, with
    /// LISTEN_FDS/LISTEN_PID, as crypto-sentinel.socket does: the daemon adopts the one bound to its
    /// path (of two), keeps the mode systemd gave it, and leaves the file, which is systemd's, at exit.
    /// In a separate process on purpose: sd_listen_fds() needs every fd from 3 up to be open, which a
    /// test process with other tests opening and closing files cannot promise.
    @Test func socketActivationAdoptsTheListeningSocket() throws {
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sock = dir + "/activated.sock", other = dir + "/other.sock"
        try "interval: 1h\nsocket: \(sock)\nservices:\n  - name: api\n    unit: sentinel-absent-unit\n    post: false\n".write(toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        // posix_spawn, not Foundation's Process: the activator closes its inherited descriptors when it
        // execs the daemon, which Process takes for an exit and then blocks in wait4() on it, stalling
        // every other child of this test process (curl below).
        let argv = ["/usr/bin/systemd-socket-activate", "-l", other, "-l", sock, "-E", "RUNTIME_DIRECTORY=\(dir)/run",
                    "-E", "STATE_DIRECTORY=\(dir)/state", "-E", "PATH=/usr/bin:/bin"]
            + Sanitizers.environment.sorted { $0.key < $1.key }.flatMap { ["-E", "\($0.key)=\($0.value)"] }
            + [Sentinel.binary, "daemon", "--config", dir + "/c.yaml"]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in 0...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0) }
        var pid: pid_t = 0
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        try #require(posix_spawn(&pid, argv[0], &actions, nil, cargs, environ) == 0)
        var reaped = false
        defer { if !reaped { kill(pid, SIGKILL); var st: Int32 = 0; waitpid(pid, &st, 0) } }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: sock) { usleep(20_000) }
        #expect(chmod(sock, 0o600) == 0)  // a mode systemd's SocketMode= chose; the daemon must not change it
        // The first connection starts the daemon, which answers it on the adopted socket.
        let r = try Sentinel.shell(["curl", "-s", "--max-time", "10", "--unix-socket", sock, "http://localhost/v1/health"])
        #expect(r.stdout.contains("\"status\":\"ok\""))
        // It did not bind a socket of its own.
        #expect(!FileManager.default.fileExists(atPath: dir + "/run/api.sock"))
        // SIGTERM once the first cycle is done (as systemd would after READY=1).
        for _ in 0..<250 {
            let h = try Sentinel.shell(["curl", "-s", "--max-time", "5", "--unix-socket", sock, "http://localhost/v1/health"])
            if h.stdout.contains("\"ready\":true") { break }
            usleep(20_000)
        }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<1000 where !reaped {
            reaped = waitpid(pid, &status, WNOHANG) == pid
            if !reaped { usleep(20_000) }
        }
        #expect(reaped && status == 0, "the daemon (exec'd by the activator, same pid) exits 0 within 20 s of SIGTERM")
        var st = stat()
        #expect(stat(sock, &st) == 0 && st.st_mode & 0o7777 == 0o600, "the adopted socket keeps its mode and stays")
    }

    /// A cycle step that hangs (the product's POST command, here 4 s) never stops WATCHDOG=1.
    @Test func theWatchdogKeepsComingDuringASlowCycle() throws {
        let d = try DaemonUnderTest(config: """
            interval: 1h
            services:
              - name: slow
                unit: sentinel-absent-unit
                post_command: [/bin/sleep, "4"]
            """, watchdogUSec: 1_000_000)
        defer { d.remove() }
        var pings = 0
        let ready = d.waitForNotify(30) { m in
            if m == "WATCHDOG=1" { pings += 1 }
            return m.contains("READY=1")
        }
        #expect(ready != nil)
        // Every half of WATCHDOG_USEC (0.5 s) through a 4 s cycle.
        #expect(pings >= 6, "only \(pings) WATCHDOG=1 before READY=1")
        d.signal(SIGTERM)
        #expect(d.waitForExit() == 0)
    }
}
