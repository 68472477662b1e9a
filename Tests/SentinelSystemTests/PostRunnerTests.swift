import Foundation
import Testing
import SentinelCore
@testable import SentinelSystem

/// The spawn/timeout/cap machinery of PostRunner, with shell scripts standing in for the probe.
@Suite("post runner", .serialized)
struct PostRunnerTests {
    /// A stand-in probe: a script that ignores its arguments (left in the temp folder: tiny).
    static func script(_ body: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(UUID().uuidString).sh").path
        try "#!/bin/sh\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    @Test func validDocumentIsParsed() throws {
        let probe = try Self.script(#"echo "sentinel-probe: stage done" >&2; printf '{"probe":1,"load":{"ok":false,"error":"x"}}\n'"#)
        let run = PostRunner(probe: probe, timeout: 5).runProbe(library: "libcrypto.so.3", environment: [:], cwd: nil, identity: nil)
        guard case .exited(0, let doc?) = run.outcome else { Issue.record("\(run.outcome)"); return }
        #expect(doc["load"]?["error"] == "x")
        #expect(run.stderrTail == "sentinel-probe: stage done")
    }

    static func pgrep(_ pattern: String) throws -> String {
        let ps = Process()
        ps.executableURL = URL(fileURLWithPath: "/usr/bin/pgrep")
        ps.arguments = ["-f", pattern]
        let out = Pipe(); ps.standardOutput = out
        try ps.run(); ps.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    @Test func timeoutKillsTheWholeProcessGroup() throws {
        // A grandchild in the same session (a unique sleep argument marks it) that would outlive a
        // plain kill of the child.
        let marker = "sleep 3\(Int.random(in: 10000...99999)).5"
        let probe = try Self.script("\(marker) & \(marker) & wait")
        let start = Date()
        // Looks until the runner returns (not for a fixed time: one pgrep takes most of a second from an
        // instrumented test process); what it sees is alive before the kill, which comes at the return.
        let seen = Locked(false), returned = Locked(false)
        let t = Thread {
            while !returned.withLock({ $0 }) {
                if (try? Self.pgrep(marker))?.isEmpty == false { seen.withLock { $0 = true }; return }
                usleep(20_000)
            }
        }
        t.start()
        let run = PostRunner(probe: probe, timeout: 2).runProbe(library: "l", environment: [:], cwd: nil, identity: nil)
        returned.withLock { $0 = true }
        while !t.isFinished { usleep(1000) }
        #expect(seen.withLock { $0 }, "the grandchildren were running before the timeout")
        #expect(run.outcome == .timedOut(seconds: 2))
        #expect(Date().timeIntervalSince(start) < 5)
        usleep(100_000)
        #expect(try Self.pgrep(marker).isEmpty, "a grandchild survived the timeout")
    }

    @Test func outputOverTheCapIsNoResult() throws {
        let probe = try Self.script("head -c 3000000 /dev/zero | tr '\\0' 'x'; sleep 300")
        let run = PostRunner(probe: probe, timeout: 10, outputCap: 1 << 20).runProbe(library: "l", environment: [:], cwd: nil, identity: nil)
        guard case .exited(_, let doc) = run.outcome else { Issue.record("\(run.outcome)"); return }
        #expect(doc == nil)
        #expect(run.elapsedMs < 5000)
    }

    @Test func signalDeathAndExactEnvironment() throws {
        let crash = try Self.script("kill -SEGV $$")
        let run = PostRunner(probe: crash, timeout: 5).runProbe(library: "l", environment: [:], cwd: nil, identity: nil)
        #expect(run.outcome == .signaled(11))
        // The child sees exactly the given environment, minus NOTIFY_SOCKET and WATCHDOG_*.
        // The probe gets the service's environment on stdin (NUL-separated), its own is empty.
        let env = try Self.script("tr '\\0' '\\n' | sort | sed 's/^/sentinel-probe: /' >&2; env | grep -v -E '^(PWD|SHLVL|_)=' | sed 's/^/own:/' >&2")
        let r = PostRunner(probe: env, timeout: 5).runProbe(
            library: "l", environment: ["A": "1", "NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"], cwd: nil, identity: nil)
        #expect(r.stderrTail == "sentinel-probe: A=1")
    }

    /// What the child prints that is not the probe's own line (an LD_PRELOAD, ld.so echoing a
    /// variable) never reaches the report: it may carry the service's secrets.
    @Test func onlyTheProbesOwnLinesAreKept() throws {
        let probe = try Self.script(#"echo "SECRET=hunter2" >&2; echo "sentinel-probe: stage dlopen" >&2; echo "ld.so: LD_AUDIT=x" >&2; echo "SECRET=hunter2"; kill -SEGV $$"#)
        let run = PostRunner(probe: probe, timeout: 5).runProbe(library: "l", environment: [:], cwd: nil, identity: nil)
        #expect(run.stderrTail == "sentinel-probe: stage dlopen")
        let result = PostAnalysis.analyze(run, target: "t", policy: PostPolicy(expectFIPS: false))
        #expect(!"\(result.findings)".contains("hunter2") && !"\(result.findings)".contains("LD_AUDIT"))
    }

    @Test func commandOutputTail() throws {
        // --command goes through the probe in --exec mode; the real probe is exercised end to end in
        // CLITests, here the stand-in just prints and fails.
        let probe = try Self.script("for i in $(seq 1 40); do echo line$i; done; exit 4")
        let (outcome, tail, _) = PostRunner(probe: probe, timeout: 5).runCommand(["/x"], environment: [:], cwd: nil, identity: nil)
        #expect(outcome == .exited(status: 4, result: nil))
        #expect(tail.hasSuffix("line40"))
        #expect(!tail.contains("line1\n"))
    }
}
