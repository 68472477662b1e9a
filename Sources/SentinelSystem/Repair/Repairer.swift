import FoundationEssentials
import Glibc
import SentinelCore

/// `repair`: plan from the scan's model, write a copy with the planned edits, verify it, and only
/// then hand it over (`--out`) or swap it in (`--in-place`). Nothing is changed when any step fails.
public struct Repairer {
    public enum Mode: Sendable, Equatable { case dryRun, out(String), inPlace }

    public struct Request: Sendable {
        public var root: String
        public var mode: Mode
        public var environment: TargetEnvironment
        public var verifyCommand: [String]?
        public var verifyUser: String
        public var timeout: Double
        public init(root: String, mode: Mode, environment: TargetEnvironment, verifyCommand: [String]?, verifyUser: String = "nobody",
                    timeout: Double = 60) {
            self.root = root; self.mode = mode; self.environment = environment; self.verifyCommand = verifyCommand
            self.verifyUser = verifyUser; self.timeout = timeout
        }
    }

    public enum Status: String, Sendable {
        case repaired, nothingToDo = "nothing-to-do", planned, planFailed = "plan-failed",
             verificationFailed = "verification-failed", rolledBack = "rolled-back"
    }

    public struct Outcome {
        public var plan: RepairPlan
        public var verifications: [RepairVerification] = []
        public var status: Status
        /// The repaired tree (`--out` DIR, or ROOT after the swap), or the staged copy kept after a failure.
        public var path: String?
        /// Where the original tree is kept (`--in-place`).
        public var keptAs: String?
        public var warnings: [String] = []
        public var exitCode: Int32 { [.repaired, .nothingToDo, .planned, .rolledBack].contains(status) ? 0 : 1 }
    }

    public struct Failure: Error, CustomStringConvertible { public var description: String }

    let auditor = BundleAuditor(catalog: ELFCatalog())
    let runner: PostRunner?

    public init(runner: PostRunner?) { self.runner = runner }

