import ArgumentParser
import FoundationEssentials
import Glibc
import SentinelCore
import SentinelSystem

struct Repair: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Apply the canonical-soname fix to a bundle: planned from the scan, native edits, verified, reversible.",
        discussion: """
        Picks one copy of libcrypto and of libssl in ROOT (by content and version), renames it to its \
        canonical name (libcrypto.so.3), rewrites every DT_NEEDED, DT_SONAME and .gnu.version_r name that \
        named a hashed or duplicate copy in place in .dynstr (no patchelf: nothing moves, file sizes stay), \
        removes the copies nobody names any more, and verifies the result with the same model as `scan` \
        before anything is handed over. Never touched: fips.so, files with an integrity MAC, files outside \
        ROOT, and (with --in-place) files a package owns.

        Exit status: 0 repaired or nothing to do, 1 the plan or the verification failed (nothing changed), \
        2 usage or I/O error.

        Examples:
          crypto-sentinel repair /opt/product --dry-run
          crypto-sentinel repair build/exe.linux-x86_64-3.11 --out build/repaired --verify-command app --self-test
          crypto-sentinel repair /opt/product --in-place --env-from-pid $(pidof product-api)
          crypto-sentinel repair --rollback /opt/product
        """)

    @Argument(help: "The bundle's top folder.")
    var root: String

    @Option(help: ArgumentHelp("Write the repaired copy to DIR (must not exist); ROOT is left as it is.", valueName: "DIR"))
    var out: String?

    @Flag(name: .customLong("in-place"), help: "Stage a copy beside ROOT, verify it, swap it in atomically; keep the original as ROOT.orig-<UTC time>.")
    var inPlace = false

    @Flag(name: .customLong("dry-run"), help: "Print the plan and its predicted verification; change nothing.")
    var dryRun = false

    @Flag(help: "Swap the tree kept by the last --in-place back in (the repaired one is kept as ROOT.repaired-<UTC time>).")
    var rollback = false

    @OptionGroup var target: TargetEnvironmentOptions

    @Option(name: .customLong("verify-user"), help: ArgumentHelp("The user --verify-command runs as when repair runs as root (never root).", valueName: "USER"))
    var verifyUser = "nobody"

    @Option(help: ArgumentHelp("Seconds --verify-command may take before it is killed.", valueName: "SECONDS"))
    var timeout: Double = 60

    @Option(help: "Output format: text (for people) or json (one document on stdout).")
    var format: OutputFormat = .text

    @Option(name: .customLong("verify-command"), parsing: .remaining, help: ArgumentHelp(
        "The product's smoke test, run on the staged copy before anything is handed over (last option: the rest of the line is PROG ARGS). PROG relative to ROOT, or absolute under it, runs from the copy.",
        valueName: "PROG ARGS"))
    var verifyCommand: [String] = []

    func validate() throws {
        let modes = [out != nil, inPlace, rollback].filter { $0 }.count
        if modes > 1 { throw ValidationError("--out, --in-place and --rollback exclude each other") }
        if modes == 0, !dryRun { throw ValidationError("say what to do: --dry-run, --out DIR, --in-place or --rollback") }
        if rollback, dryRun { throw ValidationError("--rollback has no --dry-run") }
        if !(timeout > 0 && timeout <= 3600) { throw ValidationError("--timeout takes seconds between 0 and 3600") }
    }

    func run() throws {
        let absoluteRoot = absoluteTreePath(root)
        var lst = stat()
        if inPlace || rollback, lstat(absoluteRoot, &lst) == 0, lst.st_mode & S_IFMT == S_IFLNK {
            // The swap renames directory entries: through a symlink it would swap the link, not the tree.
            warn("\(root): a symlink; give the folder it points to (\(realPath(absoluteRoot) ?? "?")) for --in-place and --rollback")
            throw ExitCode(2)
        }
        if rollback {
            do {
                let (from, kept) = try Repairer.rollback(root: absoluteRoot)
                show(RepairDocument(plan: RepairPlan(root: absoluteRoot), verifications: [], status: "rolled-back", path: absoluteRoot,
                                    keptAs: kept, rolledBackFrom: from))
                return
            } catch { warn("\(error)"); throw ExitCode(2) }
        }
        var st = stat()
        guard stat(absoluteRoot, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            warn("\(root): not a folder"); throw ExitCode(2)
        }
        let mode: Repairer.Mode
        if dryRun { mode = .dryRun } else if let out {
            let dir = absoluteTreePath(out)
            if access(dir, F_OK) == 0 { warn("--out \(out): already exists; repair writes a new folder"); throw ExitCode(2) }
            if dir == absoluteRoot || dir.hasPrefix(absoluteRoot + "/") { warn("--out \(out): inside ROOT"); throw ExitCode(2) }
            mode = .out(dir)
        } else { mode = .inPlace }
        let request = Repairer.Request(root: absoluteRoot, mode: mode, environment: try target.environment(),
                                       verifyCommand: verifyCommand.isEmpty ? nil : verifyCommand, verifyUser: verifyUser, timeout: timeout)
        let outcome: Repairer.Outcome
        do {
            outcome = try Repairer(runner: PostRunner.locateProbe().map { PostRunner(probe: $0, timeout: timeout) }).run(request)
        } catch { warn("\(error)"); throw ExitCode(2) }
        for w in outcome.warnings { warn(w) }
        show(RepairDocument(plan: outcome.plan, verifications: outcome.verifications, status: outcome.status.rawValue,
                            path: outcome.path, keptAs: outcome.keptAs))
        throw ExitCode(outcome.exitCode)
    }

    func show(_ doc: RepairDocument) {
        switch format {
        case .json: writeAll(STDOUT_FILENO, ReportJSON.encode(doc.json) + [0x0a])
        case .text: writeAll(STDOUT_FILENO, Array(doc.text.utf8))
        }
    }

    func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
