import Foundation
import Glibc
import SentinelCore
import SentinelTestSupport
import Testing

/// The installed product under a real systemd: a Debian 12 minbase root (scripts/fixtures/systemd-root.sh)
/// with `make install DESTDIR=` of the release build, the split demo bundle as a unit of its own running
/// as nobody, and only crypto-sentinel.socket enabled, booted once for the suite (booting, powering off
/// and copying the root take seconds; every test would pay them). Each test asserts what an operator
/// sees (systemctl, journalctl -x, curl) and sets up the state it needs, so none depends on another's
/// order; the container is powered off when the suite ends, whatever happened.
@Suite(.serialized, BootedLab.trait) struct SystemdContainerTests {
    var lab: BootedSystem { BootedLab.current! }
    static let socket = "/run/crypto-sentinel/api.sock"

    func run(_ argv: [String]) throws -> ProcessOutput { try lab.run(argv) }
    func show(_ property: String, _ unit: String = "crypto-sentinel.service") throws -> String {
        try run(["systemctl", "show", "-P", property, unit]).text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    func curl(_ path: String, _ extra: [String] = [], user: UInt32? = nil, groups: [UInt32] = []) throws -> HTTPReply {
        let out = try lab.run(["curl", "-s", "-S", "-i", "--max-time", "10", "--unix-socket", Self.socket] + extra + ["http://localhost" + path],
                              user: user, groups: groups)
        return Curl.parse(out.text, exit: out.status, error: out.stderr)
    }
    /// The journal's entries matching `matches` stored after `mark`, as JSON objects. (Filtered here:
    /// journalctl 252 with --after-cursor and a match skipped entries that were there.)
    func journal(_ matches: [String], after mark: UInt64) throws -> [[String: Any]] {
        try run(["journalctl", "-o", "json", "--no-pager"] + matches).text.split(separator: "\n").compactMap {
            guard let entry = try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any],
                  let at = (entry["__REALTIME_TIMESTAMP"] as? String).flatMap(UInt64.init), at > mark else { return nil }
            return entry
        }
    }
    /// `journal` once it has at least one entry (journald stores a datagram a moment after it is sent).
    func entries(_ matches: [String], after mark: UInt64) throws -> [[String: Any]] {
        try poll(10) { () -> [[String: Any]]? in
            let found = try journal(matches, after: mark); return found.isEmpty ? nil : found
        } ?? []
    }
    /// The time of the journal's last entry now: what comes after it is this test's.
    func mark() throws -> UInt64 {
        let last = try run(["journalctl", "-n", "1", "-o", "json", "--no-pager"]).text
        let entry = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any]
        let at = (entry?["__REALTIME_TIMESTAMP"] as? String).flatMap { UInt64($0) }
        return try #require(at)
    }
    /// Polls `probe` until it returns a value (deadline in seconds); nil when it never did.
    func poll<T>(_ seconds: Double, _ probe: () throws -> T?) rethrows -> T? {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if let v = try probe() { return v }
            usleep(200_000)
        } while Date() < deadline
        return nil
    }
    func startDaemon() throws {
        let started = try run(["systemctl", "start", "crypto-sentinel.service"])
        try #require(started.status == 0, "\(started.stderr)")
    }
    func health() throws -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(curl("/v1/health").body.utf8)) as? [String: Any]) ?? [:]
    }

    @Test func onlyTheSocketEnabledTheFirstCurlStartsTheDaemon() throws {
        _ = try run(["systemctl", "stop", "crypto-sentinel.service"])
        #expect(try show("UnitFileState", "crypto-sentinel.socket") == "enabled")
        #expect(try show("UnitFileState") == "disabled")
        #expect(try show("ActiveState", "crypto-sentinel.socket") == "active")
        #expect(try show("ActiveState") == "inactive")
        let first = try curl("/v1/health")
        #expect(first.status == 200 && first.body.contains(#""status":"ok""#), "\(first.curlError) \(first.body)")
        // Answered while still "activating": READY=1 comes after the first cycle.
        #expect(try poll(30) { try show("ActiveState") == "active" ? true : nil } != nil)
        #expect(try show("TriggeredBy").contains("crypto-sentinel.socket"))
    }

    @Test func readyAfterTheFirstCycleWithTheSummaryInStatus() throws {
        _ = try run(["systemctl", "stop", "crypto-sentinel.service"])
        // Type=notify: start returns once READY=1 came, i.e. after the first cycle.
        try startDaemon()
        #expect(try show("SubState") == "running")
        #expect(try health()["ready"] as? Bool == true)
        let status = try run(["systemctl", "status", "--no-pager", "crypto-sentinel.service"]).text
        #expect(status.contains(#"Status: "2 targets: 2 failed ("#), "\(status)")
        #expect(try show("StatusText").hasPrefix("2 targets: 2 failed ("))
    }

    /// demo-api.service runs the split bundle as nobody; the daemon sees both libcrypto copies in it,
    /// journals it once with the catalog's explanation, and its POST child runs as nobody through the
    /// unit's sandbox (setns into the service's mount namespace: CAP_SYS_ADMIN, RestrictNamespaces=mnt).
    @Test func theSplitServiceIsInTheJournalWithTheCatalogTextAndItsPOSTRunsAsNobody() throws {
        try startDaemon()
        let servicePID = try show("MainPID", "demo-api.service")
        let uid = try run(["sh", "-c", "awk '/^Uid:/ {print $2}' /proc/\(servicePID)/status"]).text
        #expect(uid.trimmingCharacters(in: .whitespacesAndNewlines) == "65534", "demo-api runs as nobody")
        let explained = try poll(30) { () -> String? in
            let text = try run(["journalctl", "-x", "-u", "crypto-sentinel", "--no-pager",
                                "MESSAGE_ID=\(FindingCode.processSplitLibcrypto.messageID)"]).text
            return text.contains("Why it matters") ? text : nil
        }
        let text = try #require(explained, "no process-split-libcrypto entry with its catalog text")
        #expect(text.contains("demo-api maps 2 different libcrypto files"), "\(text)")
        #expect(text.contains("process-split-libcrypto (critical) on demo-api: new"), "the catalog's subject, filled in")
        #expect(text.contains("/opt/demo/lib/libcrypto-27e744a7.so.3"))

        let target = try curl("/v1/targets/demo-api").body
        #expect(target.contains(#""code":"process-split-libcrypto""#))
        #expect(target.contains(#""child_uid":65534"#), "the POST child ran as the service's user: \(target.prefix(2000))")
        #expect(!target.contains("post-crashed") && !target.contains("setns"), "\(target.prefix(3000))")
    }

    @Test func reloadTakesAGoodFileAndKeepsTheRunningConfigOnABadOne() throws {
        try startDaemon()
        let pid = try show("MainPID")
        let config = "/usr/local/etc/crypto-sentinel/config.yaml"
        let good = try run(["cat", config]).text
        defer { _ = try? run(["sh", "-c", "cat > \(config) <<'EOF'\n\(good)EOF"]) }
        let before = try mark()

        _ = try run(["sh", "-c", "printf 'interval: -3s\\n' > \(config)"])
        let bad = try run(["systemctl", "reload", "crypto-sentinel.service"])
        #expect(bad.status == 0, "reload needs no /bin/kill: \(bad.stderr)")
        let rejected = try poll(20) { () -> String? in
            let s = try show("StatusText"); return s.hasPrefix("config rejected") ? s : nil
        }
        #expect(rejected?.contains("\(config):1:") == true, "\(rejected ?? "no rejection in Status:")")
        #expect((try health()["reload_error"] as? String)?.hasPrefix(config + ":1:") == true)
        #expect(try show("MainPID") == pid, "a bad file never stops the daemon")
        #expect(try entries(["MESSAGE_ID=\(DaemonMessageID.configRejected)"], after: before).count == 1)

        _ = try run(["sh", "-c", "cat > \(config) <<'EOF'\n\(good)EOF"])
        #expect(try run(["systemctl", "reload", "crypto-sentinel.service"]).status == 0)
        let swapped = try poll(20) { () -> String? in
            let s = try show("StatusText"); return s.hasPrefix("config rejected") ? nil : s
        }
        #expect(swapped != nil, "Status: still says the file was rejected")
        #expect(try health()["reload_error"] == nil)
        #expect(try entries(["MESSAGE_ID=\(DaemonMessageID.configReloaded)"], after: before).count == 1)
        #expect(try show("MainPID") == pid)
    }

    /// A hung daemon (SIGSTOP) is killed with SIGABRT after WatchdogSec and restarted; the socket still
    /// answers afterwards. WatchdogSec is shortened by a drop-in so the test waits 6 s, not the unit's 30.
    @Test func aHungDaemonIsKilledByTheWatchdogAndRestarted() throws {
        let dropIn = "/etc/systemd/system/crypto-sentinel.service.d/test-watchdog.conf"
        _ = try run(["sh", "-c", "mkdir -p ${0%/*} && printf '[Service]\\nWatchdogSec=6s\\n' > $0", dropIn])
        defer {
            _ = try? run(["rm", "-f", dropIn]); _ = try? run(["systemctl", "daemon-reload"])
            _ = try? run(["systemctl", "restart", "crypto-sentinel.service"])
        }
        _ = try run(["systemctl", "daemon-reload"])
        _ = try run(["systemctl", "restart", "crypto-sentinel.service"])
        let pid = try show("MainPID")
        // MainPID 0 (the daemon did not start) would make this `kill -STOP 0`: the shell's own group, a hang.
        let result = try show("Result")
        try #require(pid != "0", "the daemon is not running: \(result)")
        let before = try mark()
        // bash's builtin kill: the image has no procps.
        #expect(try run(["bash", "-c", "kill -STOP \(pid)"]).status == 0)
        let restarted = try poll(50) { () -> String? in
            let now = try show("MainPID"), state = try show("SubState")
            return now != pid && now != "0" && state == "running" ? now : nil
        }
        #expect(restarted != nil, "not restarted within 50 s")
        let systemdSaid = try journal(["_SYSTEMD_UNIT=init.scope", "UNIT=crypto-sentinel.service"], after: before)
            .compactMap { $0["MESSAGE"] as? String }
        #expect(systemdSaid.contains { $0.contains("Watchdog timeout") }, "\(systemdSaid)")
        #expect(systemdSaid.contains { $0.contains("status=6/ABRT") }, "\(systemdSaid)")
        #expect(try show("NRestarts") != "0")
        #expect(try curl("/v1/health").status == 200, "the socket survived the restart")
    }

    /// systemctl stop: the daemon says it stops and exits 0 well within TimeoutStopSec; its report is on
    /// disk, and the next start does not announce the findings it already reported.
    @Test func stopExitsCleanlyWithTheStateSavedAndTheNextStartServesIt() throws {
        try startDaemon()
        let served = try curl("/v1/report").body
        let began = Date()
        #expect(try run(["systemctl", "stop", "crypto-sentinel.service"]).status == 0)
        let took = Date().timeIntervalSince(began)
        #expect(took < 30, "TimeoutStopSec=30s: stop took \(took) s")
        #expect(try show("Result") == "success")
        #expect(try show("ExecMainStatus") == "0")
        let stopped = try run(["journalctl", "-u", "crypto-sentinel", "-n", "20", "--no-pager",
                               "MESSAGE_ID=\(DaemonMessageID.stopping)"]).text
        #expect(stopped.contains("crypto-sentinel stopped after"), "\(stopped)")
        let saved = try run(["cat", "/var/lib/crypto-sentinel/report.json"]).text
        let generated = { (json: String) in (try? JSONDecoder().decode(Report.self, from: Data(json.utf8)))?.generatedAt }
        #expect(generated(saved) != nil && generated(saved) == generated(served), "the report served is the one saved")

        let before = try mark()
        try startDaemon()
        let next = try run(["systemctl", "show", "-P", "MainPID", "crypto-sentinel.service"]).text.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try curl("/v1/report").status == 200)
        let announced = try journal(["_PID=\(next)", "MESSAGE_ID=\(FindingCode.processSplitLibcrypto.messageID)"], after: before)
        #expect(announced.isEmpty, "restored findings are not announced again: \(announced.count)")
    }

    @Test func aMemberOfTheSocketGroupMayReadButNotPOSTAScan() throws {
        try startDaemon()
        let gid = try #require(UInt32(run(["sh", "-c", "getent group sentinel-ops | cut -d: -f3"]).text.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(try curl("/v1/health", user: 65534, groups: [gid]).status == 200)
        let refused = try curl("/v1/scan", ["-X", "POST"], user: 65534, groups: [gid])
        #expect(refused.status == 403, "\(refused.status) \(refused.body)")
        let outsider = try curl("/v1/health", user: 65534)
        #expect(outsider.status != 200 && outsider.curlExit != 0, "socket mode 0660, not in the group: \(outsider.curlError)")
        #expect(try curl("/v1/scan", ["-X", "POST"]).status == 202)
    }

    /// Seen from inside the daemon's own mount namespace (nsenter -m into its MainPID).
    @Test func theSandboxHoldsTheDaemonWritesOnlyItsFoldersAndSeesNoHome() throws {
        try startDaemon()
        let pid = try show("MainPID")
        let inside = { (script: String) in try self.run(["nsenter", "-t", pid, "-m", "--", "/bin/sh", "-c", script]) }
        for path in ["/etc/sentinel-probe", "/usr/local/sentinel-probe", "/sentinel-probe", "/root/sentinel-probe"] {
            let denied = try inside("touch \(path)")
            #expect(denied.status != 0 && denied.stderr.contains("Read-only file system"), "\(path): \(denied.stderr)")
        }
        for folder in ["/var/lib/crypto-sentinel", "/run/crypto-sentinel", "/tmp"] {
            #expect(try inside("touch \(folder)/probe && rm \(folder)/probe").status == 0, "\(folder) is writable")
        }
        #expect(try run(["ls", "/home/alice"]).text.contains("notes"), "the container has a home")
        let home = try inside("ls -A /home")
        #expect(home.status == 0 && home.text.isEmpty, "ProtectHome=yes: \(home.text)")
    }

    /// A start, three cycles and a stop: every journal line of the daemon's process is one of ours (sent
    /// with sd_journal, identifier crypto-sentinel): nothing from libdispatch or the runtime on syslog or stderr.
    @Test func everyJournalLineOfTheDaemonIsOurs() throws {
        _ = try run(["systemctl", "stop", "crypto-sentinel.service"])
        let before = try mark()
        try startDaemon()
        let pid = try show("MainPID")
        for _ in 0..<3 {
            let cycles = try health()["cycles"] as? Int ?? 0
            #expect(try curl("/v1/scan", ["-X", "POST"]).status == 202)
            #expect(try poll(30) { (try health()["cycles"] as? Int ?? 0) > cycles ? true : nil } != nil)
        }
        #expect(try run(["systemctl", "stop", "crypto-sentinel.service"]).status == 0)
        _ = try entries(["_PID=\(pid)", "MESSAGE_ID=\(DaemonMessageID.stopping)"], after: before)
        let lines = try journal(["_PID=\(pid)"], after: before)
        let foreign = lines.filter { $0["_TRANSPORT"] as? String != "journal" || $0["SYSLOG_IDENTIFIER"] as? String != "crypto-sentinel" }
        #expect(lines.count >= 2, "started and stopped at least")
        #expect(foreign.isEmpty, "\(foreign.map { "\($0["_TRANSPORT"] ?? "?") \($0["SYSLOG_IDENTIFIER"] ?? "?"): \($0["MESSAGE"] ?? "?")" })")
        // The unit's own lines: systemd's, about the unit; no "(sentinel)" pre-exec complaint either.
        let unit = try journal(["_SYSTEMD_UNIT=crypto-sentinel.service"], after: before)
        #expect(unit.allSatisfy { ($0["_PID"] as? String) == pid }, "\(unit.filter { ($0["_PID"] as? String) != pid }.map { $0["MESSAGE"] ?? "?" })")
    }
}