    public func run(_ request: Request) throws(Failure) -> Outcome {
        let root = request.root
        let original: BundleAuditor.Analysis
        do { original = try auditor.analyse(root: root, environment: request.environment) } catch { throw Failure(description: "\(error)") }
        let inPlace = request.mode == .inPlace
        var plan = RepairPlanner(audit: original.audit, linkage: original.linkage,
                                 facts: DiskRepairFacts(root: root, runner: inPlace ? runner : nil), inPlace: inPlace).plan()
        var outcome = Outcome(plan: plan, status: .planned)
        let final: String = { if case .out(let dir) = request.mode { return dir }; return root }()

        // The plan's model first: `--dry-run` stops with its verdict, and nothing is written for a plan that would fail.
        // Under the environment the original was judged in (the launcher's variables included).
        var environment = original.audit.environment
        let planned = Planned(plan, original.audit)
        var predicted = predict(plan, planned, original, environment)
        let search = Set(environment.libraryPath)
        let dirs = Array(Set(plan.canonical.map { join(root, dirOfRelative($0.path)) })).sorted().filter { !search.contains($0) }
        if !predicted.passed, !dirs.isEmpty, plan.refused.isEmpty {
            // A consumer that reaches the canonical copy only through the search path: the unit must set it.
            var values = environment.values
            values["LD_LIBRARY_PATH"] = (dirs + [values["LD_LIBRARY_PATH"]].compactMap { $0 }).joined(separator: ":")
            let widened = TargetEnvironment(values, secureExecution: environment.secureExecution)
            let retry = predict(plan, planned, original, widened)
            if retry.passed {
                environment = widened
                predicted = retry
                plan.environmentLine = "LD_LIBRARY_PATH=" + (dirs.map { rebase($0, from: root, to: final) }
                    + [request.environment["LD_LIBRARY_PATH"]].compactMap { $0 }).joined(separator: ":")
            }
        }
        outcome.plan = plan
        outcome.verifications.append(predicted)
        if plan.changesNothing, plan.refused.isEmpty {
            outcome.status = predicted.passed ? .nothingToDo : .planFailed
            return outcome
        }
        guard plan.refused.isEmpty, predicted.passed else { outcome.status = .planFailed; return outcome }
        if request.mode == .dryRun { return outcome }

        // Stage: `--out` writes DIR itself; `--in-place` a sibling of ROOT, so the swap is one rename.
        let now = Int64(time(nil))
        let staged: String
        switch request.mode {
        case .out(let dir): staged = dir
        default: staged = TreeSwap.stagingPath(root: root, date: now)
        }
        var copyPlan = TreeCopier.Plan(renames: Dictionary(plan.renames.map { ($0.from, $0.to) }, uniquingKeysWith: { a, _ in a }),
                                       omit: Set(plan.removals.map(\.path)),
                                       symlinkTargets: Dictionary(plan.relinks.map { ($0.path, $0.target) }, uniquingKeysWith: { a, _ in a }))
        for edit in plan.edits {
            copyPlan.patches[edit.file, default: []].append(.init(offset: edit.patch.fileOffset, bytes: edit.patch.bytes,
                                                                  expected: edit.patch.expected))
        }
        do {
            outcome.warnings += try TreeCopier().copy(from: root, to: staged, plan: copyPlan)
        } catch {
            throw Failure(description: "writing the copy at \(staged): \(error)")
        }

        // The copy itself, rescanned: its own search from every consumer must land on the one copy.
        // Every path of the target's variables that names something under ROOT names the copy's instead.
        let stagedValues = environment.values.mapValues { value in
            value.split(separator: ":", omittingEmptySubsequences: false).map { part in
                part.split(separator: " ", omittingEmptySubsequences: false).map { rebase(String($0), from: root, to: staged) }
                    .joined(separator: " ")
            }.joined(separator: ":")
        }
        let stagedEnvironment = TargetEnvironment(stagedValues, secureExecution: environment.secureExecution)
        var check: RepairVerification
        do {
            let after = try BundleAuditor(catalog: ELFCatalog()).analyse(root: staged, environment: stagedEnvironment)
            check = RepairJudge.verify(stage: "staged", tree: staged, audit: after.audit, linkage: after.linkage, report: after.report,
                                       before: original.report, renames: plan.renames)
        } catch {
            check = RepairVerification(stage: "staged", tree: staged, environment: stagedValues, resolved: [:], problems: ["cannot rescan: \(error)"])
        }
        if let argv = request.verifyCommand, check.problems.isEmpty {
            check.command = runVerifyCommand(argv, request: request, staged: staged, environment: stagedValues)
        }
        outcome.verifications.append(check)
        guard check.passed else {
            outcome.status = .verificationFailed
            outcome.path = staged
            return outcome
        }
        if request.mode == .inPlace {
            let keep = TreeSwap.keepName(root: root, date: now)
            do { try TreeSwap.swapIn(staged: staged, root: root, keepAs: keep) } catch {
                throw Failure(description: "\(error)")
            }
            outcome.keptAs = keep
        }
        outcome.status = .repaired
        outcome.path = final
        return outcome
    }

    /// The tree the plan leaves, as the model sees it: only the files whose loads can reach OpenSSL, and
    /// the programs that load them. A repair changes nothing else, so the rest of the tree can add no
    /// finding, and resolving it would be most of the cost.
    struct Planned {
        var changes: PlannedTree.Changes
        var inventory: BundleInventory

        init(_ plan: RepairPlan, _ original: BundleAudit) {
            var relevant = original.inventory
            let reaching = PlannedTree.opensslDependents(relevant)
            relevant.elfFiles.removeAll { !reaching.contains($0.file.identity) && !$0.file.object.isMainProgram }
            changes = PlannedTree.Changes(plan: plan, inventory: relevant)
            inventory = changes.inventory(relevant)
        }
    }

