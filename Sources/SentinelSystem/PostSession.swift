import Foundation
import Glibc
import SentinelCore

/// One POST of a target: every libcrypto it maps or resolves, each in a fresh probe child, plus the
/// product's own POST command. Shared by `crypto-sentinel post` and the daemon's cycle.
public struct PostPlan: Sendable {
    public var targetName: String
    public var environment: [String: String]
    public var cwd: String?
    public var identity: PostRunner.Identity?
    /// Paths (as /proc/<pid>/maps names them) or sonames.
    public var libraries: [String]
    public var expectFIPS: Bool
    public var command: [String]
    /// The running process, when the POST follows one: a deleted or replaced mapping is tested from
    /// its mapped content, read through /proc/<pid>/map_files.
    public var process: PostTarget?
    public var changedOnDisk: Set<String>

    public init(targetName: String, environment: [String: String], cwd: String? = nil, identity: PostRunner.Identity? = nil,
                libraries: [String], expectFIPS: Bool, command: [String] = [], process: PostTarget? = nil,
                changedOnDisk: Set<String> = []) {
        self.targetName = targetName; self.environment = environment; self.cwd = cwd; self.identity = identity
        self.libraries = libraries; self.expectFIPS = expectFIPS; self.command = command; self.process = process
        self.changedOnDisk = changedOnDisk
    }

    /// A plan that follows a running process: its environment, cwd, uid/gid and every libcrypto it
    /// maps (identified by content through the snapshot; the basename rule only when that says nothing).
    public static func following(_ target: PostTarget, snapshot: ProcessSnapshot?, name: String, expectFIPS: Bool,
                                 command: [String] = []) -> PostPlan {
        var libraries: [String] = []
        var changed = Set<String>()
        for file in snapshot?.files ?? [] where file.role == .libcrypto {
            libraries.append(file.mapsPathname)
            switch file.disk {
            case .deleted, .replaced: changed.insert(file.mapsPathname)
            default: break
            }
        }
        if libraries.isEmpty {
            libraries = target.mappedLibcrypto
            for lib in libraries where lib.hasSuffix(MapsParser.deletedSuffix) && access(lib, F_OK) != 0 { changed.insert(lib) }
        }
        return PostPlan(targetName: name, environment: target.environ, cwd: target.cwd,
                        identity: .init(uid: target.uid, gid: target.gid), libraries: libraries, expectFIPS: expectFIPS,
                        command: command, process: target, changedOnDisk: changed)
    }
}

public enum PostSession {
    /// Runs the plan: one report target per library ("NAME LIBRARY") and one for the command.
    public static func run(_ plan: PostPlan, runner: PostRunner) -> [TargetReport] {
        let kept = TargetEnvironment(plan.environment).values
        let runAs = plan.identity.map { "uid \($0.uid), gid \($0.gid) (supplementary groups reset)" }
            ?? "uid \(getuid()), gid \(getgid()) (this process)"
        var targets: [TargetReport] = []
        var scratch: String?
        defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
        var jobs: [(lib: String, probeLib: String, deleted: Finding?)] = []
        var seen = Set<String>()
        for lib in plan.libraries where seen.insert(lib).inserted {
            // A libcrypto deleted or replaced under the running service: POST what it really maps.
            var probeLib = lib
            var deleted: Finding?
            if let t = plan.process, plan.changedOnDisk.contains(lib) {
                if scratch == nil {
                    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-post-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
                    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                    chmod(dir, 0o755)  // despite UMask=0077 in the unit: the service user must reach the copy
                    scratch = dir
                }
                let copy = t.copyOfMapping(lib, into: scratch!)
                if let copy { probeLib = copy }
                let shown = lib.hasSuffix(MapsParser.deletedSuffix) ? String(lib.dropLast(MapsParser.deletedSuffix.count)) : lib
                deleted = Finding(code: .processDeletedLibrary, target: plan.targetName,
                    summary: "\(shown) was deleted or replaced on disk; the service runs the old code until it is restarted"
                        + (copy == nil ? " (its mapped content cannot be read: the POST below loads nothing)" : "; the POST ran on the mapped content"),
                    evidence: ["path": .string(lib), "tested_copy": JSONValue(copy)],
                    fix: ["systemctl restart <the service>   # then rerun: crypto-sentinel post --pid <new pid>"])
            }
            jobs.append((lib, probeLib, deleted))
        }
        // One child per libcrypto, side by side when there are several (the split bundle's two POSTs
        // take the time of one on a multi-core machine). Each child is still its own fresh process.
        let runs = Locked([PostRun?](repeating: nil, count: jobs.count))
        let threads = jobs.indices.dropFirst().map { i in
            Thread { [probeLib = jobs[i].probeLib] in
                let run = runner.runProbe(library: probeLib, environment: plan.environment, cwd: plan.cwd, identity: plan.identity)
                runs.withLock { $0[i] = run }
            }
        }
        threads.forEach { $0.start() }
        if let first = jobs.first {
            let run = runner.runProbe(library: first.probeLib, environment: plan.environment, cwd: plan.cwd, identity: plan.identity)
            runs.withLock { $0[0] = run }
        }
        while !threads.allSatisfy(\.isFinished) { usleep(500) }
        for (i, job) in jobs.enumerated() {
            guard let run = runs.withLock({ $0[i] }) else { continue }
            var result = PostAnalysis.analyze(run, target: plan.targetName, expectFIPS: plan.expectFIPS)
            if let deleted = job.deleted { result.findings.append(deleted) }
            let post: JSONValue = ["library": result.library, "checks": .array(result.checks.map(\.json)),
                                   "run_as": .string(runAs), "elapsed_ms": .int(Int64(run.elapsedMs)),
                                   "expect_fips": .bool(plan.expectFIPS)]
            targets.append(TargetReport(name: "\(plan.targetName) \(job.lib)", kind: "post", root: plan.cwd, environment: kept,
                                        stats: ["elapsed_ms": run.elapsedMs], findings: result.findings, post: post))
        }
        if !plan.command.isEmpty {
            let (outcome, tail, ms) = runner.runCommand(plan.command, environment: plan.environment, cwd: plan.cwd, identity: plan.identity)
            let finding = PostAnalysis.commandFinding(argv: plan.command, outcome: outcome, outputTail: tail, target: plan.targetName)
            let check: JSONValue = ["name": "post command", "status": .string(finding == nil ? "pass" : "fail"),
                                    "summary": .string(plan.command.joined(separator: " ") + (finding == nil ? " exited 0" : " failed")),
                                    "errors": finding == nil ? [] : JSONValue(tail.split(separator: "\n").suffix(5).map(String.init))]
            targets.append(TargetReport(name: "\(plan.targetName) command", kind: "post", root: plan.cwd, environment: kept,
                                        stats: ["elapsed_ms": ms], findings: finding.map { [$0] } ?? [],
                                        post: ["checks": [check], "run_as": .string(runAs)]))
        }
        return targets
    }
}