/// The booted container the suite shares, in a task-local so every test of the suite sees it.
enum BootedLab {
    @TaskLocal static var current: BootedSystem?

    static var trait: Scope { Scope() }

    /// Boots once around the whole suite (not each test), powers off after it.
    struct Scope: SuiteTrait, TestScoping {
        var isRecursive: Bool { false }
        func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
            let lab = try BootedLab.boot()
            defer { lab.powerOff() }
            try await BootedLab.$current.withValue(lab) { try await function() }
        }
    }

    static let config = """
        interval: 1h
        bundles:
          - name: demo
            root: /opt/demo
        services:
          - name: demo-api
            unit: demo-api.service
            bundle: demo

        """

    /// The split demo bundle as the product's service; a home with a file; an ops group for the socket.
    static let demoUnit = """
        [Unit]
        Description=demo product API (the split cx_Freeze bundle)
        [Service]
        User=nobody
        Group=nogroup
        Environment=OPENSSL_MODULES=/usr/lib/x86_64-linux-gnu/ossl-modules
        ExecStart=/opt/demo/app --serve
        [Install]
        WantedBy=multi-user.target

        """

    static func boot() throws -> BootedSystem {
        let cache = ProcessInfo.processInfo.environment["SENTINEL_SYSTEMD_CACHE"] ?? "/var/tmp/crypto-sentinel-systemd"
        try FixtureScripts.build("systemd-root.sh", out: cache)
        let bundle = try Fixtures.cxfreeze("debian")
        let package = FixtureScripts.packageRoot
        guard FileManager.default.isExecutableFile(atPath: package + "/.build/release/crypto-sentinel") else {
            throw FixtureError(message: "no release build to install: run make release (make test does)")
        }
        return try BootedSystem(base: cache + "/root") { root in
            // The install a user does, into the image: binaries, units, catalog (indexed for this root).
            let install = try Subprocess.run(["make", "-C", package, "-o", "release", "install", "DESTDIR=" + root])
            guard install.status == 0 else { throw FixtureError(message: "make install: \(install.stderr)") }
            guard FileManager.default.fileExists(atPath: root + "/var/lib/systemd/catalog/database") else {
                throw FixtureError(message: "make install DESTDIR left the catalog unindexed:\n\(install.text)")
            }
            let steps: [[String]] = [
                ["cp", "-a", bundle, root + "/opt/demo"],
                ["chmod", "-R", "a+rX", root + "/opt/demo"],
                ["mkdir", "-p", root + "/home/alice", root + "/etc/systemd/system/crypto-sentinel.socket.d"],
                ["chroot", root, "groupadd", "--system", "sentinel-ops"],
                ["systemctl", "--root=" + root, "enable", "crypto-sentinel.socket"],
            ]
            for argv in steps {
                let r = try Subprocess.run(argv)
                guard r.status == 0 else { throw FixtureError(message: "\(argv): \(r.stderr)") }
            }
            try config.write(toFile: root + "/usr/local/etc/crypto-sentinel/config.yaml", atomically: true, encoding: .utf8)
            try demoUnit.write(toFile: root + "/etc/systemd/system/demo-api.service", atomically: true, encoding: .utf8)
            try "notes\n".write(toFile: root + "/home/alice/notes", atomically: true, encoding: .utf8)
            // Ops tooling may read the socket; the config names no socket_group, so they may not POST.
            try "[Socket]\nSocketGroup=sentinel-ops\n".write(toFile: root + "/etc/systemd/system/crypto-sentinel.socket.d/ops.conf",
                                                             atomically: true, encoding: .utf8)
            let enable = try Subprocess.run(["systemctl", "--root=" + root, "enable", "demo-api.service"])
            guard enable.status == 0 else { throw FixtureError(message: "enable demo-api: \(enable.stderr)") }
        }
    }
}
