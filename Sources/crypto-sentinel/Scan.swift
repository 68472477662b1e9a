import ArgumentParser
import FoundationEssentials
import Glibc
import SentinelCore
import SentinelSystem

struct Scan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Audit a bundle tree's OpenSSL linkage (a release gate for CI; runs no code of the bundle).",
        discussion: """
        Reads every ELF file under ROOT with libelf, resolves each DT_NEEDED entry as glibc's loader would \
        under the target's environment, and reports split libcrypto, hashed names, static and duplicate \
        copies, missing trust stores and provider folders.

        Recognises cx_Freeze, PyInstaller (onedir and onefile), Nuitka standalone and venv bundles, and \
        judges them under what their launcher sets at run time (PyInstaller's LD_LIBRARY_PATH, cx_Freeze's \
        SSL_CERT_FILE) unless --env gives the variable. A PyInstaller onefile executable's archive is read \
        in memory, never extracted: its files appear as EXECUTABLE!/NAME.

        Examples:
          crypto-sentinel scan /opt/product
          crypto-sentinel scan build/exe.linux-x86_64-3.11 --expect-fips --format json --fail-on warning
          crypto-sentinel scan dist/app                  # a PyInstaller onefile executable, before it runs
          crypto-sentinel scan /opt/product --env OPENSSL_MODULES=/opt/product/lib/ossl-modules
          crypto-sentinel scan /opt/product --env-from-pid $(pidof product-api)
          crypto-sentinel scan build/exe.linux-x86_64-3.11 --waivers waivers.yaml

        A waivers file holds the list the daemon config takes under waivers: (README):
          - code: mangled-openssl-name      # required
            target: "*"                     # required: a name (see --name) or "*"
            path: lib/libcrypto-27e744a7.so.3
                                            # optional: the file (or MAJOR:MINOR:INODE)
            reason: vendor fix due in 4.2   # required
            expires: 2027-01-31             # required: the last day (UTC) it holds
        A waived finding stays in the report, marked, but counts toward neither the state nor the exit \
        status until the day after expires; waivers that matched nothing or are past their date are listed.
        """)

    @Argument(help: "The bundle's top folder (e.g. a cx_Freeze build_exe target dir), or a PyInstaller onefile executable.")
    var root: String

    @OptionGroup var target: TargetEnvironmentOptions

    @Flag(name: .customLong("expect-fips"), help: "The bundle must be able to load the FIPS provider.")
    var expectFIPS = false

    @Option(help: "The target's name in the report (default: the root folder's name).")
    var name: String?

    @Option(help: ArgumentHelp("Accepted findings: a YAML list of waivers (code, target, path, reason, expires).", valueName: "FILE"))
    var waivers: String?

    @OptionGroup var report: ReportOptions

    func run() throws {
        try runScan(root: root, environment: target.environment(), expectFIPS: expectFIPS,
                    name: name, waivers: waivers, format: report.format, failOn: report.failOn)
    }
}

/// `--env` and `--env-from-pid`: the target's OpenSSL and loader variables, for `scan` and `repair`.
struct TargetEnvironmentOptions: ParsableArguments {
    @Option(name: .customLong("env"), help: ArgumentHelp(
        "A variable of the target's environment, KEY=VALUE (repeatable). Only \(TargetEnvironment.keptKeys.joined(separator: ", ")) are used.",
        valueName: "KEY=VALUE"))
    var env: [String] = []

    @Option(name: .customLong("env-from-pid"), help: ArgumentHelp(
        "Take the OpenSSL and loader variables from /proc/PID/environ (nothing else is read or kept).", valueName: "PID"))
    var envFromPid: Int32?

    func validate() throws {
        for pair in env where !pair.contains("=") || pair.hasPrefix("=") {
            throw ValidationError("--env takes KEY=VALUE, got '\(pair)'")
        }
    }

