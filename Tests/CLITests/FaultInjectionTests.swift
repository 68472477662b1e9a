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

    /// `textfile:` (node_exporter's textfile collector): the metrics after every cycle, replaced whole,
    /// mode 0644, no temporary file left; a folder that is missing is one warning, the cycles go on, and
    /// the next cycle once it exists writes the file and says so.
    @Test func theMetricsTextfileIsRewrittenAfterEveryCycleAndAFailureIsOneWarning() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-prom-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/crypto-sentinel.prom"
        let d = try DaemonUnderTest(config: "textfile: \(file)\n" + Self.config(), wrapper: Self.privateNamespace())
        defer { d.remove() }
        try #require(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(d.stderr)")
        #expect(waitFor(10) { d.stderr.contains("metrics textfile not written: \(folder): No such file or directory") }, "\(d.stderr)")
        #expect(try scanNow(d))
        #expect(d.stderr.components(separatedBy: "metrics textfile not written").count == 2, "one warning per cause: \(d.stderr)")

        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        #expect(try scanNow(d))
        #expect(waitFor(10) { d.stderr.contains("metrics textfile written again") }, "\(d.stderr)")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.contains("crypto_sentinel_cycles_total"), "\(text.prefix(300))")
        #expect(text.contains("crypto_sentinel_target_state{") && text.contains("target=\"absent\""), "\(text.prefix(600))")
        var st = stat()
        #expect(stat(file, &st) == 0 && st.st_mode & 0o777 == 0o644)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["crypto-sentinel.prom"])
        // Rewritten at the next cycle: the cycle count in it moves on.
        let cyclesBefore = text.split(separator: "\n").first { $0.hasPrefix("crypto_sentinel_cycles_total ") }
        #expect(try scanNow(d))
        #expect(waitFor(10) {
            let now = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            return now.split(separator: "\n").first { $0.hasPrefix("crypto_sentinel_cycles_total ") } != cyclesBefore
        })
        #expect(d.process.isRunning)
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
            #"mkdir -p "$STATE_DIRECTORY" && mount -t tmpfs -o ro,size=1m,mode=0750 tmpfs "$STATE_DIRECTORY""#))
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
            #"mkdir -p "$STATE_DIRECTORY" && mount -t tmpfs -o size=64k,mode=0750 tmpfs "$STATE_DIRECTORY" && (dd if=/dev/zero of="$STATE_DIRECTORY/fill" bs=4k 2>/dev/null || true)"#))
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

    /// Field 22 of /proc/PID/stat (clock ticks after boot): with the pid, it names one process.
    static func startTime(_ pid: Int32) -> UInt64? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat"),
              let close = data.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = data[(close + 2)...].split(separator: UInt8(ascii: " "))
        return fields.count > 19 ? UInt64(String(decoding: fields[19], as: UTF8.self)) : nil
    }

    /// A private pid namespace with its own /proc (`unshare --pid --fork --mount-proc`), its init a
    /// sleep: there the test alone hands out pids, so one can be given out again on purpose.
    /// Processes join it with nsenter; stop() ends it and everything in it.
    final class PidLab {
        let unshare = Process()
        /// Its init, as seen here.
        let initPid: Int32

        init() throws {
            unshare.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
            unshare.arguments = ["--pid", "--fork", "--mount-proc", "--kill-child", "/bin/sleep", "infinity"]
            try unshare.run()
            // Joined only once the child runs sleep: by then its /proc is mounted.
            var found: Int32?
            for _ in 0..<500 where found == nil {
                found = FaultInjectionTests.children(of: unshare.processIdentifier).first {
                    (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8)) == "sleep\n"
                }
                if found == nil { usleep(20_000) }
            }
            guard let found else { kill(unshare.processIdentifier, SIGKILL); throw FixtureError(message: "no pid namespace") }
            initPid = found
        }

        /// `argv` run inside (nsenter forks it there).
        func enter(_ argv: [String]) -> [String] {
            ["/usr/bin/nsenter", "--target", "\(initPid)", "--pid", "--mount", "--"] + argv
        }

        /// Starts `argv` as pid `pid` (free now) of the namespace: its next pid is ns_last_pid + 1, so
        /// pid - 1 is written there. `daemon`, the only other process that could take a pid in here (its
        /// threads count), is stopped meanwhile; the init only sleeps.
        func start(reusing pid: Int32, daemon: Int32, _ argv: [String]) throws -> NamespacedProcess {
            kill(daemon, SIGSTOP)
            defer { kill(daemon, SIGCONT) }
            let write = try Sentinel.shell(enter(["/bin/sh", "-c", "echo \(pid - 1) > /proc/sys/kernel/ns_last_pid"]))
            guard write.status == 0 else { throw FixtureError(message: "ns_last_pid: \(write.stderr)") }
            return try NamespacedProcess(argv)
        }

        /// Ends every process in it (the kernel kills them with their init). Idempotent.
        func stop() {
            if unshare.isRunning { kill(unshare.processIdentifier, SIGKILL) }  // --kill-child: its init
            unshare.waitUntilExit()
        }
    }

    /// Host pids of `parent`'s children (field 4 of /proc/PID/stat), waiting up to 10 s for one.
    static func children(of parent: Int32) -> [Int32] {
        for _ in 0..<500 {
            let found = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
                guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat"),
                      let close = data.lastIndex(of: UInt8(ascii: ")")) else { return false }
                let fields = data[(close + 2)...].split(separator: UInt8(ascii: " "))
                return fields.count > 1 && Int32(String(decoding: fields[1], as: UTF8.self)) == parent
            }
            if !found.isEmpty { return found }
            usleep(20_000)
        }
        return []
    }

    /// The pid of host pid `pid` in its own (innermost) namespace: the last NSpid field.
    static func namespacePid(_ pid: Int32) -> Int32? {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("NSpid:") }?.split(separator: "\t").last.flatMap { Int32($0) }
    }

    /// A program started by nsenter (PidLab.enter), once it printed its first line: `pid` is its pid in
    /// the namespace, `hostPid` the same process here.
    final class NamespacedProcess {
        let nsenter: LiveProcess
        let hostPid: Int32
        let pid: Int32

        init(_ argv: [String]) throws {
            nsenter = try LiveProcess(argv)
            guard let child = FaultInjectionTests.children(of: nsenter.pid).first,
                  let inside = FaultInjectionTests.namespacePid(child) else {
                nsenter.stop()
                throw FixtureError(message: "\(argv) did not start")
            }
            hostPid = child
            pid = inside
        }

        /// Killed and reaped (by nsenter, its parent): its pid is free again once this returns.
        func stop() {
            kill(hostPid, SIGKILL)
            nsenter.process.waitUntilExit()
        }
    }

    /// Lines of the daemon's stderr (its alerts: no journald in its namespace) for one target.
    static func alerts(_ d: DaemonUnderTest, _ target: String) -> [String] {
        d.stderr.split(separator: "\n").map(String.init).filter { $0.contains(" \(target) ") }
    }

    @Test func aPidReusedBetweenCyclesIsANewProcessNotTheOldOne() throws {
        let fx = try Fixtures.proc()
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A private copy of the fixture program: `exe:` matches only processes of this test.
        let exe = dir + "/svc"
        try FileManager.default.copyItem(atPath: fx + "/holdlibs", toPath: exe)
        let split = [exe, fx + "/fake/a/libcrypto.so.3", fx + "/fake/b/libcrypto.so.3"]
        let lab = try PidLab()
        defer { lab.stop() }
        var old: NamespacedProcess? = try NamespacedProcess(lab.enter(split))
        defer { old?.stop() }
        let pid = old!.pid
        let oldStart = try #require(Self.startTime(old!.hostPid))
        let pidFile = dir + "/svc.pid"
        try "\(pid)\n".write(toFile: pidFile, atomically: true, encoding: .utf8)

        let d = try DaemonUnderTest(config: """
            interval: 1h
            services:
              - name: by-pidfile
                pid_file: \(pidFile)
                post: false
              - name: by-exe
                exe: \(exe)
                post: false
            """, wrapper: lab.enter(Self.privateNamespace()))
        // The namespace first: nsenter, d's process, ends only with the daemon, which inherited the
        // descriptor Foundation watches for nsenter's exit.
        defer { lab.stop(); d.remove() }
        // nsenter forked the daemon: its sd_notify datagrams come from that child.
        let daemon = try #require(Self.children(of: d.pid).first, "no daemon; stderr: \(d.stderr)")
        d.notify.accept(pid: daemon)
        try #require(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(d.stderr)")
        var r = try report(d)
        for name in ["by-pidfile", "by-exe"] {
            let t = try #require(r.targets.first { $0.name == name })
            #expect(t.findings.map(\.code) == [.processSplitLibcrypto], "\(name): \(t.findings.map(\.summary))")
            #expect(t.stats["pid"] == Int(pid))
        }
        let cyclesBefore = cycles(d)

        // The process dies and another one is started with its pid: the same program (a restart of the
        // `exe:` service) holding one libcrypto only. The pid file is left as it was: stale.
        old?.stop()
        old = nil
        let reused = try lab.start(reusing: pid, daemon: daemon, lab.enter([exe, fx + "/fake/a/libcrypto.so.3"]))
        defer { reused.stop() }
        try #require(reused.pid == pid, "pid \(pid) was not handed out again (got \(reused.pid))")
        let newStart = try #require(Self.startTime(reused.hostPid))
        try #require(newStart != oldStart, "the same pid, another process")

        // No POST /v1/scan: the live watcher must see that pid \(pid) is another process and run a cycle.
        let reusedAt = Date()
        let seen = waitFor(20) {
            guard let r = try? report(d), cycles(d) > cyclesBefore else { return false }
            return r.targets.first { $0.name == "by-exe" }?.findings.isEmpty == true
        }
        print("pid reuse: pid \(pid) (start \(oldStart) -> \(newStart)) seen by a cycle after \(String(format: "%.1f", Date().timeIntervalSince(reusedAt))) s")
        r = try report(d)
        #expect(seen, "no cycle after the pid was reused (cycles \(cycles(d)) vs \(cyclesBefore)): \(r.targets.map { ($0.name, $0.findings.map(\.code)) })")
        // by-exe: the new process runs its executable, so it is the service, audited afresh; nothing of
        // the old one (two mapped libcrypto files) sticks to it.
        let byExe = try #require(r.targets.first { $0.name == "by-exe" })
        #expect(byExe.findings.isEmpty, "\(byExe.findings.map(\.summary))")
        #expect(byExe.state == .healthy && byExe.stats["pid"] == Int(pid) && byExe.stats["processes"] == 1)
        // by-pidfile: the file names a process that is gone; the pid's new owner is not the service.
        let byFile = try #require(r.targets.first { $0.name == "by-pidfile" })
        let down = try #require(byFile.findings.first { $0.code == .serviceNotRunning }, "\(byFile.findings.map(\.summary))")
        #expect(byFile.findings.map(\.code) == [.serviceNotRunning])
        #expect(down.summary.contains("stale"), "\(down.summary)")
        #expect(down.evidence["pid"] == .int(Int64(pid)), "\(down.evidence)")
        #expect(byFile.stats["processes"] == 0)

        // Every change was alerted once (stderr: no journald in the daemon's namespace).
        #expect(waitFor(5) { Self.alerts(d, "by-pidfile").contains { $0.contains("service-not-running") && $0.contains(" new:") } }, "\(d.stderr)")
        // The cycle's last alert (targets in config order, a target's state after its findings): the
        // lines are written one by one, so count them only once it is there.
        #expect(waitFor(5) { Self.alerts(d, "by-exe").contains { $0.contains("by-exe healthy:") } }, "\(d.stderr)")
        let exeAlerts = Self.alerts(d, "by-exe")
        #expect(exeAlerts.filter { $0.contains("process-split-libcrypto") && $0.contains(" new:") }.count == 1, "\(exeAlerts)")
        #expect(exeAlerts.filter { $0.contains("process-split-libcrypto") && $0.contains(" resolved:") }.count == 1, "\(exeAlerts)")
        let fileAlerts = Self.alerts(d, "by-pidfile")
        #expect(fileAlerts.filter { $0.contains("process-split-libcrypto") && $0.contains(" resolved:") }.count == 1, "\(fileAlerts)")
        #expect(fileAlerts.filter { $0.contains("service-not-running by-pidfile new:") }.count == 1, "\(fileAlerts)")
        #expect(fileAlerts.contains { $0.contains("by-pidfile degraded:") && $0.contains("(was failed)") }, "\(fileAlerts)")
        // The live watcher may run a cycle between the old process's exit and the new one's start: if it
        // did, by-exe was rightly down for it, alerted once each way.
        if exeAlerts.contains(where: { $0.contains("by-exe degraded:") }) {
            #expect(exeAlerts.filter { $0.contains("service-not-running by-exe new:") }.count == 1, "\(exeAlerts)")
            #expect(exeAlerts.filter { $0.contains("service-not-running by-exe resolved:") }.count == 1, "\(exeAlerts)")
            #expect(exeAlerts.contains { $0.contains("by-exe healthy:") && $0.contains("(was degraded)") }, "\(exeAlerts)")
        } else {
            #expect(exeAlerts.contains { $0.contains("by-exe healthy:") && $0.contains("(was failed)") }, "\(exeAlerts)")
        }
        print("pid reuse alerts:\n" + (fileAlerts + exeAlerts).joined(separator: "\n"))

        // A cycle with nothing changed stays quiet and keeps the picture: the stale file stays stale.
        let linesBefore = d.stderr.split(separator: "\n").count
        #expect(try scanNow(d))
        r = try report(d)
        #expect(r.targets.first { $0.name == "by-pidfile" }?.findings.map(\.code) == [.serviceNotRunning])
        #expect(d.stderr.split(separator: "\n").count == linesBefore, "\(d.stderr.split(separator: "\n").dropFirst(linesBefore).joined(separator: "\n"))")

        // The service rewrites its pid file (the same pid, now truly its own): trusted again.
        try "\(pid)\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
        #expect(try scanNow(d))
        r = try report(d)
        #expect(r.targets.first { $0.name == "by-pidfile" }?.findings.isEmpty == true,
                "\(String(describing: r.targets.first { $0.name == "by-pidfile" }?.findings.map(\.summary)))")
        #expect(waitFor(5) { Self.alerts(d, "by-pidfile").contains { $0.contains("service-not-running") && $0.contains(" resolved:") } }, "\(d.stderr)")
        #expect(try d.health()["ready"] as? Bool == true)
        #expect(d.process.isRunning && kill(d.pid, 0) == 0)
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

    /// scripts/make-big-bundle.sh's 20,000-file tree (the bench's), built once under the fixtures folder.
    static func bigBundle() throws -> String {
        let out = Fixtures.root + "/big-bundle"
        let r = try Sentinel.shell(["flock", out + ".lock", "bash", FixtureScripts.packageRoot + "/scripts/make-big-bundle.sh",
                                    try Fixtures.cxfreeze("debian"), out, "20000"])
        guard r.status == 0 else { throw FixtureError(message: "make-big-bundle.sh failed: \(r.stderr)") }
        return out
    }

    @Test func aBigBundleWithUnreadablePartsAndSymlinkLoopsIsReportedNotHung() throws {
        let big = try Self.bigBundle()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-big-\(UUID().uuidString.prefix(8))").path
        // Hard links: 20,000 files in a second, and the shared fixture's own modes are never changed
        // (every file made unreadable below is a fresh copy, every folder a fresh inode of this tree).
        try #require(try Sentinel.shell(["cp", "-al", big, work]).status == 0)
        defer { _ = try? Sentinel.shell(["chmod", "-R", "u+rwx", work]); try? FileManager.default.removeItem(atPath: work) }
        let lib = work + "/lib"
        let libcrypto = try #require(try FileManager.default.contentsOfDirectory(atPath: lib + "/site/pkg007")
            .first { $0.hasPrefix("libcrypto") }, "no libcrypto copy in pkg007")
        let setup = """
            set -e
            cd "$0"
            chmod 000 lib/site/pkg042                       # a folder (and its ELF copies) out of reach
            chmod 100 lib/python/mod3                       # a folder that can be crossed but not listed
            f=lib/site/pkg007/\(libcrypto); cp --remove-destination "$f" "$f.tmp"; mv -f "$f.tmp" "$f"; chmod 000 "$f"
            ln -s loop-b lib/loop-a; ln -s loop-a lib/loop-b  # a -> b -> a
            ln -s self.so lib/self.so                        # a self loop
            ln -s ../.. lib/site/up                          # a folder link to an ancestor
            ln -s ../../lib lib/python/mod1/again
            """
        try #require(try Sentinel.shell(["sh", "-c", setup, work]).status == 0)

        // The daemon as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: modes bind it like any user.
        let d = try DaemonUnderTest(config: """
            interval: 1h
            bundles:
              - name: big
                root: \(work)
            """, wrapper: Self.privateNamespace() + ["/usr/bin/setpriv", "--inh-caps=-all",
                                                     "--bounding-set=-dac_override,-dac_read_search", "--"])
        defer { d.remove() }
        let started = Date()
        try #require(d.waitForNotify(50) { $0.contains("READY=1") } != nil, "no READY=1 (first cycle) in 50 s; stderr: \(d.stderr)")
        let firstCycle = Date().timeIntervalSince(started)
        let caps = (try? String(contentsOfFile: "/proc/\(d.pid)/status", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("CapEff:") } ?? "?"
        var r = try report(d)
        let t = try #require(r.targets.first { $0.name == "big" })
        print("20k bundle, unreadable parts: first cycle \(String(format: "%.1f", firstCycle)) s (\(cycleMS(d)) ms in the cycle), \(caps), \(t.stats), \(t.warnings.count) warnings")

        // Each unreadable part and each loop is named; nothing silently skipped.
        let expected = ["lib/site/pkg042: cannot read directory: Permission denied",
                        "lib/python/mod3: cannot read directory: Permission denied",
                        "lib/site/pkg007/\(libcrypto): cannot open: Permission denied",
                        "lib/loop-a: symlink loop", "lib/loop-b: symlink loop", "lib/self.so: symlink loop"]
        for w in expected { #expect(t.warnings.contains(w), "missing warning \(w): \(t.warnings)") }
        // A clear finding for the part that could not be read (the loops are not: nothing loads through them).
        let unreadable = try #require(t.findings.first { $0.code == .bundleUnreadable }, "\(t.findings.map(\.summary))")
        let paths = unreadable.evidence["paths"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(Set(paths) == ["lib/site/pkg042", "lib/python/mod3", "lib/site/pkg007/\(libcrypto)"], "\(unreadable.evidence)")
        #expect(!paths.contains { $0.contains("loop") || $0.contains("self") })
        // The readable part's real findings are still there.
        let codes = Set(t.findings.map(\.code))
        #expect(codes.isSuperset(of: [.splitLibcrypto, .mangledOpenSSLName, .duplicateOpenSSLCopy]), "\(codes)")
        #expect((t.stats["bundle_files"] ?? t.stats["files"] ?? 0) > 19_000, "\(t.stats)")
        #expect(waitFor(5) { d.stderr.contains("bundle-unreadable big new:") }, "its alert: \(d.stderr.suffix(3000))")
        // The cycle's last alert, the target's state after its findings' (lines are written one by one).
        #expect(waitFor(5) { d.stderr.contains("target-state big failed:") }, "\(d.stderr.suffix(3000))")
        print(d.stderr.split(separator: "\n").filter { $0.contains("bundle-unreadable") }.joined(separator: "\n"))

        var idle = 0.0
        for _ in 0..<5 {
            let t0 = Date()
            _ = try d.health()
            idle = max(idle, Date().timeIntervalSince(t0))
        }
        // A second cycle: bounded, the API answers while it runs, the same picture, no repeated alert.
        let linesBefore = d.stderr.split(separator: "\n").count
        let before = cycles(d)
        #expect(try d.curl("/v1/scan", method: "POST").code == 202)
        var slowest = 0.0
        for _ in 0..<10 {
            let t0 = Date()
            #expect(try d.health()["status"] as? String == "ok")
            slowest = max(slowest, Date().timeIntervalSince(t0))
            usleep(50_000)
        }
        #expect(slowest < 1, "/v1/health answers while the 20,000 files are walked")
        #expect(waitFor(50) { cycles(d) > before }, "the second cycle did not complete")
        print("20k bundle: second cycle \(cycleMS(d)) ms; health (curl started for each) slowest \(Int(slowest * 1000)) ms during it, \(Int(idle * 1000)) ms idle")
        r = try report(d)
        #expect(Set(try #require(r.targets.first { $0.name == "big" }).findings.map(\.code)) == codes)
        #expect(d.stderr.split(separator: "\n").count == linesBefore, "\(d.stderr.split(separator: "\n").dropFirst(linesBefore).joined(separator: "\n"))")

        // Readable again: the finding resolves (alerted), the copies behind it are now counted.
        _ = try Sentinel.shell(["chmod", "755", work + "/lib/site/pkg042", work + "/lib/python/mod3"])
        _ = try Sentinel.shell(["chmod", "644", work + "/lib/site/pkg007/" + libcrypto])
        #expect(try scanNow(d))
        r = try report(d)
        let fixed = try #require(r.targets.first { $0.name == "big" })
        #expect(!fixed.findings.contains { $0.code == .bundleUnreadable }, "\(fixed.findings.map(\.summary))")
        #expect(!fixed.warnings.contains { $0.contains("Permission denied") }, "\(fixed.warnings)")
        #expect(waitFor(5) { d.stderr.contains("bundle-unreadable big resolved") }, "\(d.stderr.suffix(2000))")
        #expect(try d.health()["ready"] as? Bool == true)
        #expect(d.process.isRunning && kill(d.pid, 0) == 0)
    }

    func cycleMS(_ d: DaemonUnderTest) -> Int { ((try? d.health())?["last_cycle_ms"] as? Int) ?? -1 }
}
