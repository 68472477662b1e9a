import ArgumentParser
import FoundationEssentials
import Glibc
import SentinelCore
import SentinelSystem

struct Post: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "post",
        abstract: "Rerun the FIPS POST in a fresh child under a service's exact environment, cwd and user.",
        discussion: """
        Spawns the native probe (sentinel-probe, installed beside crypto-sentinel, or $SENTINEL_PROBE) once per \
        distinct libcrypto: it loads that one library, loads the config as a service does and strictly, lists the \
        providers, runs the FIPS self-test, a SHA-256 known answer, MD5 (must fail under FIPS), RAND_bytes, and \
        checks the trust paths. A child that crashes or hangs is reported (post-crashed, post-timeout), never fatal.

        With a fips provider loaded, the report also says whether its version holds a CMVP certificate (validation         data: --fips-validations, else \(FIPSValidationsFile.defaultPath) when it exists, else the copy built in) and         audits the module section it was activated from (fips-config-relaxed: an option set to 0 that weakens it,         with file:line). --require and --forbid name operations the product performs (or must never manage to):         the probe performs each for real under the service's environment; --list-operations prints the names.

        Examples:
          crypto-sentinel post --pid $(pidof product-api) --expect-fips
          crypto-sentinel post --env OPENSSL_CONF=/opt/product/etc/openssl-fips.cnf --libcrypto /opt/product/lib/libcrypto.so.3
          crypto-sentinel post --pid $(pidof product-api) --expect-fips --require x509-sign-sha256 --require aes-256-gcm --forbid md5
          crypto-sentinel post --env-file /etc/product/env --expect-fips --command /opt/product/bin/fips-post --quick
        """)

    @Option(help: ArgumentHelp("Take environment, cwd, uid and gid from this running process, and POST every libcrypto it maps (when it maps none, each process it started that does).", valueName: "PID"))
    var pid: Int32?

    @Option(name: .customLong("env"), help: ArgumentHelp("A variable of the service's environment (repeatable; overrides --pid and --env-file).", valueName: "KEY=VALUE"))
    var env: [String] = []

    @Option(name: .customLong("env-file"), help: ArgumentHelp("KEY=VALUE lines (systemd EnvironmentFile style; # comments).", valueName: "FILE"))
    var envFile: String?

    @Option(name: .customLong("libcrypto"), help: ArgumentHelp("The libcrypto to test (path or soname; repeatable). Default: every libcrypto the process maps, else libcrypto.so.3 as the loader resolves it under the environment.", valueName: "PATH"))
    var libcrypto: [String] = []

    @Flag(name: .customLong("expect-fips"), help: "The fips provider must be active and MD5 refused.")
    var expectFIPS = false

    // .unconditional: `--timeout -1` is a value to refuse with a reason, not a missing one.
    @Option(parsing: .unconditional, help: "Seconds before a POST child is killed (SIGKILL to its process group; at most \(Int(PostRequest.maxTimeout))).")
    var timeout: Double = PostRequest.defaultTimeout

    @Option(help: "The target's name in the report.")
    var name: String?

    @Flag(name: .customLong("no-host-fips-check"), help: "With --expect-fips, do not report a host whose kernel is not in FIPS mode (host-fips-disabled); the host's state is still shown.")
    var noHostFIPSCheck = false

    @Option(name: .customLong("host-root"), help: ArgumentHelp("Read the host's FIPS state (proc/sys/crypto/fips_enabled, etc/crypto-policies/config) under DIR instead of / (a container's or a test's view).", valueName: "DIR"))
    var hostRoot: String?

    @Option(name: .customLong("require"), help: ArgumentHelp("An operation the product needs (repeatable): refused is post-required-refused. See --list-operations.", valueName: "OP"))
    var require: [String] = []

    @Option(name: .customLong("forbid"), help: ArgumentHelp("An operation that must fail (repeatable): allowed is post-forbidden-allowed, critical with --expect-fips.", valueName: "OP"))
    var forbid: [String] = []

    @Flag(name: .customLong("list-operations"), help: "Print the operations --require and --forbid take, and exit.")
    var listOperations = false

    @Option(name: .customLong("fips-validations"), help: ArgumentHelp("The CMVP validation data to judge the fips provider by (JSON, the schema of data/fips-validations.json). Default: \(FIPSValidationsFile.defaultPath) when it exists, else the copy built in.", valueName: "FILE"))
    var fipsValidations: String?

    @OptionGroup var report: ReportOptions

    @Option(name: .customLong("command"), parsing: .remaining, help: ArgumentHelp("The product's own POST program and its arguments (must come last); runs under the same environment, cwd, user and timeout.", valueName: "PROG ARGS"))
    var command: [String] = []

    func validate() throws {
        for pair in env where !pair.contains("=") || pair.hasPrefix("=") {
            throw ValidationError("--env takes KEY=VALUE, got '\(pair)'")
        }
        if let bad = PostOperations.unknown(require + forbid).first {
            throw ValidationError("'\(bad)' is not an operation (crypto-sentinel post --list-operations lists them)")
        }
        if let both = require.first(where: forbid.contains) {
            throw ValidationError("'\(both)' is both required and forbidden")
        }
        if !PostRequest.validTimeout(timeout) {
            throw ValidationError("--timeout must be positive and at most \(Int(PostRequest.maxTimeout)) seconds")
        }
    }

    func run() throws {
        if listOperations {
            print(PostOperations.listing)
            return
        }
        try PostRequest(pid: pid, env: env, envFile: envFile, libcrypto: libcrypto, expectFIPS: expectFIPS,
                        timeout: timeout, name: name, command: command, format: report.format, failOn: report.failOn,
                        hostCheck: !noHostFIPSCheck, hostRoot: hostRoot, require: require, forbid: forbid,
                        validationsPath: fipsValidations).run()
    }
}

