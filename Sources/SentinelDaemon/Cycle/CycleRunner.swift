import Dispatch
import FoundationEssentials
import Glibc
import SentinelCore
import SentinelSystem

/// One cycle: every configured bundle scanned (cached), every configured service inspected live and
/// POSTed, and — when discovery is on — every other process that maps OpenSSL inspected. Blocking
/// work: the scheduler runs it on its own thread, never on the API's event loops.
public final class CycleRunner: Sendable {
    public let catalog: ELFCatalog
    let auditor: BundleAuditor
    let procRoot: String
    let toolVersion: String
    /// What each configured pid file named when first read in its current form (see `stalePidFile`).
    private let pidFiles = Locked<[String: PidFileBinding]>([:])
    /// Why the operator's validation data was last unusable: logged once per change, like the textfile.
    private let validationsProblem = Locked<String?>(nil)
    /// Today's UTC date, YYYY-MM-DD, against which waivers expire (tests move it).
    let today: @Sendable () -> String

    struct PidFileBinding: Sendable, Equatable {
        /// The file's device, inode, size, mtime and ctime: a rewrite (even of the same pid) changes it.
        var stamp: [Int64]
        var pid: Int32
        /// The start time of the process at `pid` then; nil when none ran there.
        var start: UInt64?
    }

    public init(toolVersion: String, procRoot: String = "/proc", today: @escaping @Sendable () -> String = utcDate) {
        catalog = ELFCatalog()
        auditor = BundleAuditor(catalog: catalog)
        self.procRoot = procRoot
        self.toolVersion = toolVersion
        self.today = today
    }

