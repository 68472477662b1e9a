import Testing
@testable import SentinelCore
@testable import SentinelSystem

/// The pure decision logic of `post`: probe documents (as sentinel-probe prints them) to checks and findings.
@Suite("post analysis")
struct PostAnalysisTests {
    /// A probe document for a healthy FIPS run; `edit` changes one check.
    static func doc(_ edit: (inout [String: JSONValue]) -> Void = { _ in }) -> JSONValue {
        var checks: [String: JSONValue] = [
            "identity": ["name": "identity", "status": "pass", "version": "OpenSSL 3.0.22 25 Aug 2026",
                         "openssldir_path": "/usr/lib/ssl", "modulesdir_path": "/usr/lib/x86_64-linux-gnu/ossl-modules"],
            "self_test_callback": ["name": "self_test_callback", "status": "pass"],
            "config_service": ["name": "config_service", "status": "pass", "file": "/etc/f.cnf", "return": 1, "exists": true],
            "init_error_queue": ["name": "init_error_queue", "status": "pass", "errors": [], "count": 0],
            "config_strict": ["name": "config_strict", "status": "pass", "errors": [], "return": 1],
            "providers": ["name": "providers", "status": "pass", "providers": [
                ["config_name": "fips", "name": "OpenSSL FIPS Provider", "version": "3.1.2", "status": 1, "fips": true],
                ["config_name": "base", "name": "OpenSSL Base Provider", "version": "3.0.22", "status": 1, "fips": false],
            ], "default_properties_fips": true],
            "self_test": ["name": "self_test", "status": "pass", "return": 1, "failed_tests": [], "integrity_passes": 2],
            "fips_module_config": ["name": "fips_module_config", "status": "info", "section": "fips_sect",
                                   "provider_params": ["security-checks": 1, "tls1-prf-ems-check": 0],
                                   "options": [["name": "activate", "value": "1", "file": "/m/fipsmodule.cnf", "line": 2],
                                               ["name": "conditional-errors", "value": "1", "file": "/m/fipsmodule.cnf", "line": 3],
                                               ["name": "module-mac", "value": "(present)", "file": "/m/fipsmodule.cnf", "line": 4]]],
            "sha256": ["name": "sha256", "status": "pass", "digest": .string(PostAnalysis.sha256OfABC), "provider": "fips"],
            "md5": ["name": "md5", "status": "info", "allowed": false,
                    "errors": ["error:0308010C:digital envelope routines::unsupported:../crypto/evp/evp_fetch.c:386:inner_evp_generic_fetch:x  "]],
            "drbg": ["name": "drbg", "status": "pass", "rand_bytes": 1, "state": 1, "algorithm": "CTR-DRBG", "provider": "fips"],
            "trust": ["name": "trust", "status": "info", "compiled_file": ["path": "/usr/lib/ssl/cert.pem", "exists": true, "certificates": 140]],
            "maps": ["name": "maps", "status": "info", "libcrypto": ["/usr/lib/x86_64-linux-gnu/libcrypto.so.3"],
                     "fips_module": "/m/fips.so", "fips_from_expected_dir": true],
        ]
        edit(&checks)
        let order = ["identity", "self_test_callback", "config_service", "init_error_queue", "config_strict", "providers",
                     "self_test", "fips_module_config", "sha256", "md5", "drbg", "operations", "trust", "maps"]
        return ["probe": 1, "load": ["ok": true, "path": "/lib/x86_64-linux-gnu/libcrypto.so.3",
                                     "realpath": "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"],
                "uid": 0, "gid": 0, "checks": .array(order.compactMap { checks[$0] })]
    }

    static func analyze(_ doc: JSONValue, expectFIPS: Bool = true) -> PostAnalysis.Result {
        analyze(doc, policy: PostPolicy(expectFIPS: expectFIPS, today: "2026-12-07"))
    }

    static func analyze(_ doc: JSONValue, policy: PostPolicy) -> PostAnalysis.Result {
        PostAnalysis.analyze(PostRun(library: "libcrypto.so.3", outcome: .exited(status: 0, result: doc)), target: "svc", policy: policy)
    }