/// What `post` was asked, as plain values: built by ArgumentParser (`Post`) or, for a simple command
/// line, by `init?(simpleCommandLine:)` without it.
struct PostRequest {
    static let defaultTimeout = 10.0
    static let maxTimeout = 3600.0
    static func validTimeout(_ t: Double) -> Bool { t > 0 && t <= maxTimeout }
    var pid: Int32?
    var env: [String] = []
    var envFile: String?
    var libcrypto: [String] = []
    var expectFIPS = false
    var timeout: Double = PostRequest.defaultTimeout
    var name: String?
    var command: [String] = []
    var format: OutputFormat = .text
    var failOn: Severity = .error
    var hostCheck = true
    var hostRoot: String?
    var require: [String] = []
    var forbid: [String] = []
    var validationsPath: String?

    func run() throws {
        guard let probe = PostRunner.locateProbe() else {
            if let named = ProcessInfo.processInfo.environment["SENTINEL_PROBE"], !named.isEmpty {
                warn("SENTINEL_PROBE=\(named) is not an executable file")
            } else {
                warn("sentinel-probe not found beside the executable (install it there or set SENTINEL_PROBE)")
            }
            throw ExitCode(2)
        }
        var plans = [PostPlan(targetName: name ?? "post", environment: [:], libraries: libcrypto, expectFIPS: expectFIPS,
                              command: command)]
        var notes: [String] = []
        if let pid {
            let t: PostTarget
            do { t = try PostTarget.read(pid: pid) } catch {
                warn("--pid \(pid): \(error)")
                throw ExitCode(2)
            }
            let followed = follow(t, expectFIPS: expectFIPS)
            if !libcrypto.isEmpty {
                plans[0].environment = followed.environment; plans[0].cwd = followed.cwd; plans[0].identity = followed.identity
                plans[0].targetName = followed.targetName; plans[0].process = followed.process
            } else if !followed.libraries.isEmpty {
                plans = [followed]
            } else {
                // Nothing to POST in this process (a PyInstaller onefile parent): the children that map
                // a libcrypto are the service, each POSTed under its own environment.
                let children = ProcReader().descendants(of: pid).compactMap { try? PostTarget.read(pid: $0) }
                    .map { follow($0, expectFIPS: expectFIPS, parent: pid) }.filter { !$0.libraries.isEmpty }
                let named = children.compactMap { $0.process.map { "\($0.pid)" } }.joined(separator: ", ")
                notes.append(children.isEmpty
                    ? "pid \(pid) maps no libcrypto, nor does any process it started: nothing to POST (--libcrypto names one)"
                    : "pid \(pid) maps no libcrypto; the process(es) it started that do were POSTed instead: pid \(named)")
                plans = children
            }
        }
        var envFileValues: [(String, String)] = []
        if let envFile {
            let bytes: [UInt8]
            // The reason (strerror), which "cannot read" alone left to guess.
            switch ProcReader.readWhole(envFile, limit: 4 << 20) {
            case .success(let b): bytes = b
            case .failure(let e):
                warn("--env-file: cannot read \(envFile): \(String(cString: strerror(e.code)))")
                throw ExitCode(2)
            }
            envFileValues = EnvFile.parse(String(decoding: bytes, as: UTF8.self))
        }
        // Only what the user named is a usage error; a mapped file out of reach is a finding.
        for lib in libcrypto where lib.hasPrefix("/") && access(lib, F_OK) != 0 {
            warn("--libcrypto \(lib): no such file")
            throw ExitCode(2)
        }
        let (validations, problem) = FIPSValidationsFile.load(validationsPath)
        if let problem { warn(problem) }
        let host = HostFIPSReader.read(root: hostRoot ?? "/")
        for i in plans.indices {
            for (k, v) in envFileValues { plans[i].environment[k] = v }
            for pair in env {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                plans[i].environment[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            if plans[i].libraries.isEmpty { plans[i].libraries = ["libcrypto.so.3"] }
            if let id = plans[i].identity, geteuid() != 0 {
                guard id.uid == geteuid() else {
                    warn("--pid \(plans[i].process?.pid ?? pid!): the service runs as uid \(id.uid); running its POST as that user needs root")
                    throw ExitCode(2)
                }
                plans[i].identity = nil
            }
            plans[i].require = require
            plans[i].forbid = forbid
            plans[i].validations = validations
            plans[i].host = HostFIPSCheck(state: host, enabled: hostCheck)
        }
        var targets = plans.flatMap { PostSession.run($0, runner: PostRunner(probe: probe, timeout: timeout)) }
        if targets.isEmpty, let pid {
            targets = [TargetReport(name: name ?? "pid \(pid)", kind: "post", findings: [])]
        }
        if !notes.isEmpty { targets[0].warnings = notes + targets[0].warnings }
        // The runner ignores SIGPIPE while it feeds children; a CLI piped into `head` should still
        // end quietly on a closed stdout, as every other command does.
        signal(SIGPIPE, SIG_DFL)
        var doc = Report(command: "post", toolVersion: toolVersion, generatedAt: utcTimestamp(), targets: targets)
        doc.host = host.json
        throw ExitCode(emit(doc, format: format, failOn: failOn))
    }
}

extension PostRequest {
    /// The plan that POSTs what `target` maps, under its environment and identity.
    func follow(_ target: PostTarget, expectFIPS: Bool, parent: Int32? = nil) -> PostPlan {
        let comm = (try? String(contentsOfFile: "/proc/\(target.pid)/comm", encoding: .utf8))?.split(separator: "\n").first.map(String.init)
        let label = "\(comm ?? "pid") [\(target.pid)]" + (parent.map { ", started by pid \($0)" } ?? "")
        return PostPlan.following(target, name: name.map { parent == nil ? $0 : "\($0) [\(target.pid)]" } ?? label,
                                  expectFIPS: expectFIPS, command: command)
    }

    /// A simple `post` command line (SimpleCommandLine: --env and --libcrypto repeatable, --timeout,
    /// --expect-fips, --format, --fail-on, --name, every value valid) as a request; nil for anything
    /// else (--pid, --env-file, --command among them), which ArgumentParser reads.
    init?(simpleCommandLine arguments: [String]) {
        guard let line = SimpleCommandLine(arguments, subcommand: "post", flags: ["--expect-fips"],
                                           options: ["--env", "--libcrypto", "--timeout", "--name"],
                                           repeatable: ["--env", "--libcrypto"]),
              line.positionals.isEmpty else { return nil }
        for (option, value) in line.options {
            switch option {
            case "--env":
                guard let eq = value.firstIndex(of: "="), eq != value.startIndex else { return nil }
                env.append(value)
            case "--libcrypto":
                libcrypto.append(value)
            case "--timeout":
                guard let t = Double(value), Self.validTimeout(t) else { return nil }
                timeout = t
            default:
                name = value
            }
        }
        expectFIPS = line.flags.contains("--expect-fips")
        format = line.format
        failOn = line.failOn
    }
}
