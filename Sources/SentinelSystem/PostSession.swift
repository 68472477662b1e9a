import Dispatch
import FoundationEssentials
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
    /// The host's FIPS state, in every POST report, and whether a host not in FIPS mode is a finding
    /// with `expectFIPS`. Read from / (and checked) when nil.
    public var host: HostFIPSCheck?
    /// The product's operations (PostOperations names) that must work, and those that must fail.
    public var require: [String] = []
    public var forbid: [String] = []
    /// The CMVP data the fips provider is judged against; the embedded copy when nil.
    public var validations: FIPSValidations?

    public init(targetName: String, environment: [String: String], cwd: String? = nil, identity: PostRunner.Identity? = nil,
                libraries: [String], expectFIPS: Bool, command: [String] = [], process: PostTarget? = nil,
                changedOnDisk: Set<String> = []) {
        self.targetName = targetName; self.environment = environment; self.cwd = cwd; self.identity = identity
        self.libraries = libraries; self.expectFIPS = expectFIPS; self.command = command; self.process = process
        self.changedOnDisk = changedOnDisk
    }

    /// A plan that follows a running process: its environment, cwd, uid/gid and every libcrypto it
    /// maps (identified by content; the basename rule only when that says nothing).
    public static func following(_ target: PostTarget, name: String, expectFIPS: Bool,
                                 command: [String] = []) -> PostPlan {
        var libraries: [String] = []
        var changed = Set<String>()
        for file in target.files where file.role == .libcrypto {
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
    /// Who the POST child is, in the words the README uses.
    static func describeRunAs(_ plan: PostPlan) -> String {
        let ids = plan.identity.map { "uid \($0.uid), gid \($0.gid) (supplementary groups reset)" }
            ?? "uid \(getuid()), gid \(getgid()) (this process)"
        guard let p = plan.process else { return ids }
        return ids + "; pid \(p.pid)'s mount namespace, root, cwd and capability bounds; no_new_privs"
    }

    /// Runs the plan: one report target per library ("NAME LIBRARY") and one for the command.
    public static func run(_ plan: PostPlan, runner: PostRunner) -> [TargetReport] {
        let kept = TargetEnvironment(plan.environment).values
        let policy = PostPolicy(expectFIPS: plan.expectFIPS, require: plan.require, forbid: plan.forbid,
                                validations: plan.validations ?? .embedded, today: utcDate())
        let runAs = Self.describeRunAs(plan)
        let follow = plan.process.map { PostRunner.Process(pid: $0.pid, startTime: $0.startTime) }
        var targets: [TargetReport] = []
        var jobs: [(lib: String, range: String?, deleted: Finding?)] = []
        var seen = Set<String>()
        for lib in plan.libraries where seen.insert(lib).inserted {
            // A libcrypto deleted or replaced under the running service: POST what it really maps.
            guard let t = plan.process, plan.changedOnDisk.contains(lib) else { jobs.append((lib, nil, nil)); continue }
            let range = t.ranges[lib]
            let shown = lib.hasSuffix(MapsParser.deletedSuffix) ? String(lib.dropLast(MapsParser.deletedSuffix.count)) : lib
            let deleted = Finding(code: .processDeletedLibrary, target: plan.targetName, subject: shown,
                summary: "\(shown) was deleted or replaced on disk; the service runs the old code until it is restarted"
                    + (range == nil ? " (its mapping was not found: the POST below loads the path)" : "; the POST ran on the mapped content"),
                evidence: ["path": .string(lib), "mapped_range": JSONValue(range)],
                fix: ["systemctl restart <the service>   # then rerun: crypto-sentinel post --pid <new pid>"])
            jobs.append((lib, range, deleted))
        }
        // One child per libcrypto, side by side when there are several (the split bundle's two POSTs
        // take the time of one on a multi-core machine). Each child is still its own fresh process.
        let runs = Locked([PostRun?](repeating: nil, count: jobs.count))
        let done = DispatchSemaphore(value: 0)
        let work = jobs.map { (lib: $0.lib, range: $0.range) }
        @Sendable func probe(_ i: Int) {
            let run = runner.runProbe(library: work[i].lib, environment: plan.environment, cwd: plan.cwd, identity: plan.identity,
                                      process: follow, mappedRange: work[i].range, operations: policy.operations)
            runs.withLock { $0[i] = run }
        }
        for i in jobs.indices.dropFirst() { detached { probe(i); done.signal() } }
        if !jobs.isEmpty { probe(0) }
        for _ in jobs.indices.dropFirst() { done.wait() }
        let check = plan.host ?? HostFIPSCheck(state: HostFIPSReader.read(), enabled: true)
        let host = check.state
        // Once per POST, on its first report: the host is the same for every libcrypto.
        var hostFinding = check.enabled ? host.finding(target: plan.targetName, expectFIPS: plan.expectFIPS) : nil
        for (i, job) in jobs.enumerated() {
            guard let run = runs.withLock({ $0[i] }) else { continue }
            var result = PostAnalysis.analyze(run, target: plan.targetName, policy: policy)
            if let deleted = job.deleted { result.findings.append(deleted) }
            if let f = hostFinding { result.findings.append(f); hostFinding = nil }
            let post: JSONValue = ["library": result.library, "checks": .array(result.checks.map(\.json)),
                                   "run_as": .string(runAs), "not_reproduced": JSONValue(plan.process?.notReproduced ?? []),
                                   "elapsed_ms": .int(Int64(run.elapsedMs)), "expect_fips": .bool(plan.expectFIPS),
                                   "host": host.json]
            targets.append(TargetReport(name: "\(plan.targetName) \(job.lib)", kind: "post", root: plan.cwd, environment: kept,
                                        stats: ["elapsed_ms": run.elapsedMs], findings: result.findings, post: post))
        }
        if !plan.command.isEmpty {
            let (outcome, tail, ms) = runner.runCommand(plan.command, environment: plan.environment, cwd: plan.cwd, identity: plan.identity, process: follow)
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