    static func set(_ c: inout [String: JSONValue], _ name: String, _ key: String, _ value: JSONValue) {
        guard case .object(var o)? = c[name] else { return }
        o[key] = value
        c[name] = .object(o)
    }

    @Test func healthyFipsRunHasNoFindingsAndEveryCheckPasses() {
        let r = Self.analyze(Self.doc())
        #expect(r.findings.isEmpty)
        #expect(r.checks.allSatisfy { $0.status == .pass }, "\(r.checks.filter { $0.status != .pass })")
        var withAPI = Self.doc()
        if case .object(var o) = withAPI {
            o["api"] = ["OSSL_PROVIDER_load_ex": ["since": "3.2", "present": true], "EVP_get1_default_properties": ["since": "3.5", "present": false]]
            withAPI = .object(o)
        }
        let api = Self.analyze(withAPI).checks.first { $0.name == "newer APIs" }
        #expect(api?.status == .info)
        #expect(api?.summary == "present: OSSL_PROVIDER_load_ex (3.2); absent: EVP_get1_default_properties (3.5)")
        #expect(r.checks.first { $0.name == "md5 refused" }?.errors.first?.hasSuffix("x") == true)  // trailing blanks trimmed
        #expect(r.library["path"]?.stringValue == "/usr/lib/x86_64-linux-gnu/libcrypto.so.3")
    }

    @Test func md5AllowedIsOnlyAFindingWhenFipsIsExpected() {
        let d = Self.doc { Self.set(&$0, "md5", "allowed", true); Self.set(&$0, "md5", "provider", "default") }
        #expect(Self.analyze(d).findings.map(\.code) == [.postUnapprovedAllowed])
        let plain = Self.analyze(d, expectFIPS: false)
        #expect(plain.findings.isEmpty)
        #expect(plain.checks.first { $0.name == "md5 refused" }?.status == .info)
    }

    @Test func strictConfigFailureAndMissingFipsGiveBothFindings() {
        let d = Self.doc {
            Self.set(&$0, "config_strict", "status", "fail")
            Self.set(&$0, "config_strict", "errors", ["error:80000002:system library::No such file or directory:conf_def.c:821:process_include:calling stat(/x.cnf)"])
            Self.set(&$0, "providers", "providers", [["config_name": "default", "name": "OpenSSL Default Provider", "status": 1, "fips": false]])
        }
        let r = Self.analyze(d)
        #expect(Set(r.findings.map(\.code)) == [.postConfigError, .postFIPSNotActive])
        let config = r.findings.first { $0.code == .postConfigError }
        #expect(config?.summary.contains("conf_def.c:821") == true)
        #expect(r.findings.first { $0.code == .postFIPSNotActive }?.summary.contains("strict load") == true)
        // Without --expect-fips, only the config error remains.
        #expect(Self.analyze(d, expectFIPS: false).findings.map(\.code) == [.postConfigError])
    }

    @Test func inactiveFipsProviderIsNotActive() {
        let d = Self.doc { Self.set(&$0, "providers", "providers", [["config_name": "fips", "name": "OpenSSL FIPS Provider", "status": 0, "fips": true]]) }
        #expect(Self.analyze(d).findings.map(\.code) == [.postFIPSNotActive])
    }

    @Test func selfTestFailuresFromTheCallbackCountEvenWhenTheProviderNeverLoaded() {
        let d = Self.doc {
            Self.set(&$0, "self_test", "status", "skip")
            Self.set(&$0, "self_test", "failed_tests", ["Module_Integrity: HMAC"])
            Self.set(&$0, "providers", "providers", [])
        }
        let r = Self.analyze(d)
        #expect(r.findings.map(\.code).contains(.postSelfTestFailed))
        #expect(r.findings.first { $0.code == .postSelfTestFailed }?.summary.contains("Module_Integrity") == true)
    }

