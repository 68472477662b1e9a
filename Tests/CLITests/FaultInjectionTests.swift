import Foundation
import Glibc
import SentinelCore
import SentinelTestSupport
import Testing

/// Faults injected into the real daemon binary (issue 6, item 2). Each ends in a clear log line or
/// finding, the daemon keeps running, and no report or alert is lost.
///
/// Most run the daemon in a private mount namespace (`unshare -m`, which makes every mount private)
/// where an empty tmpfs hides /run/systemd/journal: there it has no journald whatever other suites
/// do with theirs, so its log lines land on stderr where the test reads them, and mounts made for the
/// fault (a read-only or a full state folder) vanish with the daemon.
@Suite(.serialized) struct FaultInjectionTests {
    static let absentUnit = "sentinel-absent-\(UUID().uuidString.prefix(6).lowercased())"

    static func config(_ extra: String = "") -> String {
        """
        interval: 1h
        services:
          - name: absent
            unit: \(absentUnit)
        \(extra)
        """
    }

    /// `sh -c` run in a private mount namespace before exec'ing the daemon (same pid): hides journald,
    /// then runs `setup` (with $STATE set to the state folder).
    static func privateNamespace(_ setup: String = "") -> [String] {
        let script = """
            set -e
            # Created (empty) on the host if absent, so a journald started in here writes only to its tmpfs;
            # /var/log/journal is left alone (journald uses it only if it exists).
            mkdir -p /run/systemd/journal /run/log/journal
            for d in /run/systemd/journal /run/log/journal /var/log/journal; do
              if [ -d "$d" ]; then mount -t tmpfs -o size=4m,mode=0755 tmpfs "$d"; fi
            done
            \(setup)
            exec "$@"
            """
        return ["/usr/bin/unshare", "-m", "/bin/sh", "-c", script, "sh"]
    }

