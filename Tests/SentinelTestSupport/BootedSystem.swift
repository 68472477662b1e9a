import Foundation
import Glibc

/// A Debian root booted under a real systemd with systemd-nspawn, driven from the host with nsenter: the
/// build machine's own PID 1 is not systemd, so this is where the unit files meet one. The root booted is
/// a copy of the cached one, removed after power-off; `--register=no` because the host has no machined,
/// `--private-network` so the container's systemd may configure loopback for `PrivateNetwork=` units.
public final class BootedSystem: @unchecked Sendable {
    /// The copy this container runs on (host path).
    public let root: String
    private let nspawn = Process()
    private let consoleLog: String
    /// The container's PID 1 (systemd), as a host pid: nsenter's target.
    public private(set) var leader: Int32 = 0

    /// Copies `base` (the cache stays clean), lets `prepare` write into the copy, then boots it and waits
    /// until `systemctl is-system-running` says the boot is finished.
    public init(base: String, prepare: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-systemd-\(UUID().uuidString.prefix(8))").path
        root = dir + "/root"
        consoleLog = dir + "/console.log"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let copy = try Subprocess.run(["cp", "-a", "--reflink=auto", base, root])
        guard copy.status == 0 else { throw FixtureScriptError(message: "cp \(base): \(copy.stderr)") }
        do {
            try prepare(root)
            try boot()
        } catch {
            powerOff()
            throw error
        }
    }

    private func boot() throws {
        _ = FileManager.default.createFile(atPath: consoleLog, contents: nil)
        nspawn.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-nspawn")
        nspawn.arguments = ["-D", root, "-b", "--register=no", "--keep-unit", "--private-network", "--console=pipe"]
        nspawn.standardInput = FileHandle.nullDevice
        nspawn.standardOutput = FileHandle(forWritingAtPath: consoleLog)
        nspawn.standardError = nspawn.standardOutput
        try nspawn.run()
        // nspawn's child is the container's PID 1 once it has exec'd systemd.
        let deadline = Date().addingTimeInterval(30)
        while leader == 0 && Date() < deadline && nspawn.isRunning {
            let children = (try? String(contentsOfFile: "/proc/\(nspawn.processIdentifier)/task/\(nspawn.processIdentifier)/children", encoding: .utf8)) ?? ""
            for pid in children.split(separator: " ").compactMap({ Int32($0) })
            where (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) == "systemd\n" {
                leader = pid
            }
            if leader == 0 { usleep(50_000) }
        }
        guard leader != 0 else { throw FixtureScriptError(message: "systemd-nspawn started no systemd:\n\(console)") }
        // --wait returns when start-up is over: "running", or "degraded" with the failed units named below.
        // Before that PID 1 has no bus to connect to, and before /run/systemd/system exists it is "offline".
        var state = try run(["timeout", "120", "systemctl", "is-system-running", "--wait"])
        while state.text.isEmpty || state.text.hasPrefix("offline"), Date() < deadline.addingTimeInterval(90) {
            usleep(100_000)
            state = try run(["timeout", "120", "systemctl", "is-system-running", "--wait"])
        }
        guard state.text.hasPrefix("running") else {
            let failed = (try? run(["systemctl", "--failed", "--no-pager"]).text) ?? ""
            throw FixtureScriptError(message: "the container's boot ended \(state.status) \(state.text) \(state.stderr): \(failed)\n\(console)")
        }
    }

    /// What nspawn and the container's console printed (for failure messages).
    public var console: String { (try? String(contentsOfFile: consoleLog, encoding: .utf8)) ?? "" }

    /// Runs `argv` inside the container (all its namespaces, its root), as root or as `user` (a uid,
    /// with `groups` as the only supplementary groups) through the container's own setpriv.
    public func run(_ argv: [String], user: UInt32? = nil, groups: [UInt32] = []) throws -> ProcessOutput {
        var inner = argv
        if let user {
            let groupArgs = groups.isEmpty ? ["--clear-groups"] : ["--groups", groups.map(String.init).joined(separator: ",")]
            inner = ["setpriv", "--reuid", "\(user)", "--regid", "\(user)"] + groupArgs + ["--"] + argv
        }
        return try Subprocess.run(["nsenter", "-t", String(leader), "-a", "--"] + inner)
    }

    /// `sh -c script` inside the container, as root.
    public func shell(_ script: String) throws -> ProcessOutput { try run(["/bin/sh", "-c", script]) }

    /// `systemctl poweroff`, then waits for nspawn (30 s) and kills the container's PID 1 (and with it its
    /// pid namespace) if it is still there; removes the copy. Safe to call more than once.
    public func powerOff() {
        if nspawn.isRunning {
            if leader != 0 { _ = try? run(["systemctl", "poweroff"]) }
            let deadline = Date().addingTimeInterval(30)
            while nspawn.isRunning && Date() < deadline { usleep(50_000) }
            if nspawn.isRunning {
                if leader != 0 { kill(leader, SIGKILL) }
                kill(nspawn.processIdentifier, SIGKILL)
                nspawn.waitUntilExit()
            }
        }
        try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: root).deletingLastPathComponent().path)
    }
}
