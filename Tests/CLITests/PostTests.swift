import Foundation
import SentinelCore
import SentinelTestSupport
import Testing

/// `crypto-sentinel post` end to end: the built binary spawning the built probe, with Debian 13's real
/// FIPS provider (scripts/fixtures/fips-provider.sh) loaded into Debian 12's libcrypto.
@Suite(.serialized) struct PostTests {
    static let python = "/usr/bin/python3"

    func checks(_ r: Sentinel.Result, target index: Int = 0) -> [String: String] {
        let t = r.report?.targets[index]
        var out: [String: String] = [:]
        for c in t?.post?["checks"]?.arrayValue ?? [] {
            if let n = c["name"]?.stringValue { out[n] = c["status"]?.stringValue }
        }
        return out
    }

    func allErrors(_ r: Sentinel.Result) -> [String] {
        (r.report?.targets ?? []).flatMap { $0.post?["checks"]?.arrayValue ?? [] }
            .flatMap { $0["errors"]?.arrayValue ?? [] }.compactMap(\.stringValue)
    }

    /// The probe the CLI runs: $SENTINEL_PROBE when set (the README's sanitizer commands point it at one
    /// built without sanitizers, whose runtime would otherwise be linked in), else the one beside it.
    static var probe: String {
        ProcessInfo.processInfo.environment["SENTINEL_PROBE"].flatMap { $0.isEmpty ? nil : $0 }
            ?? URL(fileURLWithPath: Sentinel.binary).deletingLastPathComponent().appendingPathComponent("sentinel-probe").path
    }

    /// A probe in `dir` that logs each start (its arguments, one line) to `log`, then execs this build's probe.
    static func loggingProbe(in dir: String) throws -> (path: String, log: String) {
        let real = URL(fileURLWithPath: Sentinel.binary).deletingLastPathComponent().appendingPathComponent("sentinel-probe").path
        let wrapper = dir + "/probe", log = dir + "/starts"
        try "#!/bin/sh\necho \"$*\" >> \(log)\nexec \(real) \"$@\"\n".write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        return (wrapper, log)
    }

    @Test func probeLinksOnlyLibc() throws {
        let probe = Self.probe
        let r = try Sentinel.shell(["readelf", "-d", probe])
        #expect(r.status == 0)
        let needed = r.stdout.split(separator: "\n").filter { $0.contains("(NEEDED)") }
            .compactMap { $0.split(separator: "[").last?.dropLast() }.map(String.init).sorted()
        #expect(!needed.isEmpty)
        #expect(needed.allSatisfy { $0 == "libc.so.6" || $0 == "libdl.so.2" }, "NEEDED: \(needed)")
        let symbols = try Sentinel.shell(["nm", "-D", "--undefined-only", probe])
        #expect(!symbols.stdout.contains("EVP_"), "the probe must not link OpenSSL")
    }