    /// nil when `cancelled()` turned true mid-way: a partial cycle is never published.
    public func run(_ config: DaemonConfig, probe: String?, log: @Sendable (_ priority: Int32, _ message: String) -> Void = { _, _ in },
                    cancelled: @Sendable () -> Bool = { false }) -> Report? {
        // A reader's own caches (path lookups, mapped files by inode) hold for one cycle only: between
        // cycles an inode can be freed and reused by another file. ELF models stay cached in the
        // catalog, which checks size, mtime and ctime.
        let reader = ProcReader(catalog: catalog, procRoot: procRoot)
        var targets: [TargetReport] = []
        let runner = probe.map { PostRunner(probe: $0, timeout: config.postTimeout) }
        let roots = Dictionary(config.bundles.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // Read once per cycle: the report's header and every POST of the cycle show the same state.
        let host = HostFIPSCheck(state: HostFIPSReader.read(), enabled: config.hostFIPSCheck)
        // Read every cycle, so an operator's update counts from the next one without a reload.
        let (validations, problem) = FIPSValidationsFile.load(config.fipsValidations)
        let before = validationsProblem.withLock { p in defer { p = problem }; return p }
        if let problem, problem != before { log(4, "FIPS validation data: \(problem)") }
        if problem == nil, let before { log(5, "FIPS validation data usable again (was: \(before))") }
        let shared = SharedPostFacts(host: host, validations: validations)

        for bundle in config.bundles {
            if cancelled() { return nil }
            targets.append(scanBundle(root: bundle.root, name: bundle.name, environment: TargetEnvironment(bundle.environment),
                                      expectFIPS: bundle.expectFIPS, kind: "bundle"))
        }
        var claimed = Set<Int32>()
        for service in config.services {
            if cancelled() { return nil }
            let (target, pids) = audit(service, bundle: service.bundle.flatMap { roots[$0] }, reader: reader, runner: runner,
                                       shared: shared, cancelled: cancelled)
            claimed.formUnion(pids)
            targets.append(target)
        }
        if config.discover.enabled {
            if cancelled() { return nil }
            targets += discover(config.discover, skipping: claimed, reader: reader, runner: runner, shared: shared)
        }
        if cancelled() { return nil }
        var report = Report(command: "daemon", toolVersion: toolVersion, generatedAt: utcTimestamp(), targets: targets)
        report.host = host.state.json
        if !config.waivers.isEmpty { report.apply(config.waivers, today: today()) }
        return report
    }

    // MARK: bundles

    func scanBundle(root: String, name: String, environment: TargetEnvironment, expectFIPS: Bool, kind: String) -> TargetReport {
        do {
            var t = try auditor.audit(root: root, name: name, environment: environment, expectFIPS: expectFIPS)
            t.kind = kind
            if let f = Self.unreadableParts(t.warnings, root: root, name: name) { t.setFindings(t.findings + [f]) }
            return t
        } catch {
            let f = Finding(code: .bundleUnreadable, target: name, subject: root, summary: "\(root): \(error)",
                            evidence: ["root": .string(root)],
                            fix: ["ls -ld \(root)   # the daemon needs read access (CAP_DAC_READ_SEARCH) to the whole tree"])
            return TargetReport(name: name, kind: kind, root: root, environment: environment.values, findings: [f])
        }
    }

    /// Folders and files of the tree the daemon was denied (a warning line each) hide whatever they
    /// hold: one `bundle-unreadable` finding names them, so the journal says so once, not only the
    /// report's warnings. Symlink loops, corrupt and vanished files stay warnings: nothing loads from them.
    static func unreadableParts(_ warnings: [String], root: String, name: String) -> Finding? {
        let reasons = [EACCES, EPERM].map { String(cString: strerror($0)) }
        let suffixes = reasons.flatMap { [": cannot read directory: \($0)", ": cannot open: \($0)", ": \($0)"] }
        let paths = warnings.compactMap { w in suffixes.first { w.hasSuffix($0) }.map { String(w.dropLast($0.count)) } }
        guard let first = paths.first else { return nil }
        return Finding(code: .bundleUnreadable, target: name, subject: root,
                       summary: "\(root): part of the tree could not be read (permission denied), so its linkage is unknown, not clean",
                       evidence: ["root": .string(root), "count": .int(Int64(paths.count)), "paths": JSONValue(Array(paths.prefix(50)))],
                       fix: ["ls -ld \(root)/\(first)   # the daemon needs read access (CAP_DAC_READ_SEARCH) to the whole tree"])
    }

    // MARK: services

    func pids(of service: DaemonConfig.Service, reader: ProcReader) -> (pids: [Int32], problem: String?, evidence: [String: JSONValue]) {
        switch service.selector {
        case .unit(let unit): return (reader.pids(unit: unit), nil, [:])
        case .exe(let exe): return (reader.pids(executable: exe), nil, [:])
        case .pidFile(let file):
            do {
                let pid = try ProcReader.pid(fromFile: file)
                if let stale = stalePidFile(file, pid: pid) { return ([], stale.problem, stale.evidence) }
                return ([pid], nil, [:])
            } catch { return ([], "\(error)", [:]) }
        }
    }

    /// A pid file left behind by a process that exited names a pid the kernel may hand to any other
    /// process: that one is not the service. Told apart by the start time (/proc/PID/stat field 22):
    /// while the file is unchanged, the process at its pid must be the one seen when it was first read.
    /// (Not by comparing the file's mtime with the start time: a clock stepped forward after boot would
    /// make every pid file look older than its process.) A file already stale when the daemon first
    /// reads it cannot be told from a valid one.
    func stalePidFile(_ file: String, pid: Int32) -> (problem: String, evidence: [String: JSONValue])? {
        var st = stat()
        guard stat(file, &st) == 0 else { return nil }
        let stamp = [Int64(st.st_dev), Int64(bitPattern: UInt64(st.st_ino)), Int64(st.st_size),
                     Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec), Int64(st.st_ctim.tv_sec), Int64(st.st_ctim.tv_nsec)]
        let start = ProcReader.startTime(pid: pid, procRoot: procRoot)
        let was = pidFiles.withLock { seen -> PidFileBinding? in
            if let was = seen[file], was.stamp == stamp, was.pid == pid { return was }
            seen[file] = PidFileBinding(stamp: stamp, pid: pid, start: start)
            return nil
        }
        // Unchanged file, same process (or none: then the service is simply not running).
        guard let was, let start, was.start != start else { return nil }
        var evidence: [String: JSONValue] = ["pid_file": .string(file), "pid": .int(Int64(pid)), "start_ticks_now": .int(Int64(start))]
        if let before = was.start { evidence["start_ticks_named"] = .int(Int64(before)) }
        if case .success(let comm) = ProcReader.readWhole(procRoot + "/\(pid)/comm", limit: 64) {
            evidence["now_running"] = .string(String(decoding: comm.prefix { $0 != 0x0a }, as: UTF8.self))
        }
        // No pid in the summary: it is the finding's identity across cycles.
        return ("stale, its pid now belongs to another process, started after the one the file named", evidence)
    }

