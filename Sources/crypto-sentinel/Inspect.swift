import ArgumentParser
import Dispatch
import FoundationEssentials
import Glibc
import SentinelCore
import SentinelSystem

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Audit live processes: split libcrypto, deleted libraries, static copies, FIPS, environment.",
        discussion: """
        Reads /proc/<pid>/maps, status, environ (only \(TargetEnvironment.keptKeys.joined(separator: ", "))), \
        exe, cwd and cgroup of each selected process; mapped files are identified by content. Nothing of the \
        target is loaded or run. With no selector, every process that maps an OpenSSL library (--all). \
        Another user's processes need root (or CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH); what cannot be read \
        is reported as process-unreadable.

        Examples:
          crypto-sentinel inspect
          crypto-sentinel inspect --unit product-api --expect-fips --expect-env OPENSSL_CONF=/opt/product/etc/openssl-fips.cnf
          crypto-sentinel inspect --pid $(pidof app) --with-bundle --format json
        """)

    @Option(name: .customLong("pid"), help: ArgumentHelp("A process id (repeatable).", valueName: "PID"))
    var pids: [Int32] = []

    @Option(help: ArgumentHelp("Every process of this systemd unit (from /proc/<pid>/cgroup); '.service' is implied.", valueName: "NAME"))
    var unit: String?

    @Option(help: ArgumentHelp("Every process running this executable (same device and inode).", valueName: "PATH"))
    var exe: String?

    @Option(name: .customLong("pid-file"), help: ArgumentHelp("The process whose id this file holds.", valueName: "PATH"))
    var pidFile: String?

    @Flag(help: "Every process on the host that maps an OpenSSL library (the default with no selector).")
    var all = false

    @Flag(name: .customLong("expect-fips"), help: "The processes must have the FIPS provider (fips.so) mapped.")
    var expectFIPS = false

    @Option(name: .customLong("expect-env"), help: ArgumentHelp(
        "An expected variable, KEY=VALUE (repeatable; KEY= expects it unset). Only \(TargetEnvironment.keptKeys.joined(separator: ", ")) are captured.",
        valueName: "KEY=VALUE"))
    var expectEnv: [String] = []

    @Flag(name: .customLong("with-bundle"), help: "Also scan each process's bundle (its executable's folder, or the /tmp/_MEI… folder a PyInstaller onefile child runs from) under the process's environment.")
    var withBundle = false

    @OptionGroup var report: ReportOptions

    func validate() throws {
        for pair in expectEnv {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                throw ValidationError("--expect-env takes KEY=VALUE, got '\(pair)'")
            }
            let key = String(pair[..<eq])
            guard TargetEnvironment.keptKeys.contains(key) else {
                throw ValidationError("--expect-env \(key): only \(TargetEnvironment.keptKeys.joined(separator: ", ")) are captured from a process")
            }
        }
        for pid in pids where pid <= 0 { throw ValidationError("--pid takes a positive process id, got \(pid)") }
    }

    func run() throws {
        let reader = ProcReader(catalog: ELFCatalog())
        // A pid that names no process is a usage error, as --unit with none is; one that exits
        // after this check is still read and reported (process-unreadable).
        for pid in pids where kill(pid, 0) != 0 && errno == ESRCH {
            warn("--pid \(pid): no such process")
            throw ExitCode(2)
        }
        var explicit: [Int32] = pids
        do {
            if let pidFile { explicit.append(try ProcReader.pid(fromFile: pidFile)) }
        } catch {
            warn("\(error)")
            throw ExitCode(2)
        }
        if let unit {
            let found = reader.pids(unit: unit)
            guard !found.isEmpty else {
                warn("--unit \(CgroupUnit.normalise(unit)): no running process is in this unit")
                throw ExitCode(2)
            }
            explicit += found
        }
        if let exe {
            guard access(exe, F_OK) == 0 else { warn("--exe \(exe): \(String(cString: strerror(errno)))"); throw ExitCode(2) }
            let found = reader.pids(executable: exe)
            guard !found.isEmpty else { warn("--exe \(exe): no running process has this executable"); throw ExitCode(2) }
            explicit += found
        }
        let scanAll = all || explicit.isEmpty
        let wanted = Array(Set(explicit)).sorted()
        var snapshots = reader.snapshots(pids: wanted, onlyOpenSSL: false, secureExecution: withBundle)
        if scanAll {
            let me = getpid()
            let others = Set(wanted)
            snapshots += reader.snapshots(pids: reader.allPIDs().filter { $0 != me && !others.contains($0) },
                                          onlyOpenSSL: true, secureExecution: withBundle)
            snapshots.sort { $0.pid < $1.pid }
        }

        var expected: [String: String] = [:]
        for pair in expectEnv {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            expected[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        let expectations = ProcessExpectations(expectFIPS: expectFIPS, environment: expected)
        var targets: [TargetReport] = []
        var bundles: [BundleKey: TargetReport] = [:]
        let auditor = BundleAuditor(catalog: reader.catalog)
        // Audits are independent and pure: one share per core (it matters with a thousand processes).
        let taken = snapshots
        let audited = Locked<[TargetReport?]>(Array(repeating: nil, count: snapshots.count))
        let cores = max(1, min(ProcessInfo.processInfo.activeProcessorCount, snapshots.count / 32))
        DispatchQueue.concurrentPerform(iterations: cores) { part in
            var mine: [(Int, TargetReport)] = []
            for i in stride(from: part, to: taken.count, by: cores) {
                mine.append((i, ProcessAudit.audit(taken[i], expectations: expectations)))
            }
            audited.withLock { for (i, r) in mine { $0[i] = r } }
        }
        let reports = audited.withLock { $0 }
        for (snap, report) in zip(snapshots, reports) {
            var target = report!
            if withBundle {
                switch bundleRoot(of: snap) {
                case .failure(let why): target.warnings.append("--with-bundle: \(why)")
                case .success(let root):
                    let env = snap.environment ?? TargetEnvironment()
                    let key = BundleKey(root: root, environment: env)
                    if bundles[key] == nil {
                        do {
                            let base = root.split(separator: "/").last.map(String.init) ?? root
                            bundles[key] = try auditor.audit(root: root, name: "\(base) (as run by pid \(snap.pid))",
                                                             environment: env, expectFIPS: expectFIPS)
                        } catch {
                            target.warnings.append("--with-bundle: \(error)")
                        }
                    }
                }
            }
            targets.append(target)
        }
        targets += bundles.values.sorted { $0.name < $1.name }
        let doc = Report(command: "inspect", toolVersion: toolVersion, generatedAt: utcTimestamp(), targets: targets)
        throw ExitCode(emitInParallel(doc, options: report))
    }

    struct BundleKey: Hashable { var root: String; var environment: TargetEnvironment }

    /// The executable's folder; system folders are not bundles. A PyInstaller onefile child runs
    /// from the folder its parent extracted: that tree is what it loads.
    func bundleRoot(of snap: ProcessSnapshot) -> Result<String, BundleRootError> {
        if let extracted = snap.files.lazy.compactMap({ BundleLayout.extractedFolder(containing: $0.path) }).first {
            return .success(extracted)
        }
        guard var exe = snap.executable else { return .failure(.init("pid \(snap.pid): executable unknown")) }
        if exe.hasSuffix(MapsParser.deletedSuffix), access(exe, F_OK) != 0 { exe.removeLast(MapsParser.deletedSuffix.count) }
        let dir = LoaderResolver.dirname(exe)
        let system = ["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/usr/libexec", "/"]
        guard !system.contains(dir) else {
            return .failure(.init("pid \(snap.pid): \(exe) lives in \(dir), a system folder, not a bundle; scan skipped"))
        }
        return .success(dir)
    }

    struct BundleRootError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }
}

/// emit() for many targets (`inspect --all` on a busy host): the text of each target is rendered on
/// its own core, then printed in order. JSON goes straight to emit(): ReportJSON on one core is faster
/// than JSONEncoder spread over every core was.
func emitInParallel(_ report: Report, options: ReportOptions) -> Int32 {
    guard report.targets.count >= 64, options.format == .text else { return emit(report, options: options) }
    for t in report.targets { for w in t.warnings { warn("\(t.name): \(w)") } }
    let targets = report.targets
    let parts = Locked<[Data]>(Array(repeating: Data(), count: targets.count))
    let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
    DispatchQueue.concurrentPerform(iterations: cores) { part in
        var mine: [(Int, Data)] = []
        for i in stride(from: part, to: targets.count, by: cores) {
            let one = Report(command: report.command, toolVersion: report.toolVersion, generatedAt: report.generatedAt,
                             targets: [targets[i]])
            mine.append((i, Data(TextRenderer.render(one).utf8)))
        }
        parts.withLock { for (i, d) in mine { $0[i] = d } }
    }
    for part in parts.withLock({ $0 }) { writeAll(STDOUT_FILENO, [UInt8](part)) }
    return report.exitStatus(failOn: options.failOn)
}