    /// The variables, from the process first and then each --env; exit 2 when the process cannot be read.
    func environment() throws -> TargetEnvironment {
        var values: [String: String] = [:]
        var secure = false
        if let pid = envFromPid {
            let snap = ProcReader().snapshot(pid: pid, secureExecution: true)
            guard let captured = snap.environment else {
                let failure = snap.failures.first { $0.file == "environ" } ?? snap.failures.first
                warn("--env-from-pid \(pid): " + (failure.map { $0.reason == .exited ? "no such process" : "cannot read /proc/\(pid)/\($0.file): \($0.reason)" }
                                                 ?? "cannot read /proc/\(pid)/environ"))
                throw ExitCode(2)
            }
            values = captured.values
            secure = captured.secureExecution
        }
        for pair in env {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            if !TargetEnvironment.keptKeys.contains(key) {
                warn("--env \(key): ignored, only \(TargetEnvironment.keptKeys.joined(separator: ", ")) affect the audit")
            }
            values[key] = parts.count > 1 ? String(parts[1]) : ""
        }
        return TargetEnvironment(values, secureExecution: secure)
    }
}

/// A tree's folder as an absolute path, in the form every path of an audit takes (EscapedBytes: a
/// backslash in it stays a backslash); for `scan` and `repair`.
func absoluteTreePath(_ path: String) -> String {
    EscapedBytes.string(Array(URL(fileURLWithPath: path).standardizedFileURL.path.utf8))
}

/// The audit and its report, for both ways a `scan` command line is read.
func runScan(root: String, environment: TargetEnvironment, expectFIPS: Bool, name: String?, waivers: String?,
             format: OutputFormat, failOn: Severity) throws {
    let accepted = try waivers.map(readWaivers) ?? []
    let absolute = absoluteTreePath(root)
    let auditor = BundleAuditor(catalog: ELFCatalog())
    let result: TargetReport
    do {
        result = try auditor.audit(root: absolute, name: name, environment: environment, expectFIPS: expectFIPS)
    } catch {
        warn("\(error)")
        throw ExitCode(2)
    }
    var doc = Report(command: "scan", toolVersion: toolVersion, generatedAt: utcTimestamp(), targets: [result])
    if waivers != nil { doc.apply(accepted, today: String(doc.generatedAt.prefix(10))) }
    let status = emit(doc, format: format, failOn: failOn)
    // The process ends here, with the catalog and the report still alive: freeing a 20,000-file
    // bundle's models object by object only delays the exit (milliseconds on a release gate).
    withExtendedLifetime(auditor) { Glibc.exit(status) }
}

/// The waivers in FILE; exit 2 with FILE:LINE:COL and the reason when it cannot be read or is wrong.
func readWaivers(_ file: String) throws -> [Waiver] {
    guard let data = FileManager.default.contents(atPath: file) else {
        warn("--waivers \(file): cannot read: \(String(cString: strerror(errno)))")
        throw ExitCode(2)
    }
    do {
        return try DaemonConfig.parseWaivers(bytes: [UInt8](data), file: file)
    } catch {
        warn(error.description)
        throw ExitCode(2)
    }
}

/// A simple `scan` command line (SimpleCommandLine: one ROOT, --format, --fail-on, --name,
/// --waivers, --expect-fips); nil for anything else (--env and --env-from-pid among them), which ArgumentParser reads.
struct ScanRequest {
    var root: String
    var expectFIPS: Bool
    var name: String?
    var waivers: String?
    var format: OutputFormat
    var failOn: Severity

    init?(simpleCommandLine arguments: [String]) {
        guard let line = SimpleCommandLine(arguments, subcommand: "scan", flags: ["--expect-fips"], options: ["--name", "--waivers"]),
              line.positionals.count == 1 else { return nil }
        root = line.positionals[0]
        expectFIPS = line.flags.contains("--expect-fips")
        name = line.options.first { $0.name == "--name" }?.value
        waivers = line.options.first { $0.name == "--waivers" }?.value
        format = line.format
        failOn = line.failOn
    }

    func run() throws {
        try runScan(root: root, environment: TargetEnvironment(), expectFIPS: expectFIPS, name: name, waivers: waivers,
                    format: format, failOn: failOn)
    }
}