    func audit(_ service: DaemonConfig.Service, bundle: DaemonConfig.Bundle?, reader: ProcReader, runner: PostRunner?,
               shared: SharedPostFacts, cancelled: @Sendable () -> Bool) -> (TargetReport, [Int32]) {
        let name = service.name
        let (pids, problem, problemEvidence) = pids(of: service, reader: reader)
        let expectations = ProcessExpectations(expectFIPS: service.expectFIPS, environment: service.expectEnvironment)
        let snapshots = reader.snapshots(pids: pids.sorted(), onlyOpenSSL: false, forPOST: runner != nil).filter { snap in
            // A pid file naming a process that is gone is "not running", not "unreadable".
            !(snap.failures.count > 0 && kill(snap.pid, 0) != 0 && errno == ESRCH)
        }
        var parts: [TargetReport] = []
        var findings: [Finding] = []
        var liveEnvironment: TargetEnvironment?
        if snapshots.isEmpty {
            findings.append(Finding(code: .serviceNotRunning, target: name, subject: Self.describe(service.selector),
                summary: "\(name): no running process (\(Self.describe(service.selector))\(problem.map { ": \($0)" } ?? ""))",
                evidence: .object(problemEvidence.merging(["selector": .string(Self.describe(service.selector))]) { a, _ in a }),
                fix: [Self.startHint(service.selector)]))
        }
        for snap in snapshots {
            parts.append(ProcessAudit.audit(snap, expectations: expectations, name: name))
            if liveEnvironment == nil { liveEnvironment = snap.environment }
        }
        if let bundle, !cancelled() {
            // The bundle as this service runs it: under the live environment when it runs.
            let env = liveEnvironment ?? TargetEnvironment(service.environment.merging(bundle.environment) { a, _ in a })
            parts.append(scanBundle(root: bundle.root, name: name, environment: env,
                                    expectFIPS: service.expectFIPS || bundle.expectFIPS, kind: "bundle"))
        }
        if service.post, let runner, !cancelled() {
            parts += post(service, snapshots: snapshots, runner: runner, shared: shared)
        }
        var target = Self.merge(name: name, kind: "service", root: bundle?.root ?? snapshots.first?.executable,
                                environment: liveEnvironment?.values ?? TargetEnvironment(service.environment).values,
                                findings: findings, parts: parts)
        target.stats["processes"] = snapshots.count
        return (target, snapshots.map(\.pid))
    }

    func post(_ service: DaemonConfig.Service, snapshots: [ProcessSnapshot], runner: PostRunner, shared: SharedPostFacts) -> [TargetReport] {
        // The POST follows the first process that maps a libcrypto (else the first process at all);
        // with the service down, its configured environment as the configured user.
        let snap = snapshots.first { s in s.files.contains { $0.role == .libcrypto } } ?? snapshots.first
        let policy = (require: service.require, forbid: service.forbid)
        if let snap, let run = Self.postFollowing(snap, name: service.name, expectFIPS: service.expectFIPS,
                                                  command: service.postCommand, operations: policy, shared: shared, runner: runner) {
            return run
        }
        let identity = Self.identity(of: service.user ?? "nobody")
        var plan = PostPlan(targetName: service.name, environment: service.environment, cwd: "/",
                            identity: identity, libraries: ["libcrypto.so.3"], expectFIPS: service.expectFIPS,
                            command: service.postCommand)
        shared.apply(to: &plan)
        (plan.require, plan.forbid) = policy
        return PostSession.run(plan, runner: runner)
    }

    /// The POST of a running process, from the cycle's one read of it (the probe refuses the pid if
    /// its start time changed since); nil when its environment or ids could not be read.
    static func postFollowing(_ snap: ProcessSnapshot, name: String, expectFIPS: Bool, command: [String] = [],
                              operations: (require: [String], forbid: [String]) = ([], []),
                              shared: SharedPostFacts, runner: PostRunner) -> [TargetReport]? {
        guard let target = PostTarget(snap) else { return nil }
        var plan = PostPlan.following(target, name: name, expectFIPS: expectFIPS, command: command)
        shared.apply(to: &plan)
        (plan.require, plan.forbid) = operations
        return PostSession.run(plan, runner: runner)
    }

    static func identity(of user: String) -> PostRunner.Identity? {
        if let uid = UInt32(user) { return .init(uid: uid, gid: getpwuid(uid).map { $0.pointee.pw_gid } ?? uid) }
        guard let pw = getpwnam(user) else { return .init(uid: 65534, gid: 65534) }
        return .init(uid: pw.pointee.pw_uid, gid: pw.pointee.pw_gid)
    }