    @Test func wrongDigestAndDrbgFailure() {
        let d = Self.doc {
            Self.set(&$0, "sha256", "digest", "00")
            Self.set(&$0, "drbg", "status", "fail")
            Self.set(&$0, "drbg", "rand_bytes", 0)
            Self.set(&$0, "drbg", "errors", ["error:0308010C:digital envelope routines::unsupported:x", "error:12000090:random number generator::unable to fetch drbg:rand_lib.c:578:rand_new_drbg"])
        }
        let r = Self.analyze(d)
        #expect(Set(r.findings.map(\.code)) == [.postApprovedFailed, .postDRBGFailed])
        #expect(r.findings.first { $0.code == .postDRBGFailed }?.summary.contains("unable to fetch drbg") == true)
    }

    @Test func initErrorQueueAndTrustAndMappings() {
        let d = Self.doc {
            Self.set(&$0, "init_error_queue", "errors", ["error:12800067:DSO support routines::could not load the shared library:dso_dlfcn.c:118"])
            Self.set(&$0, "trust", "compiled_file", ["path": "/opt/_internal/ssl/cert.pem", "exists": false])
            Self.set(&$0, "maps", "libcrypto", ["/a/libcrypto.so.3", "/b/libcrypto-1234abcd.so.3"])
        }
        let codes = Set(Self.analyze(d).findings.map(\.code))
        #expect(codes == [.postInitErrorQueue, .trustStoreMissing, .processSplitLibcrypto])
    }

    @Test func loadFailureIsUnresolved() {
        let d: JSONValue = ["probe": 1, "load": ["ok": false, "error": "libcrypto-x.so.3: cannot open shared object file: No such file or directory"]]
        let r = Self.analyze(d)
        #expect(r.findings.map(\.code) == [.opensslUnresolved])
        #expect(r.checks.map(\.status) == [.fail])
    }

    @Test func crashesTimeoutsAndGarbage() {
        let stderr = "sentinel-probe: stage dlopen\nsentinel-probe: stage identity"
        let crash = PostAnalysis.analyze(PostRun(library: "/x/libcrypto.so.3", outcome: .signaled(11), stderrTail: stderr), target: "t", policy: PostPolicy(expectFIPS: true))
        #expect(crash.findings.map(\.code) == [.postCrashed])
        #expect(crash.findings.first?.summary.contains("SIGSEGV") == true)
        #expect(crash.findings.first?.evidence["stage"] == "identity")
        let hang = PostAnalysis.analyze(PostRun(library: "/x/libcrypto.so.3", outcome: .timedOut(seconds: 10), stderrTail: stderr), target: "t", policy: PostPolicy(expectFIPS: false))
        #expect(hang.findings.map(\.code) == [.postTimeout])
        #expect(hang.findings.first?.summary.contains("within 10 s") == true)
        let garbage = PostAnalysis.analyze(PostRun(library: "l", outcome: .exited(status: 0, result: ["x": 1])), target: "t", policy: PostPolicy(expectFIPS: false))
        #expect(garbage.findings.map(\.code) == [.postCrashed])
    }

    @Test func commandFinding() {
        #expect(PostAnalysis.commandFinding(argv: ["/bin/true"], outcome: .exited(status: 0, result: nil), outputTail: "", target: "t") == nil)
        let f = PostAnalysis.commandFinding(argv: ["/opt/p/fips-post", "--quick"], outcome: .exited(status: 3, result: nil), outputTail: "KAT failed", target: "t")
        #expect(f?.code == .postCommandFailed)
        #expect(f?.evidence["output_tail"] == "KAT failed")
        #expect(PostAnalysis.commandFinding(argv: ["x"], outcome: .timedOut(seconds: 2.5), outputTail: "", target: "t")?.summary.contains("2.5 s") == true)
    }