    /// SwiftPM's default RUNPATH $ORIGIN would make the probe's dlopen("libcrypto.so.3") search the
    /// probe's own folder before the service's order; make (build, test, release) links without it.
    @Test func noExecutableSearchesItsOwnFolderForLibraries() throws {
        for exe in [Self.probe, Sentinel.binary] {
            let r = try Sentinel.shell(["readelf", "-d", exe])
            #expect(r.status == 0, "\(exe): \(r.stderr)")
            #expect(!r.stdout.contains("$ORIGIN"), "\(exe) searches its own folder: build with --disable-local-rpath (make does)")
            // The Swift binary's debug build keeps the toolchain's folder.
            if exe == Self.probe { #expect(!r.stdout.contains("PATH)"), "\(exe): \(r.stdout)") }
        }
    }

    @Test func fipsFinePassesEverythingAndBlocksMD5() throws {
        let lab = try FIPSLab()
        defer { lab.remove() }
        let r = try Sentinel.run(["post", "--env", "OPENSSL_CONF=\(lab.fipsConf)", "--env", "OPENSSL_MODULES=\(lab.modules)",
                                  "--expect-fips", "--fips-validations", lab.validations, "--format", "json", "--fail-on", "info"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.codes() == [])
        let c = checks(r)
        for name in ["load", "identity", "config (service)", "config (strict)", "error queue after init", "providers",
                     "fips self-test", "sha-256 known answer", "md5 refused", "drbg", "probe mappings"] {
            #expect(c[name] == "pass", "\(name): \(c[name] ?? "missing")")
        }
        let post = try #require(r.report?.targets.first?.post)
        let md5 = try #require(post["checks"]?.arrayValue?.first { $0["name"] == "md5 refused" })
        #expect((md5["errors"]?.arrayValue ?? []).contains { $0.stringValue?.contains("inner_evp_generic_fetch") == true })
        let sha = try #require(post["checks"]?.arrayValue?.first { $0["name"] == "sha-256 known answer" })
        #expect(sha["summary"]?.stringValue?.contains("served by fips") == true)
        // Text output: one line per check, so a person sees it at a glance.
        let text = try Sentinel.run(["post", "--env", "OPENSSL_CONF=\(lab.fipsConf)", "--env", "OPENSSL_MODULES=\(lab.modules)", "--expect-fips"])
        #expect(text.status == 0)
        #expect(text.stdout.contains("[PASS] fips self-test"))
        #expect(text.stdout.contains("[PASS] md5 refused"))
        #expect(text.stdout.contains("fips (OpenSSL FIPS Provider 3.5"))
    }

    /// The host's FIPS state, read from a test root (this machine's kernel is not in FIPS mode): in every
    /// POST report and the report header; with --expect-fips a host not in FIPS mode is a warning.
    @Test func hostFIPSStateIsReportedAndJudged() throws {
        let lab = try FIPSLab()
        defer { lab.remove() }
        let host = lab.dir + "/host"
        try FileManager.default.createDirectory(atPath: host + "/proc/sys/crypto", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: host + "/etc/crypto-policies", withIntermediateDirectories: true)
        try "0\n".write(toFile: host + "/proc/sys/crypto/fips_enabled", atomically: false, encoding: .utf8)
        try "Linux Kernel Cryptographic API\n".write(toFile: host + "/proc/sys/crypto/fips_name", atomically: false, encoding: .utf8)
        try "6.1.0\n".write(toFile: host + "/proc/sys/crypto/fips_version", atomically: false, encoding: .utf8)
        try "# the system policy\nDEFAULT:SHA1\n".write(toFile: host + "/etc/crypto-policies/config", atomically: false, encoding: .utf8)
        let fips = ["post", "--env", "OPENSSL_CONF=\(lab.fipsConf)", "--env", "OPENSSL_MODULES=\(lab.modules)", "--expect-fips",
                    "--host-root", host, "--fips-validations", lab.validations]
        let off = try Sentinel.run(fips + ["--format", "json", "--fail-on", "info"])
        #expect(off.codes() == ["host-fips-disabled"], "\(off.stdout)")
        #expect(off.status == 1)
        let expected: JSONValue = ["fips_enabled": false, "fips_name": "Linux Kernel Cryptographic API", "fips_version": "6.1.0",
                                   "crypto_policy": "DEFAULT:SHA1"]
        #expect(off.report?.host == expected)
        #expect(off.report?.targets.first?.post?["host"] == expected)
        let text = try Sentinel.run(fips)
        #expect(text.stdout.contains("host FIPS mode: off (Linux Kernel Cryptographic API 6.1.0, crypto-policies DEFAULT:SHA1)"), "\(text.stdout)")
        // Turned off: the state is still shown, nothing is reported.
        let unchecked = try Sentinel.run(fips + ["--no-host-fips-check", "--format", "json", "--fail-on", "info"])
        #expect(unchecked.codes() == [] && unchecked.report?.host == expected, "\(unchecked.stdout)")
        // A host in FIPS mode passes; without --expect-fips the state is only shown.
        try "1\n".write(toFile: host + "/proc/sys/crypto/fips_enabled", atomically: false, encoding: .utf8)
        #expect(try Sentinel.run(fips + ["--format", "json", "--fail-on", "info"]).codes() == [])
        try "0\n".write(toFile: host + "/proc/sys/crypto/fips_enabled", atomically: false, encoding: .utf8)
        let plain = try Sentinel.run(["post", "--host-root", host, "--format", "json"])
        #expect(!plain.codes().contains("host-fips-disabled") && plain.report?.host?["fips_enabled"] == .bool(false))
    }

    @Test func includeTypoIsAConfigErrorWhileTheServiceKeepsRunning() throws {
        let lab = try FIPSLab()
        defer { lab.remove() }
        let service = try Service([Self.python, "-c", "import ssl, hashlib, time; hashlib.sha256(b'x'); time.sleep(120)"],
                                  environment: ["OPENSSL_CONF": lab.typoConf, "OPENSSL_MODULES": lab.modules, "NOTIFY_SOCKET": "/run/nothing"])
        defer { service.stop() }
        #expect(service.waitForLibcrypto())
        let r = try Sentinel.run(["post", "--pid", String(service.pid), "--expect-fips", "--format", "json"])
        #expect(r.status == 1)
        #expect(r.codes().contains("post-config-error"))
        #expect(r.codes().contains("post-fips-not-active"))
        let config = try #require(r.findings(.postConfigError).first)
        let errors = (config.evidence["errors"]?.arrayValue ?? []).compactMap(\.stringValue)
        #expect(errors.contains { $0.contains("fipsmodle.cnf") && $0.contains("conf_def.c:") }, "\(errors)")
        #expect(checks(r)["config (service)"] == "pass")  // the service's own (lenient) load "succeeds"
        #expect(service.isRunning, "a real service with that config keeps running")
        #expect(r.report?.targets.first?.environment["OPENSSL_CONF"] == lab.typoConf)
        #expect(r.report?.targets.first?.environment["NOTIFY_SOCKET"] == nil)
    }

    @Test func corruptedFipsModuleFailsTheSelfTest() throws {
        let lab = try FIPSLab()
        defer { lab.remove() }
        try lab.corruptModule()
        let r = try Sentinel.run(["post", "--env", "OPENSSL_CONF=\(lab.fipsConf)", "--env", "OPENSSL_MODULES=\(lab.modules)",
                                  "--expect-fips", "--format", "json"])
        #expect(r.status == 1)
        let f = try #require(r.findings(.postSelfTestFailed).first)
        #expect(f.severity == .critical)
        #expect((f.evidence["failed_tests"]?.arrayValue ?? []).contains { $0.stringValue?.contains("Module_Integrity") == true })
        #expect(checks(r)["fips self-test"] == "fail")
    }

    @Test func modulesFolderWithoutFipsFailsTheDRBGWithTheRealStrings() throws {
        let lab = try FIPSLab()
        defer { lab.remove() }
        let r = try Sentinel.run(["post", "--env", "OPENSSL_CONF=\(lab.fipsConf)", "--env", "OPENSSL_MODULES=\(lab.emptyModules)",
                                  "--expect-fips", "--format", "json"])
        #expect(r.status == 1)
        let codes = r.codes()
        #expect(codes.contains("post-drbg-failed") || codes.contains("post-fips-not-active"))
        #expect(codes.contains("post-drbg-failed"))
        let drbg = try #require(r.findings(.postDRBGFailed).first)
        let strings = (drbg.evidence["errors"]?.arrayValue ?? []).compactMap(\.stringValue)
        #expect(strings.contains { $0.contains("unable to fetch drbg") })
        #expect(strings.contains { $0.contains("unsupported") })
    }

    @Test func noFipsConfigWithExpectFipsAllowsMD5() throws {
        let lab = try FIPSLab()
        defer { lab.remove() }
        let r = try Sentinel.run(["post", "--env", "OPENSSL_CONF=\(lab.plainConf)", "--expect-fips", "--format", "json"])
        #expect(r.status == 1)
        #expect(r.codes().contains("post-unapproved-allowed"))
        #expect(r.codes().contains("post-fips-not-active"))
        #expect(r.findings(.postUnapprovedAllowed).first?.evidence["md5_provider"]?.stringValue == "default")
    }

    @Test func plainSystemOpenSSLPassesWithoutExpectFips() throws {
        let r = try Sentinel.run(["post", "--format", "json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.codes().allSatisfy { $0 == "post-init-error-queue" || $0 == "trust-store-missing" })
        let lib = r.report?.targets.first?.post?["library"]
        #expect(lib?["path"]?.stringValue?.hasSuffix("libcrypto.so.3") == true)
        #expect(lib?["version"]?.stringValue?.hasPrefix("OpenSSL 3.") == true)
        #expect(checks(r)["md5 refused"] == "info")
    }

    @Test func hangingLibcryptoTimesOutAndIsKilled() throws {
        let lib = try Fixtures.postLib("hang")
        let start = Date()
        let r = try Sentinel.run(["post", "--libcrypto", lib, "--timeout", "1", "--format", "json"])
        #expect(Date().timeIntervalSince(start) < 8)
        #expect(r.status == 1)
        let f = try #require(r.findings(.postTimeout).first)
        #expect(f.evidence["stage"]?.stringValue == "identity")
        // Only the probe this build's CLI runs: other checkouts on the machine run the same fixture library.
        let left = try Sentinel.shell(["pgrep", "-f", "^\(Self.probe) .*\(lib)"])
        #expect(left.stdout.isEmpty, "a probe survived: \(left.stdout)")

        // Several libcrypto run side by side: a hanging one neither delays nor spoils a good one.
        let both = Date()
        let mixed = try Sentinel.run(["post", "--libcrypto", lib, "--libcrypto", "libcrypto.so.3", "--timeout", "2", "--format", "json"])
        #expect(Date().timeIntervalSince(both) < 6)
        let targets = mixed.report?.targets ?? []
        #expect(targets.count == 2)
        #expect(targets.first?.findings.map(\.code) == [.postTimeout])
        #expect(targets.last?.findings.contains { $0.code == .postTimeout || $0.code == .postCrashed } == false)
        #expect(checks(mixed, target: 1)["sha-256 known answer"] == "pass")
    }

    @Test func crashingOrGarbageLibcryptoIsPostCrashed() throws {
        let crash = try Sentinel.run(["post", "--libcrypto", try Fixtures.postLib("crash"), "--format", "json"])
        #expect(crash.status == 1)
        #expect(crash.codes() == ["post-crashed"])
        #expect(crash.findings(.postCrashed).first?.evidence["signal"] == .int(11))
        let garbage = try Sentinel.run(["post", "--libcrypto", try Fixtures.postLib("garbage"), "--format", "json"])
        #expect(garbage.codes() == ["post-crashed"])
        // What the library printed is not the probe's: it is never copied into the report.
        #expect(garbage.findings(.postCrashed).first?.evidence["stdout_tail"] == nil)
        #expect(!garbage.stdout.contains("this is not JSON"))
    }

    @Test func probeRunsAsTheNonRootServiceUser() throws {
        let lab = try FIPSLab()
        defer { lab.remove() }
        let service = try Service([Self.python, "-c", "import ssl, time; time.sleep(120)"],
                                  environment: ["OPENSSL_CONF": lab.fipsConf, "OPENSSL_MODULES": lab.modules, "WATCHDOG_USEC": "1000000"],
                                  user: "nobody", cwd: lab.dir)
        defer { service.stop() }
        #expect(service.waitForLibcrypto())
        let r = try Sentinel.run(["post", "--pid", String(service.pid), "--expect-fips", "--format", "json",
                                  "--command", "/bin/sh", "-c", "id -u; id -G; pwd; env | grep -c -E '^(NOTIFY_SOCKET|WATCHDOG_)' ; exit 0"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let lib = r.report?.targets.first?.post?["library"]
        #expect(lib?["child_uid"] == .int(65534))
        #expect(lib?["child_gid"] == .int(65534))
        #expect(lib?["child_cwd"]?.stringValue == lab.dir)
        #expect(checks(r)["fips self-test"] == "pass")
        // --command as the same user: exits 0; a failing one is post-command-failed with its output tail.
        let failing = try Sentinel.run(["post", "--pid", String(service.pid), "--libcrypto", "libcrypto.so.3", "--format", "json",
                                        "--command", "/bin/sh", "-c", "echo uid=$(id -u) groups=$(id -G) env=$(env | grep -c -E '^(NOTIFY_SOCKET|WATCHDOG_)'); exit 3"])
        #expect(failing.status == 1)
        let f = try #require(failing.findings(.postCommandFailed).first)
        #expect(f.evidence["output_tail"]?.stringValue == "uid=65534 groups=65534 env=0")
        #expect(f.summary.contains("exited with status 3"))
    }

    @Test func theServicesLoaderVariablesNeverReachARootProcess() throws {
        let spy = URL(fileURLWithPath: try Fixtures.postLib("hang")).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("preloadspy.so").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-spy-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        chmod(dir, 0o777)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/spy.log"
        let service = try Service([Self.python, "-c", "import ssl, time; time.sleep(120)"],
                                  environment: ["LD_PRELOAD": spy, "SPY_LOG": log], user: "nobody")
        defer { service.stop() }
        #expect(service.waitForLibcrypto())
        let r = try Sentinel.run(["post", "--pid", String(service.pid), "--format", "json", "--command", "/bin/true"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let lines = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
        // The service itself, the probe's stage 2 and the command load it: always as nobody.
        #expect(lines.count >= 3, "\(lines)")
        #expect(lines.allSatisfy { $0 == "uid=65534" }, "LD_PRELOAD ran as: \(lines)")
    }

    @Test func splitBundleRunsOncePerLibcrypto() throws {
        let root = try Fixtures.cxfreeze("debian")
        let service = try Service([root + "/app", "--serve"], environment: ["PATH": "/usr/bin:/bin"], cwd: root)
        defer { service.stop() }
        #expect(service.waitForLibcrypto(count: 2))
        let r = try Sentinel.run(["post", "--pid", String(service.pid), "--format", "json", "--fail-on", "critical"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let targets = r.report?.targets ?? []
        #expect(targets.count == 2)
        let paths = targets.compactMap { $0.post?["library"]?["path"]?.stringValue }
        #expect(paths.contains { $0.hasPrefix(root + "/lib/libcrypto-") })
        #expect(paths.contains("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"))
        let versions = Set(targets.compactMap { $0.post?["library"]?["version"]?.stringValue })
        #expect(versions.count == 2, "two OpenSSL builds: \(versions)")
        for i in targets.indices { #expect(checks(r, target: i)["sha-256 known answer"] == "pass") }
    }

    @Test func envFileIsTheConfiguredEnvironmentWhenTheServiceIsDown() throws {
        let lab = try FIPSLab()
        defer { lab.remove() }
        let file = lab.dir + "/service.env"
        try """
            # what the unit's EnvironmentFile= holds
            OPENSSL_CONF=\(lab.fipsConf)
            export OPENSSL_MODULES="\(lab.modules)"
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let r = try Sentinel.run(["post", "--env-file", file, "--expect-fips", "--format", "json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.report?.targets.first?.environment == ["OPENSSL_CONF": lab.fipsConf, "OPENSSL_MODULES": lab.modules])
        #expect(checks(r)["providers"] == "pass")
        // --env wins over the file: the same file with the modules folder emptied fails.
        let over = try Sentinel.run(["post", "--env-file", file, "--env", "OPENSSL_MODULES=\(lab.emptyModules)", "--expect-fips", "--format", "json"])
        #expect(over.status == 1)
        #expect(over.findings(.postFIPSNotActive).first?.summary.contains("no fips.so in \(lab.emptyModules)") == true)
        let missing = try Sentinel.run(["post", "--env-file", lab.dir + "/nope.env"])
        #expect(missing.status == 2 && missing.stderr.contains("nope.env: No such file or directory"), "\(missing.stderr)")
        // Unreadable for its user: the reason, not just "cannot read".
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        let denied = try Sentinel.run(["post", "--env-file", file], as: "65534")
        #expect(denied.status == 2 && denied.stderr.contains("service.env: Permission denied"), "\(denied.stderr)")
    }

    @Test func deletedLibcryptoIsTestedFromWhatTheServiceMaps() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-del-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lib = dir + "/libcrypto.so.3"
        try FileManager.default.copyItem(atPath: "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", toPath: lib)
        let service = try Service([Self.python, "-c", "import ctypes, os, time; ctypes.CDLL('\(lib)'); os.remove('\(lib)'); time.sleep(120)"],
                                  environment: [:])
        defer { service.stop() }
        #expect(service.waitForLibcrypto())
        usleep(300_000)  // the os.remove
        let r = try Sentinel.run(["post", "--pid", String(service.pid), "--format", "json"])
        let deleted = try #require(r.findings(.processDeletedLibrary).first)
        #expect(deleted.evidence["path"]?.stringValue == lib + " (deleted)")
        #expect(checks(r)["sha-256 known answer"] == "pass")  // the POST ran on the mapped content
        #expect(r.report?.targets.first?.post?["library"]?["version"]?.stringValue?.hasPrefix("OpenSSL 3.0") == true)
        #expect(deleted.evidence["mapped_range"]?.stringValue != nil, "loaded from the mapping itself, not a copy")
    }

    @Test func libcryptoUnderAnotherNameIsFoundByContent() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-renamed-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lib = dir + "/libvendorcrypt.so"
        try FileManager.default.copyItem(atPath: "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", toPath: lib)
        _ = try Sentinel.shell(["chmod", "-R", "a+rX", dir])
        let service = try Service([Self.python, "-c", "import ctypes, time; ctypes.CDLL('\(lib)'); print('up', flush=True); time.sleep(120)"],
                                  environment: [:])
        defer { service.stop() }
        let deadline = Date().addingTimeInterval(20)
        var mapped = false
        while Date() < deadline, !mapped {
            let maps = FileHandle(forReadingAtPath: "/proc/\(service.pid)/maps")?.readDataToEndOfFile() ?? Data()
            mapped = String(decoding: maps, as: UTF8.self).contains(lib)
            usleep(50_000)
        }
        #expect(mapped)
        let r = try Sentinel.run(["post", "--pid", String(service.pid), "--format", "json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let paths = (r.report?.targets ?? []).compactMap { $0.post?["library"]?["path"]?.stringValue }
        #expect(paths == [lib], "the renamed libcrypto is recognised by content, not by name: \(paths)")
    }

    /// A simple command line is read without ArgumentParser (PostRequest(simpleCommandLine:)); the
    /// same request spelled `--option=value` goes through ArgumentParser. Both must POST alike, and a
    /// bad value on a simple line must still get ArgumentParser's message and exit 2.
    @Test func theSimpleCommandLineReaderAgreesWithArgumentParser() throws {
        let fast = try Sentinel.run(["post", "--libcrypto", "libcrypto.so.3", "--name", "sys", "--expect-fips",
                                     "--timeout", "20", "--format", "json", "--fail-on", "critical"])
        let parsed = try Sentinel.run(["post", "--libcrypto=libcrypto.so.3", "--name=sys", "--expect-fips",
                                       "--timeout=20", "--format=json", "--fail-on=critical"])
        #expect(fast.status == 1 && parsed.status == 1, "\(fast.stderr) \(parsed.stderr)")
        func summary(_ r: Sentinel.Result) -> [String] {
            (r.report?.targets ?? []).map { t in
                let checks = (t.post?["checks"]?.arrayValue ?? []).map { "\($0["name"]?.stringValue ?? "?")=\($0["status"]?.stringValue ?? "?")" }
                return "\(t.name): \(t.findings.map(\.code.rawValue).sorted()) \(checks)"
            }
        }
        #expect(!summary(fast).isEmpty && summary(fast) == summary(parsed), "\(summary(fast)) vs \(summary(parsed))")
        // Under --expect-fips the system OpenSSL (no fips provider) fails: critical, so exit 1 above.
        #expect(summary(fast).first?.contains("post-fips-not-active") == true, "\(summary(fast))")

        for (bad, message) in [(["--format", "yaml"], "yaml"), (["--fail-on", "never"], "never"),
                               (["--timeout", "0"], "--timeout must be positive"), (["--timeout", "-1"], "--timeout must be positive"),
                               // Past UInt64 nanoseconds: trapped (SIGILL) in the runner before it was refused here.
                               (["--timeout", "1e999"], "at most 3600 seconds"), (["--timeout", "2e10"], "at most 3600 seconds"),
                               (["--env", "NOEQUALS"], "KEY=VALUE"),
                               (["--name", "a", "--name", "b", "--bogus"], "--bogus")] {
            let r = try Sentinel.run(["post", "--libcrypto", "libcrypto.so.3"] + bad)
            #expect(r.status == 2, "\(bad): \(r.stderr)")
            #expect(r.stderr.contains(message) && r.stdout.isEmpty, "\(bad): \(r.stderr)")
        }
    }

    @Test func usageErrorsExit2() throws {
        let missing = try Sentinel.run(["post", "--libcrypto", "/nonexistent/libcrypto.so.3"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("no such file"))
        let badEnv = try Sentinel.run(["post", "--env", "NOEQUALS"])
        #expect(badEnv.status == 2)
        let noPid = try Sentinel.run(["post", "--pid", "999999999"])
        #expect(noPid.status == 2)
    }

    @Test func unresolvableSonameIsOpensslUnresolved() throws {
        let r = try Sentinel.run(["post", "--libcrypto", "libcrypto-deadbeef.so.3", "--format", "json"])
        #expect(r.status == 1)
        #expect(r.codes() == ["openssl-unresolved"])
        #expect(r.findings(.opensslUnresolved).first?.evidence["dlerror"]?.stringValue?.contains("cannot open shared object file") == true)
    }
}