    /// The verdict on the tree the plan leaves, from the model alone (same audit, same environment).
    func predict(_ plan: RepairPlan, _ planned: Planned, _ original: BundleAuditor.Analysis, _ environment: TargetEnvironment) -> RepairVerification {
        let (name, expectFIPS, host) = (original.audit.name, original.audit.expectFIPS, original.audit.host)
        let catalog = auditor.catalog
        let (changes, inventory) = (planned.changes, planned.inventory)
        let make = { @Sendable () -> BundleAudit in
            BundleAudit(name: name, inventory: inventory, environment: environment, expectFIPS: expectFIPS, host: host,
                        fileSystem: PlannedTree(changes, base: DiskFileSystem(catalog: catalog)))
        }
        let linkage = BundleAuditor.resolveInParallel(make)
        let audit = make()
        return RepairJudge.verify(stage: "plan", tree: plan.root, audit: audit, linkage: linkage, report: audit.run(linkage: linkage),
                                  before: original.report, renames: plan.renames)
    }

    /// The product's own smoke test on the staged copy: as `verifyUser` (never root), under the target
    /// environment, through the POST sandbox (the probe's --exec mode: no_new_privs, groups reset, timeout).
    func runVerifyCommand(_ argv: [String], request: Request, staged: String, environment: [String: String]) -> RepairVerification.CommandResult {
        // A relative PROG names a file of the tree when there is one ("app"), else a command on PATH.
        let program = argv[0].hasPrefix("/") ? rebase(argv[0], from: request.root, to: staged)
            : access(join(request.root, argv[0]), F_OK) == 0 || argv[0].contains("/") ? join(staged, argv[0]) : argv[0]
        let args = [program] + argv.dropFirst().map { rebase($0, from: request.root, to: staged) }
        guard let runner = runner?.with(timeout: request.timeout) else {
            return .init(argv: args, user: request.verifyUser, passed: false, outcome: "the probe (sentinel-probe) was not found", outputTail: "")
        }
        var identity: PostRunner.Identity?
        var user = request.verifyUser
        if getuid() == 0 {
            guard let pw = getpwnam(request.verifyUser), pw.pointee.pw_uid != 0 else {
                return .init(argv: args, user: request.verifyUser, passed: false,
                             outcome: "no such user \(request.verifyUser), or it is root: the command never runs as root", outputTail: "")
            }
            identity = PostRunner.Identity(uid: pw.pointee.pw_uid, gid: pw.pointee.pw_gid)
        } else {
            user = getpwuid(getuid()).map { String(cString: $0.pointee.pw_name) } ?? String(getuid())
        }
        var env = environment
        if env["PATH"] == nil { env["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        let (outcome, output, _) = runner.runCommand(args, environment: env, cwd: staged, identity: identity)
        let text: String
        var passed = false
        switch outcome {
        case .exited(let status, _): text = "exit \(status)"; passed = status == 0
        case .signaled(let s): text = "killed by signal \(s)"
        case .timedOut(let s): text = "timed out after \(Int(s)) s"
        }
        return .init(argv: args, user: user, passed: passed, outcome: text, outputTail: output)
    }

    /// Puts the kept tree back (`--rollback`).
    public static func rollback(root: String) throws(Failure) -> (restoredFrom: String, repairedKeptAs: String) {
        do { return try TreeSwap.rollback(root: root) } catch { throw Failure(description: "\(error)") }
    }
}

/// `path` with the folder `from` (and anything under it) moved to `to`.
func rebase(_ path: String, from: String, to: String) -> String {
    if path == from { return to }
    return path.hasPrefix(from + "/") ? to + path.dropFirst(from.count) : path
}

extension PostRunner {
    func with(timeout: Double) -> PostRunner { PostRunner(probe: probe, timeout: timeout, outputCap: outputCap) }
}