    @Test func envFileParsing() {
        let parsed = EnvFile.parse("""
            # comment
            ; also a comment
            OPENSSL_CONF=/etc/ssl/fips.cnf
            export OPENSSL_MODULES="/opt/p/ossl-modules"
              SSL_CERT_FILE = '/etc/ssl/certs/ca.pem'
            =novalue
            EMPTY=
            """)
        #expect(parsed.map(\.0) == ["OPENSSL_CONF", "OPENSSL_MODULES", "SSL_CERT_FILE", "EMPTY"])
        #expect(parsed.map(\.1) == ["/etc/ssl/fips.cnf", "/opt/p/ossl-modules", "/etc/ssl/certs/ca.pem", ""])
    }

    @Test func procParsing() throws {
        // The one environ parser: first definition wins (as getenv), entries without a name or '=' dropped.
        let env = TargetEnvironment.parse(environ: Array("A=1\0B=x=y\0A=2\0=bad\0NOEQ\0".utf8))
        #expect(env == ["A": "1", "B": "x=y"])
        let text = Array("Name:\tpython3\nUid:\t998\t998\t998\t998\nGid:\t997\t997\t997\t997\nGroups:\t\nSeccomp:\t2\n".utf8)
        let status = ProcStatus.parse(text, throughSeccomp: true)
        #expect(status.credentials?.uid == 998 && status.credentials?.gid == 997 && status.seccomp == 2)
        #expect(ProcStatus.parse(text).seccomp == nil, "inspect stops at Groups")
    }

    @Test func childEnvironmentDropsSystemdVariables() {
        let env = PostRunner.childEnvironment(["NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "2",
                                               "OPENSSL_CONF": "/c", "SECRET": "s"])
        #expect(env == ["OPENSSL_CONF": "/c", "SECRET": "s"])
    }

    /// The product's operations: a required one refused, a forbidden one allowed (critical only under
    /// FIPS), the indicator read only where the API exists and the fips provider is active.
    @Test func requiredAndForbiddenOperations() {
        let d = Self.doc { c in
            c["operations"] = ["name": "operations", "status": "info", "indicator_api": true, "results": [
                ["op": "x509-sign-sha1", "status": "refused", "indicator_events": 0, "indicator": [],
                 "errors": ["error:1C80007A:Provider routines::invalid digest:x:129:ossl_fips_ind_digest_sign_check"]],
                ["op": "rsa2048-sign-sha1", "status": "pass", "indicator_events": 1, "indicator": ["RSA Digest Sign Init: Digest SHA1"], "errors": []],
                ["op": "md5", "status": "pass", "indicator_events": 0, "indicator": [], "errors": []],
                ["op": "aes-256-gcm", "status": "pass", "indicator_events": 0, "indicator": [], "errors": []],
            ]]
        }
        let policy = PostPolicy(expectFIPS: true, require: ["x509-sign-sha1", "rsa2048-sign-sha1", "aes-256-gcm"], forbid: ["md5"], today: "2026-12-07")
        let r = Self.analyze(d, policy: policy)
        let refused = r.findings.filter { $0.code == .postRequiredRefused }
        #expect(refused.count == 1 && refused.first?.subject == "libcrypto.so.3 x509-sign-sha1")
        #expect(refused.first?.summary.contains("invalid digest") == true)
        let allowed = r.findings.filter { $0.code == .postForbiddenAllowed }
        #expect(allowed.count == 1 && allowed.first?.severity == .critical && allowed.first?.subject == "libcrypto.so.3 md5")
        #expect(r.checks.first { $0.name == "require rsa2048-sign-sha1" }?.summary
                == "performed, correct result; FIPS indicator: not approved (RSA Digest Sign Init: Digest SHA1)")
        #expect(r.checks.first { $0.name == "require aes-256-gcm" }?.summary == "performed, correct result; FIPS indicator: approved")
        var plain = policy
        plain.expectFIPS = false
        #expect(Self.analyze(d, policy: plain).findings.first { $0.code == .postForbiddenAllowed }?.severity == .error)
        // No operations asked: none judged, whatever the probe printed.
        #expect(!Self.analyze(d).checks.contains { $0.name.hasPrefix("require ") || $0.name.hasPrefix("forbid ") })
    }

    @Test func relaxedModuleSectionAndValidation() {
        let d = Self.doc { c in
            Self.set(&c, "fips_module_config", "options", [
                ["name": "conditional-errors", "value": "0", "file": "/m/fipsmodule.cnf", "line": 4],
                ["name": "security-checks", "value": " 0", "file": "/m/fipsmodule.cnf", "line": 5],
                ["name": "tdes-encrypt-disabled", "value": "0", "file": "/m/fipsmodule.cnf", "line": 6],
                ["name": "signature-digest-check", "value": "0", "file": "/m/fipsmodule.cnf", "line": 7],
                ["name": "hmac-key-check", "value": "1", "file": "/m/fipsmodule.cnf", "line": 8],
                ["name": "module-mac", "value": "(present)", "file": "/m/fipsmodule.cnf", "line": 9]])
        }
        let r = Self.analyze(d)
        let relaxed = r.findings.filter { $0.code == .fipsConfigRelaxed }
        #expect(relaxed.count == 1)
        #expect(relaxed.first?.summary == "the fips module section [fips_sect] weakens the module: conditional-errors = 0 (/m/fipsmodule.cnf:4), security-checks = 0 (/m/fipsmodule.cnf:5), signature-digest-check = 0 (/m/fipsmodule.cnf:7)")
        // 3.0.9 holds #4282, historical since 2026-09-22: info under FIPS, nothing without.
        let old = Self.doc { c in
            Self.set(&c, "providers", "providers", [["config_name": "fips", "name": "OpenSSL FIPS Provider", "version": "3.0.9", "status": 1, "fips": true]])
        }
        #expect(Self.analyze(old).findings.map(\.code) == [.fipsCertificateHistorical])
        #expect(Self.analyze(old, expectFIPS: false).findings.isEmpty)
    }
}