    static func describe(_ s: DaemonConfig.Service.Selector) -> String {
        switch s {
        case .unit(let u): return "unit \(CgroupUnit.normalise(u))"
        case .exe(let e): return "exe \(e)"
        case .pidFile(let p): return "pid file \(p)"
        }
    }

    static func startHint(_ s: DaemonConfig.Service.Selector) -> String {
        if case .unit(let u) = s { return "systemctl status \(CgroupUnit.normalise(u))   # why it is not running; then systemctl start it" }
        return "start the service; the next cycle inspects it (a POST under its configured environment ran meanwhile)"
    }

    // MARK: discovery

    /// Every other process mapping OpenSSL, grouped by systemd unit (else by executable name): one
    /// target per group, so target names stay stable across restarts of a process.
    func discover(_ d: DaemonConfig.Discover, skipping claimed: Set<Int32>, reader: ProcReader, runner: PostRunner?,
                  shared: SharedPostFacts) -> [TargetReport] {
        let me = getpid()
        let pids = reader.allPIDs().filter { $0 != me && !claimed.contains($0) }
        let snapshots = reader.snapshots(pids: pids, onlyOpenSSL: true, forPOST: d.post && runner != nil)
        var groups: [String: [ProcessSnapshot]] = [:]
        for s in snapshots { groups[Self.groupName(s), default: []].append(s) }
        let expectations = ProcessExpectations(expectFIPS: d.expectFIPS)
        return groups.keys.sorted().map { name in
            let snaps = groups[name]!
            var parts = snaps.map { ProcessAudit.audit($0, expectations: expectations, name: name) }
            if d.post, let runner, let snap = snaps.first(where: { s in s.files.contains { $0.role == .libcrypto } }) {
                parts += Self.postFollowing(snap, name: name, expectFIPS: d.expectFIPS, shared: shared, runner: runner) ?? []
            }
            var t = Self.merge(name: name, kind: "process", root: snaps.first?.executable,
                               environment: snaps.first?.environment?.values ?? [:], findings: [], parts: parts)
            t.stats["processes"] = snaps.count
            return t
        }
    }

    /// A URL-path-safe, stable name: the unit, else the executable's file name.
    static func groupName(_ s: ProcessSnapshot) -> String {
        let raw = s.unit ?? s.executable.map { exe in
            let base = exe.hasSuffix(MapsParser.deletedSuffix) ? String(exe.dropLast(MapsParser.deletedSuffix.count)) : exe
            return base.split(separator: "/").last.map(String.init) ?? base
        } ?? s.command ?? "pid-\(s.pid)"
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_@:")
        let cleaned = String(raw.map { allowed.contains($0) ? $0 : "_" })
        return cleaned.isEmpty || cleaned.allSatisfy({ $0 == "." }) ? "pid-\(s.pid)" : cleaned
    }

    // MARK: merging

    /// One target from its parts (processes, bundle, POSTs): one finding per identity (the journal
    /// could not tell two apart), warnings kept, POST details listed per library.
    static func merge(name: String, kind: String, root: String?, environment: [String: String], findings: [Finding],
                      parts: [TargetReport]) -> TargetReport {
        var seen = Set<ChangeTracker.Key>()
        var all: [Finding] = []
        for var f in findings + parts.flatMap(\.findings) {
            f.target = name
            if seen.insert(ChangeTracker.key(f, in: name)).inserted { all.append(f) }
        }
        var warnings: [String] = []
        for w in parts.flatMap(\.warnings) where !warnings.contains(w) { warnings.append(w) }
        let posts = parts.filter { $0.kind == "post" }.compactMap(\.post)
        var stats: [String: Int] = [:]
        let pids = parts.filter { $0.kind == "process" }.compactMap { $0.stats["pid"] }
        if let first = pids.min() { stats["pid"] = first }
        if let bundle = parts.first(where: { $0.kind == "bundle" }) {
            for (k, v) in bundle.stats { stats["bundle_\(k)"] = v }
        }
        return TargetReport(name: name, kind: kind, root: root, environment: environment, stats: stats, findings: all,
                            warnings: warnings, post: posts.isEmpty ? nil : .array(posts))
    }
}

/// What every POST of one cycle shares, read once per cycle: the host's FIPS state and the validation data.
struct SharedPostFacts {
    var host: HostFIPSCheck
    var validations: FIPSValidations

    func apply(to plan: inout PostPlan) {
        plan.host = host
        plan.validations = validations
    }
}
