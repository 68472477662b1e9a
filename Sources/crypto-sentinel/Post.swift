import ArgumentParser
import Foundation
import Glibc
import SentinelCore
import SentinelSystem
import Synchronization

struct Post: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rerun the FIPS POST in a fresh child under a service's exact environment, cwd and user.",
        discussion: """
        Spawns the native probe (sentinel-probe, installed beside crypto-sentinel, or $SENTINEL_PROBE) once per \
        distinct libcrypto: it loads that one library, loads the config as a service does and strictly, lists the \
        providers, runs the FIPS self-test, a SHA-256 known answer, MD5 (must fail under FIPS), RAND_bytes, and \
        checks the trust paths. A child that crashes or hangs is reported (post-crashed, post-timeout), never fatal.

        Examples:
          crypto-sentinel post --pid $(pidof product-api) --expect-fips
          crypto-sentinel post --env OPENSSL_CONF=/opt/product/etc/openssl-fips.cnf --libcrypto /opt/product/lib/libcrypto.so.3
          crypto-sentinel post --env-file /etc/product/env --expect-fips --command /opt/product/bin/fips-post --quick
        """)

    @Option(help: ArgumentHelp("Take environment, cwd, uid and gid from this running process, and POST every libcrypto it maps.", valueName: "PID"))
    var pid: Int32?

    @Option(name: .customLong("env"), help: ArgumentHelp("A variable of the service's environment (repeatable; overrides --pid and --env-file).", valueName: "KEY=VALUE"))
    var env: [String] = []

    @Option(name: .customLong("env-file"), help: ArgumentHelp("KEY=VALUE lines (systemd EnvironmentFile style; # comments).", valueName: "FILE"))
    var envFile: String?

    @Option(name: .customLong("libcrypto"), help: ArgumentHelp("The libcrypto to test (path or soname; repeatable). Default: every libcrypto the process maps, else libcrypto.so.3 as the loader resolves it under the environment.", valueName: "PATH"))
    var libcrypto: [String] = []

    @Flag(name: .customLong("expect-fips"), help: "The fips provider must be active and MD5 refused.")
    var expectFIPS = false

    @Option(help: "Seconds before a POST child is killed (SIGKILL to its process group).")
    var timeout: Double = 10

    @Option(help: "The target's name in the report.")
    var name: String?

    @OptionGroup var report: ReportOptions

    @Option(name: .customLong("command"), parsing: .remaining, help: ArgumentHelp("The product's own POST program and its arguments (must come last); runs under the same environment, cwd, user and timeout.", valueName: "PROG ARGS"))
    var command: [String] = []

    /// ISO 8601 UTC with strftime: ISO8601DateFormatter loads ICU and time zone data, a few ms that
    /// count when the whole POST takes 10 ms.
    static func utcTimestamp() -> String {
        var t = time(nil)
        var parts = tm()
        gmtime_r(&t, &parts)
        var buf = [CChar](repeating: 0, count: 32)
        let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func validate() throws {
        for pair in env where !pair.contains("=") || pair.hasPrefix("=") {
            throw ValidationError("--env takes KEY=VALUE, got '\(pair)'")
        }
        if timeout <= 0 { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        guard let probe = PostRunner.locateProbe() else {
            warn("sentinel-probe not found beside the executable (install it there or set SENTINEL_PROBE)")
            throw ExitCode(2)
        }
        var environment: [String: String] = [:]
        var cwd: String?
        var identity: PostRunner.Identity?
        var libraries = libcrypto
        var targetName = name ?? "post"
        var procTarget: PostTarget?
        var changedOnDisk = Set<String>()   // maps pathnames whose file was deleted or replaced
        if let pid {
            let t: PostTarget
            do { t = try PostTarget.read(pid: pid) } catch {
                warn("--pid \(pid): \(error)")
                throw ExitCode(2)
            }
            procTarget = t
            environment = t.environ
            cwd = t.cwd
            identity = .init(uid: t.uid, gid: t.gid)
            if libraries.isEmpty {
                // Content-based identification (SONAME, exports, version text) through the inspect
                // work's ProcReader; the basename rule only when that snapshot has nothing to say.
                let snap = ProcReader().snapshot(pid: pid)
                for file in snap.files where file.role == .libcrypto {
                    libraries.append(file.mapsPathname)
                    switch file.disk {
                    case .deleted, .replaced: changedOnDisk.insert(file.mapsPathname)
                    default: break
                    }
                }
                if libraries.isEmpty {
                    libraries = t.mappedLibcrypto
                    for lib in libraries where lib.hasSuffix(" (deleted)") && access(lib, F_OK) != 0 { changedOnDisk.insert(lib) }
                }
            }
            if name == nil {
                let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                targetName = "\(comm ?? "pid") [\(pid)]"
            }
        }
        if let envFile {
            guard let text = try? String(contentsOfFile: envFile, encoding: .utf8) else {
                warn("--env-file \(envFile): cannot read")
                throw ExitCode(2)
            }
            for (k, v) in EnvFile.parse(text) { environment[k] = v }
        }
        for pair in env {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            environment[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        if libraries.isEmpty { libraries = ["libcrypto.so.3"] }
        // Only what the user named is a usage error; a mapped file out of reach is a finding.
        for lib in libcrypto where lib.hasPrefix("/") && access(lib, F_OK) != 0 {
            warn("--libcrypto \(lib): no such file")
            throw ExitCode(2)
        }
        if let id = identity, geteuid() != 0 {
            guard id.uid == geteuid() else {
                warn("--pid \(pid!): the service runs as uid \(id.uid); running its POST as that user needs root")
                throw ExitCode(2)
            }
            identity = nil
        }
        let runner = PostRunner(probe: probe, timeout: timeout)
        let kept = TargetEnvironment(environment).values
        let runAs = identity.map { "uid \($0.uid), gid \($0.gid) (supplementary groups reset)" } ?? "uid \(getuid()), gid \(getgid()) (this process)"
        var targets: [TargetReport] = []
        var seen = Set<String>()
        var scratch: String?
        defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
        var jobs: [(lib: String, probeLib: String, deleted: Finding?)] = []
        for lib in libraries where seen.insert(lib).inserted {
            // A libcrypto deleted or replaced under the running service: POST what it really maps.
            var probeLib = lib
            var deleted: Finding?
            if let t = procTarget, changedOnDisk.contains(lib) {
                if scratch == nil {
                    scratch = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-post-\(getpid())").path
                    try? FileManager.default.createDirectory(atPath: scratch!, withIntermediateDirectories: true,
                                                             attributes: [.posixPermissions: 0o755])
                }
                let copy = t.copyOfMapping(lib, into: scratch!)
                if let copy { probeLib = copy }
                deleted = Finding(code: .processDeletedLibrary, target: targetName,
                    summary: "\(lib.hasSuffix(" (deleted)") ? String(lib.dropLast(" (deleted)".count)) : lib) was deleted or replaced on disk; the service runs the old code until it is restarted"
                        + (copy == nil ? " (its mapped content cannot be read: the POST below loads nothing)" : "; the POST ran on the mapped content"),
                    evidence: ["path": .string(lib), "tested_copy": JSONValue(copy)],
                    fix: ["systemctl restart <the service>   # then rerun: crypto-sentinel post --pid <new pid>"])
            }
            jobs.append((lib, probeLib, deleted))
        }
        // One child per libcrypto, side by side when there are several (the split bundle's two POSTs
        // take the time of one on a multi-core machine). Each child is still its own fresh process.
        let env = environment, dir = cwd, id = identity
        let runs = Mutex([PostRun?](repeating: nil, count: jobs.count))
        let threads = jobs.indices.dropFirst().map { i in
            Thread { [probeLib = jobs[i].probeLib] in
                let run = runner.runProbe(library: probeLib, environment: env, cwd: dir, identity: id)
                runs.withLock { $0[i] = run }
            }
        }
        threads.forEach { $0.start() }
        if let first = jobs.first {
            let run = runner.runProbe(library: first.probeLib, environment: env, cwd: dir, identity: id)
            runs.withLock { $0[0] = run }
        }
        while !threads.allSatisfy(\.isFinished) { usleep(500) }
        for (i, job) in jobs.enumerated() {
            guard let run = runs.withLock({ $0[i] }) else { continue }
            var result = PostAnalysis.analyze(run, target: targetName, expectFIPS: expectFIPS)
            if let deleted = job.deleted { result.findings.append(deleted) }
            let post: JSONValue = ["library": result.library, "checks": .array(result.checks.map(\.json)),
                                   "run_as": .string(runAs), "elapsed_ms": .int(Int64(run.elapsedMs)),
                                   "expect_fips": .bool(expectFIPS)]
            targets.append(TargetReport(name: "\(targetName) \(job.lib)", kind: "post", root: cwd, environment: kept,
                                        stats: ["elapsed_ms": run.elapsedMs], findings: result.findings, post: post))
        }
        if !command.isEmpty {
            let (outcome, tail, ms) = runner.runCommand(command, environment: environment, cwd: cwd, identity: identity)
            let finding = PostAnalysis.commandFinding(argv: command, outcome: outcome, outputTail: tail, target: targetName)
            let status: String = finding == nil ? "pass" : "fail"
            let check: JSONValue = ["name": "post command", "status": .string(status),
                                    "summary": .string(command.joined(separator: " ") + (finding == nil ? " exited 0" : " failed")),
                                    "errors": finding == nil ? [] : JSONValue(tail.split(separator: "\n").suffix(5).map(String.init))]
            targets.append(TargetReport(name: "\(targetName) command", kind: "post", root: cwd, environment: kept,
                                        stats: ["elapsed_ms": ms], findings: finding.map { [$0] } ?? [],
                                        post: ["checks": [check], "run_as": .string(runAs)]))
        }
        // The runner ignores SIGPIPE while it feeds children; a CLI piped into `head` should still
        // end quietly on a closed stdout, as every other command does.
        signal(SIGPIPE, SIG_DFL)
        let doc = Report(command: "post", toolVersion: toolVersion, generatedAt: Self.utcTimestamp(), targets: targets)
        throw ExitCode(emit(doc, options: report))
    }
}