@Suite("strict JSON")
struct StrictJSONTests {
    @Test func parsesWhatTheProbePrints() {
        let text = #"{"probe":1,"s":"a\"b\\c\nd\u0001\u00e9\ud83d\ude00","n":-42,"f":1.5,"t":true,"x":false,"z":null,"a":[],"o":{},"l":[1,[2,{"k":"v"}]]}"# + "\n"
        let v = StrictJSON.parse(Array(text.utf8))
        #expect(v?["probe"] == .int(1))
        #expect(v?["s"] == .string("a\"b\\c\nd\u{1}é😀"))
        #expect(v?["n"] == .int(-42))
        #expect(v?["f"] == .string("1.5"))
        #expect(v?["t"] == .bool(true) && v?["x"] == .bool(false) && v?["z"] == .null)
        #expect(v?["a"] == .array([]) && v?["o"] == .object([:]))
        #expect(v?["l"]?.arrayValue?.last?.arrayValue?.last?["k"] == "v")
    }

    @Test func rejectsGarbage() {
        for bad in ["", "this is not JSON", "{\"a\":1", "{\"a\":1}x", "[1,]", "{\"a\" 1}", "\"unterminated", "tru", "{\"a\":\"\u{1}\"}", "-", "1.", "\"\\q\""] {
            #expect(StrictJSON.parse(Array(bad.utf8)) == nil, "\(bad)")
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(StrictJSON.parse(Array(deep.utf8)) == nil)
    }

    @Test func agreesWithTheRealProbeOutputShape() {
        let line = #"{"probe":1,"load":{"ok":true,"path":"/lib/x86_64-linux-gnu/libcrypto.so.3"},"checks":[{"name":"md5","allowed":false,"errors":["error:0308010C:digital envelope routines::unsupported:../crypto/evp/evp_fetch.c:386:inner_evp_generic_fetch:Global default library context, Algorithm (MD5 : 101), Properties (<null>)"]}],"elapsed_ms":3}"#
        let v = StrictJSON.parse(Array(line.utf8))
        #expect(v?["load"]?["ok"] == .bool(true))
        #expect(v?["checks"]?.arrayValue?.first?["errors"]?.arrayValue?.count == 1)
    }
}
