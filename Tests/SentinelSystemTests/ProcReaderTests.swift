import Foundation
import Glibc
import SentinelCore
import SentinelSystem
import Testing

/// ProcReader on real processes: the races /proc allows.
@Suite struct ProcReaderTests {
    func sleeper() throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sleep")
        p.arguments = ["100"]
        p.environment = ["OPENSSL_MODULES": "/opt/m", "DATABASE_PASSWORD": "s3cret"]
        try p.run()
        // Wait for the exec and for ld.so to map libc: until then /proc shows a half-started process.
        for _ in 0..<1000 {
            let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p.processIdentifier)/exe")
            let maps = (try? String(contentsOfFile: "/proc/\(p.processIdentifier)/maps", encoding: .utf8)) ?? ""
            if exe == "/usr/bin/sleep" && maps.contains("/libc.so.6") { break }
            usleep(10_000)
        }
        return p
    }

    @Test func processExitingBetweenReadsIsReportedNotACrash() throws {
        let p = try sleeper()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) }; p.waitUntilExit() }
        let pid = p.processIdentifier
        let snap = ProcReader().snapshot(pid: pid) { step in
            if step == "maps" { kill(pid, SIGKILL); p.waitUntilExit() }  // gone (and reaped) right after maps
        }
        #expect(snap.files.contains { $0.path == "/usr/bin/sleep" })  // what was read before the exit is kept
        #expect(snap.failures.contains(ReadFailure(file: "status", reason: .exited)))
        #expect(snap.failures.contains(ReadFailure(file: "environ", reason: .exited)))
        #expect(snap.environment == nil)
        let report = ProcessAudit.audit(snap)
        #expect(report.findings.map(\.code) == [.processUnreadable])
        #expect(report.findings.first?.summary.hasSuffix("could not be read: process exited") == true)
    }

    @Test func fullSnapshotKeepsOnlyTheOpenSSLVariables() throws {
        let p = try sleeper()
        defer { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        let snap = ProcReader().snapshot(pid: p.processIdentifier)
        #expect(snap.failures.isEmpty)
        #expect(snap.environment?.values == ["OPENSSL_MODULES": "/opt/m"])
        #expect(snap.command == "sleep" && snap.executable == "/usr/bin/sleep")
        #expect(snap.credentials?.uid == getuid() && snap.credentials?.gid == getgid())
        #expect(snap.cwd == FileManager.default.currentDirectoryPath)
        let libc = try #require(snap.files.first { $0.path.hasSuffix("/libc.so.6") })
        #expect(libc.disk == .current && libc.identification == .content && libc.object?.soname == "libc.so.6")
        // sleep maps no OpenSSL: --all leaves it out.
        #expect(ProcReader().snapshots(pids: [p.processIdentifier], onlyOpenSSL: true).isEmpty)
    }

    @Test func startTimeIsField22AfterTheLastParenthesis() throws {
        // The command may hold spaces and ')': fields are counted after the last one.
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 2228224 128 18446744073709551615 0\n"
        #expect(Array(line.utf8).withUnsafeBytes { ProcReader.startTime(stat: $0) } == 987654)
        for bad in ["", "4242 (x", "4242 (x) S 1 2", "4242 (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98x7 1",
                    "4242 (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 99999999999999999999 1"] {
            #expect(Array(bad.utf8).withUnsafeBytes { ProcReader.startTime(stat: $0) } == nil, "\(bad)")
        }
        // A real process: the snapshot carries the same start time as a direct read, and its own.
        let p = try sleeper()
        defer { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        let start = try #require(ProcReader.startTime(pid: p.processIdentifier))
        #expect(ProcReader().snapshot(pid: p.processIdentifier).startTime == start)
        #expect(ProcReader.startTime(pid: getpid()).map { $0 <= start } == true, "started before its child")
        kill(p.processIdentifier, SIGKILL); p.waitUntilExit()
        #expect(ProcReader.startTime(pid: p.processIdentifier) == nil)
    }

    @Test func pidFiles() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-\(UUID().uuidString).pid").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try " 1234\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try ProcReader.pid(fromFile: path) == 1234)
        try "abc".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ProcReader.PidFileError.self) { try ProcReader.pid(fromFile: path) }
    }
}