    func waitFor(_ seconds: Double = 60, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(100_000)
        }
        return condition()
    }

    func report(_ d: DaemonUnderTest) throws -> Report {
        let (code, body) = try d.curl("/v1/report")
        guard code == 200 else { throw FixtureError(message: "GET /v1/report: \(code) \(body)") }
        return try JSONDecoder().decode(Report.self, from: Data(body.utf8))
    }

    func cycles(_ d: DaemonUnderTest) -> Int { ((try? d.health())?["cycles"] as? Int) ?? -1 }

    /// POST /v1/scan as root, then waits for the cycle count to pass what it was.
    func scanNow(_ d: DaemonUnderTest) throws -> Bool {
        let before = cycles(d)
        #expect(try d.curl("/v1/scan", method: "POST").code == 202)
        return waitFor { cycles(d) > before }
    }

    @Test func withoutNotifySocketTheDaemonRunsAndServes() throws {
        let d = try DaemonUnderTest(config: Self.config(), notify: false, wrapper: Self.privateNamespace())
        defer { d.remove() }
        try #require(waitFor { (try? d.health())?["ready"] as? Bool == true }, "never ready; stderr: \(d.stderr)")
        #expect(try report(d).targets.contains { $0.name == "absent" })
        #expect(try scanNow(d))
        #expect(d.process.isRunning)
        // Its alert still went somewhere (stderr here: no journald in its namespace).
        #expect(d.stderr.contains("service-not-running"), "\(d.stderr)")
        d.signal(SIGTERM)
        #expect(d.waitForExit() == 0)
    }

    @Test func journaldAbsentThenStartedMidRunAlertsGoToStderrThenToTheJournal() throws {
        let d = try DaemonUnderTest(config: Self.config(), wrapper: Self.privateNamespace())
        defer { d.remove() }
        try #require(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(d.stderr)")
        // No journald: the first alert (the down service) is a line on stderr.
        #expect(d.stderr.contains("service-not-running"), "\(d.stderr)")

        // journald started by hand inside the daemon's namespace (nsenter execs it: same pid, ours to stop).
        let root = "/proc/\(d.pid)/root"
        let journald = Process()
        journald.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        journald.arguments = ["-t", String(d.pid), "-m", JournaldLease.binary]
        journald.environment = ["PATH": "/usr/bin:/bin"]
        journald.standardOutput = FileHandle.nullDevice
        journald.standardError = FileHandle.nullDevice
        try journald.run()
        defer { kill(journald.processIdentifier, SIGTERM); journald.waitUntilExit() }
        try #require(waitFor(20) { access(root + JournaldLease.socketPath, F_OK) == 0 }, "journald did not start in the namespace")
        usleep(300_000)

        // A new finding mid-run (a second down service, by SIGHUP): its alert goes to the journal.
        let second = "sentinel-absent-\(UUID().uuidString.prefix(6).lowercased())"
        try Self.config("  - name: second\n    unit: \(second)\n").write(toFile: d.configPath, atomically: true, encoding: .utf8)
        d.signal(SIGHUP)
        #expect(d.waitForNotify(30) { $0.contains("READY=1") && $0.contains("reloaded") } != nil)
        var entries: [[String: Any]] = []
        let found = waitFor(30) {
            let out = (try? Subprocess.run([JournaldLease.journalctl, "--no-pager", "-o", "json", "-D", root + "/run/log/journal",
                                           "_PID=\(d.pid)", "SENTINEL_TARGET=second"]))?.text ?? ""
            entries = out.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            return !entries.isEmpty
        }
        #expect(found, "the alert after journald started is not in its journal; stderr: \(d.stderr)")
        #expect(entries.first?["SENTINEL_CODE"] as? String == "service-not-running")
        #expect(!d.stderr.contains(second), "the journal took the second alert, not stderr")
        #expect(d.process.isRunning)
    }

    @Test func aReadOnlyStateFolderStillServesTheReportAndSaysTheStateWasNotSaved() throws {
        let d = try DaemonUnderTest(config: Self.config(), wrapper: Self.privateNamespace(
            #"mkdir -p "$STATE_DIRECTORY" && mount -t tmpfs -o ro,size=1m tmpfs "$STATE_DIRECTORY""#))
        defer { d.remove() }
        try #require(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(d.stderr)")
        #expect(try report(d).targets.contains { $0.name == "absent" })
        #expect(waitFor(10) { d.stderr.contains("state not saved") }, "\(d.stderr)")
        #expect(d.stderr.contains("Read-only file system"), "\(d.stderr)")
        // Another cycle: still served, still running; the same problem is not logged per cycle.
        #expect(try scanNow(d))
        #expect(try report(d).targets.contains { $0.name == "absent" })
        #expect(d.stderr.components(separatedBy: "state not saved").count == 2, "\(d.stderr)")
        #expect(d.process.isRunning)
    }

    @Test func aFullStateFolderStillServesTheReportAndSavesAgainOnceThereIsRoom() throws {
        let d = try DaemonUnderTest(config: Self.config(), wrapper: Self.privateNamespace(
            #"mkdir -p "$STATE_DIRECTORY" && mount -t tmpfs -o size=64k tmpfs "$STATE_DIRECTORY" && (dd if=/dev/zero of="$STATE_DIRECTORY/fill" bs=4k 2>/dev/null || true)"#))
        defer { d.remove() }
        try #require(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(d.stderr)")
        #expect(try report(d).targets.contains { $0.name == "absent" })
        #expect(waitFor(10) { d.stderr.contains("state not saved") }, "\(d.stderr)")
        #expect(d.stderr.contains("No space left on device"), "\(d.stderr)")

        // Room again (the daemon's view of the folder, through its /proc root): the next cycle saves.
        let state = "/proc/\(d.pid)/root" + d.dir + "/state"
        try #require(unlink(state + "/fill") == 0, "rm \(state)/fill: \(String(cString: strerror(errno)))")
        #expect(try scanNow(d))
        #expect(waitFor(10) { d.stderr.contains("state saved again") }, "\(d.stderr)")
        let saved = try FileManager.default.contentsOfDirectory(atPath: state)
        #expect(saved.contains { $0.hasSuffix(".json") }, "\(saved)")
        #expect(d.process.isRunning)
    }

    @Test func aMissingProbeBinaryIsLoggedAndInspectionGoesOn() throws {
        let d = try DaemonUnderTest(config: Self.config(), extraEnv: ["SENTINEL_PROBE": "/nonexistent"], wrapper: Self.privateNamespace())
        defer { d.remove() }
        try #require(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(d.stderr)")
        #expect(d.stderr.contains("/nonexistent"), "a log line names the missing probe: \(d.stderr)")
        #expect(d.stderr.contains("POSTs are skipped"), "\(d.stderr)")
        let r = try report(d)
        #expect(r.targets.first { $0.name == "absent" }?.findings.contains { $0.code == .serviceNotRunning } == true)
        #expect(try scanNow(d))
        #expect(d.process.isRunning)
    }

    @Test func aTargetExitingMidCycleEndsAsServiceNotRunningWithItsAlert() throws {
        let unit = try #require(FakeUnit("sentinel-exit-\(UUID().uuidString.prefix(6).lowercased()).service"), "no writable cgroup hierarchy")
        let target = try LiveProcess(["/bin/sh", "-c", "echo up; exec sleep 1000"])
        defer { target.stop(); unit.remove() }
        try #require(unit.adopt(target.pid))
        // The product's POST command (2 s) keeps the cycle open while the target goes away.
        let marker = "2.\(Int.random(in: 100...999))"
        let d = try DaemonUnderTest(config: """
            interval: 1h
            services:
              - name: leaving
                unit: \(unit.name)
                post_command: [/bin/sleep, "\(marker)"]
            """, wrapper: Self.privateNamespace())
        defer { d.remove() }
        try #require(waitFor(30) { (try? Sentinel.shell(["pgrep", "-f", "sleep \(marker)"]))?.status == 0 }, "the cycle never started; stderr: \(d.stderr)")
        target.stop()
        try #require(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1 after the target left mid-cycle; stderr: \(d.stderr)")
        // The exit is seen (live watcher or the next cycle): a finding, and its alert.
        _ = try? d.curl("/v1/scan", method: "POST")
        let gone = waitFor(60) {
            (try? report(d))?.targets.first { $0.name == "leaving" }?.findings.contains { $0.code == .serviceNotRunning } == true
        }
        #expect(gone, "report: \(String(describing: try? d.curl("/v1/targets/leaving").body))")
        #expect(waitFor(10) { d.stderr.contains("service-not-running") && d.stderr.contains("leaving") }, "\(d.stderr)")
        #expect(d.process.isRunning)
    }

    @Test func bundleFilesReplacedDuringScansNeverStopTheDaemonAndTheLastScanSeesTheFinalFiles() throws {
        let work = try Fixtures.copy(try Fixtures.cxfreeze("debian"))
        defer { try? FileManager.default.removeItem(atPath: work) }
        let d = try DaemonUnderTest(config: """
            interval: 1h
            bundles:
              - name: product
                root: \(work)
            """, wrapper: Self.privateNamespace())
        defer { d.remove() }
        try #require(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(d.stderr)")
        func codes() throws -> Set<String> {
            Set(try #require(try report(d).targets.first { $0.name == "product" }).findings.map(\.code.rawValue))
        }
        let before = try codes()
        #expect(before.contains(FindingCode.splitLibcrypto.rawValue))

        // Every shared object replaced over and over (a fresh copy renamed over it, and libcrypto also
        // rewritten in place, so a scan may read a torn file) while scans run.
        let churn = Process()
        churn.executableURL = URL(fileURLWithPath: "/bin/bash")
        churn.arguments = ["-c", """
            cd "$0/lib"; while :; do
              for f in *.so*; do cp -p "$f" "$0.swap" && mv -f "$0.swap" "$f"; done
              for f in libcrypto*; do cp -p "$f" "$0.orig"; cat "$0.orig" > "$f"; done
            done
            """, work]
        churn.standardOutput = FileHandle.nullDevice
        churn.standardError = FileHandle.nullDevice
        try churn.run()
        var completed = 0
        var seen: [Set<String>: Int] = [:]
        for _ in 0..<8 {
            if try scanNow(d) { completed += 1 }
            if let c = try? codes() { seen[c, default: 0] += 1 }
        }
        print("bundle churn: findings per scan \(seen.map { ($0.key.sorted(), $0.value) })")
        kill(churn.processIdentifier, SIGKILL)
        churn.waitUntilExit()
        // An interrupted in-place rewrite is finished from the saved original.
        if FileManager.default.fileExists(atPath: work + ".orig") {
            let lib = try FileManager.default.contentsOfDirectory(atPath: work + "/lib").filter { $0.hasPrefix("libcrypto") }
            for f in lib { _ = try Sentinel.shell(["cp", "-p", work + ".orig", work + "/lib/" + f]) }
        }
        try? FileManager.default.removeItem(atPath: work + ".orig")
        try? FileManager.default.removeItem(atPath: work + ".swap")

        #expect(completed == 8, "every scan during the churn completes")
        #expect(d.process.isRunning)
        // Files at rest again: the next scan reports what the first did.
        #expect(try scanNow(d))
        #expect(try codes() == before, "stderr: \(d.stderr.suffix(2000))")
    }
}
