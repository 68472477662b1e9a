/// How one POST child ended, as the runner saw it (pure data; the runner lives in SentinelSystem).
public enum PostOutcome: Sendable, Hashable {
    /// Exited normally; `result` is the probe's JSON document when stdout held one (nil: garbage).
    case exited(status: Int32, result: JSONValue?)
    case signaled(Int32)
    case timedOut(seconds: Double)
}

public struct PostRun: Sendable, Hashable {
    /// The libcrypto the probe was told to load (an absolute path or a soname).
    public var library: String
    public var outcome: PostOutcome
    /// The last lines of the child's stderr (the probe writes "stage NAME" there).
    public var stderrTail: String
    public var elapsedMs: Int
    public init(library: String, outcome: PostOutcome, stderrTail: String = "", elapsedMs: Int = 0) {
        self.library = library; self.outcome = outcome; self.stderrTail = stderrTail
        self.elapsedMs = elapsedMs
    }
}

/// One line of the POST's check list: what was checked, pass/fail, and the OpenSSL error strings.
public struct PostCheck: Sendable, Hashable {
    public enum Status: String, Sendable { case pass, fail, skip, info }
    public var name: String
    public var status: Status
    public var summary: String
    public var errors: [String]
    public var json: JSONValue {
        ["name": .string(name), "status": .string(status.rawValue), "summary": .string(summary), "errors": JSONValue(errors)]
    }
}

/// What a POST holds the library to, beyond "it works": FIPS, the product's own operations, and the
/// validation data its fips provider is judged against.
public struct PostPolicy: Sendable {
    public var expectFIPS: Bool
    /// Operations the product needs (PostOperations names): refused is post-required-refused.
    public var require: [String]
    /// Operations that must fail: allowed is post-forbidden-allowed.
    public var forbid: [String]
    public var validations: FIPSValidations
    /// YYYY-MM-DD: a certificate past its sunset date counts as historical.
    public var today: String

    public init(expectFIPS: Bool, require: [String] = [], forbid: [String] = [],
                validations: FIPSValidations = .embedded, today: String = "0000-00-00") {
        self.expectFIPS = expectFIPS; self.require = require; self.forbid = forbid
        self.validations = validations; self.today = today
    }

    /// What the probe is asked to perform: the required, then the forbidden, each once.
    public var operations: [String] {
        var seen = Set<String>()
        return (require + forbid).filter { seen.insert($0).inserted }
    }
}

/// Turns the probe's JSON document into checks and findings. Pure: no I/O.
public enum PostAnalysis {
    public static let sha256OfABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

    public struct Result: Sendable {
        public var checks: [PostCheck]
        public var findings: [Finding]
        public var library: JSONValue
    }

    public static func analyze(_ run: PostRun, target: String, policy: PostPolicy) -> Result {
        let tail = ["stderr_tail": JSONValue(run.stderrTail.isEmpty ? nil : run.stderrTail)]
        var evidenceBase: [String: JSONValue] = ["libcrypto": .string(run.library)]
        let stage = lastStage(run.stderrTail).flatMap { $0 == "done" ? nil : $0 }
        func fail(_ code: FindingCode, _ summary: String, _ extra: [String: JSONValue] = [:], fix: [String] = []) -> Finding {
            Finding(code: code, target: target, subject: run.library, summary: summary,
                    evidence: .object(evidenceBase.merging(extra) { _, b in b }), fix: fix)
        }
        switch run.outcome {
        case .timedOut(let seconds):
            if let stage { evidenceBase["stage"] = .string(stage) }
            let f = fail(.postTimeout, "the POST child for \(run.library) did not finish within \(formatSeconds(seconds)) s and was killed (SIGKILL to its process group)" + (stage.map { ", stuck at stage '\($0)'" } ?? ""), tail)
            return Result(checks: [], findings: [f], library: .string(run.library))
        case .signaled(let sig):
            if let stage { evidenceBase["stage"] = .string(stage) }
            let f = fail(.postCrashed, "the POST child for \(run.library) died by signal \(sig) (\(signalName(sig)))" + (stage.map { " at stage '\($0)'" } ?? ""), tail.merging(["signal": .int(Int64(sig))]) { _, b in b })
            return Result(checks: [], findings: [f], library: .string(run.library))
        case .exited(let status, let result):
            guard let doc = result, doc["probe"] != nil else {
                if let stage { evidenceBase["stage"] = .string(stage) }
                let f = fail(.postCrashed, "the POST child for \(run.library) exited with status \(status) and printed no valid result", tail.merging(["exit_status": .int(Int64(status))]) { _, b in b })
                return Result(checks: [], findings: [f], library: .string(run.library))
            }
            return analyzeDocument(doc, run: run, target: target, policy: policy, base: evidenceBase)
        }
    }

    static func analyzeDocument(_ doc: JSONValue, run: PostRun, target: String, policy: PostPolicy,
                                base: [String: JSONValue]) -> Result {
        let expectFIPS = policy.expectFIPS
        var evidenceBase = base
        var findings: [Finding] = []
        var checks: [PostCheck] = []
        func add(_ code: FindingCode, _ summary: String, _ extra: [String: JSONValue], fix: [String] = [], severity: Severity? = nil,
                 about: String? = nil) {
            findings.append(Finding(code: code, target: target, subject: run.library + (about.map { " " + $0 } ?? ""), summary: summary,
                                    evidence: .object(evidenceBase.merging(extra) { _, b in b }), fix: fix, severity: severity))
        }
        let load = doc["load"] ?? .null
        guard load["ok"] == .bool(true) else {
            let error = load["error"]?.stringValue ?? "unknown dlopen error"
            add(.opensslUnresolved, "\(run.library) cannot be loaded under the service's environment: \(error)",
                ["dlerror": .string(error)])
            checks.append(PostCheck(name: "load", status: .fail, summary: error, errors: [error]))
            return Result(checks: checks, findings: findings, library: .string(run.library))
        }
        if let cwdError = doc["cwd_error"]?.stringValue {
            checks.append(PostCheck(name: "cwd", status: .fail, summary: "the service's cwd is not usable by its user: \(cwdError)", errors: []))
        }
        let path = load["realpath"]?.stringValue ?? load["path"]?.stringValue ?? run.library
        evidenceBase["libcrypto"] = .string(path)
        checks.append(PostCheck(name: "load", status: .pass, summary: "dlopen(\(run.library)) -> \(path)", errors: []))
        let all = doc["checks"]?.arrayValue ?? []
        func check(_ name: String) -> JSONValue { all.first { $0["name"]?.stringValue == name } ?? .null }
        func errors(_ c: JSONValue) -> [String] {
            (c["errors"]?.arrayValue ?? []).compactMap(\.stringValue).map { line in
                var s = line
                while s.utf8.last == UInt8(ascii: " ") { s.removeLast() }  // trailing blanks only
                return s
            }
        }
        func status(_ c: JSONValue) -> String { c["status"]?.stringValue ?? "missing" }

        let identity = check("identity")
        let version = identity["version"]?.stringValue ?? "unknown"
        evidenceBase["openssl_version"] = .string(version)
        checks.append(PostCheck(name: "identity", status: status(identity) == "pass" ? .pass : .fail,
            summary: "\(version); OPENSSLDIR \(identity["openssldir_path"]?.stringValue ?? "?"); MODULESDIR \(identity["modulesdir_path"]?.stringValue ?? "?")",
            errors: errors(identity)))
        if case .object(let apis)? = doc["api"] {
            let sorted = apis.sorted { ($0.value["since"]?.stringValue ?? "", $0.key) < ($1.value["since"]?.stringValue ?? "", $1.key) }
            let present = sorted.filter { $0.value["present"] == .bool(true) }.map { "\($0.key) (\($0.value["since"]?.stringValue ?? "?"))" }
            let absent = sorted.filter { $0.value["present"] != .bool(true) }.map { "\($0.key) (\($0.value["since"]?.stringValue ?? "?"))" }
            checks.append(PostCheck(name: "newer APIs", status: .info,
                summary: (present.isEmpty ? "" : "present: " + present.joined(separator: ", "))
                    + (present.isEmpty || absent.isEmpty ? "" : "; ") + (absent.isEmpty ? "" : "absent: " + absent.joined(separator: ", ")),
                errors: []))
        }
        // OpenSSL 1.1 has no providers: what it has is checked (config, digests, RAND_bytes, FIPS_mode()).
        let v1_1 = doc["openssl_1_1"] == .bool(true)
        let cb = check("self_test_callback")
        checks.append(PostCheck(name: "self-test callback", status: status(cb) == "pass" ? .pass : status(cb) == "skip" ? .skip : .fail,
            summary: status(cb) == "pass" ? "armed before any provider loaded" : cb["reason"]?.stringValue ?? "not available", errors: errors(cb)))

        // Config, the service's way and strictly.
        let service = check("config_service")
        let confFile = service["file"]?.stringValue ?? "?"
        evidenceBase["openssl_conf"] = .string(confFile)
        checks.append(PostCheck(name: "config (service)", status: status(service) == "pass" ? .pass : .fail,
            summary: "\(confFile)\(service["exists"] == .bool(false) ? " (missing)" : ""): OPENSSL_init_crypto(LOAD_CONFIG) returned \(scalar(service["return"]))",
            errors: errors(service)))
        let initQueue = check("init_error_queue")
        let initErrors = errors(initQueue)
        checks.append(PostCheck(name: "error queue after init", status: initErrors.isEmpty ? .pass : .fail,
            summary: initErrors.isEmpty ? "empty" : "\(initErrors.count) error(s) left by init", errors: initErrors))
        if !initErrors.isEmpty {
            add(.postInitErrorQueue, "OpenSSL init left \(initErrors.count) error(s) on the error queue; callers asserting an empty queue fail with 'Unknown OpenSSL error'",
                ["errors": JSONValue(initErrors)])
        }
        let strict = check("config_strict")
        let strictErrors = errors(strict)
        let strictStatus = status(strict)
        checks.append(PostCheck(name: "config (strict)", status: strictStatus == "pass" ? .pass : strictStatus == "skip" ? .skip : .fail,
            summary: strictStatus == "pass" ? "\(confFile) loads with config_diagnostics = 1"
                : strictStatus == "skip" ? (strict["reason"]?.stringValue ?? "skipped")
                : "\(confFile) fails a strict load (\(strictErrors.count) error(s)); a service ignoring config errors keeps running",
            errors: strictErrors))
        if strictStatus == "fail" {
            add(.postConfigError, "a strict load of \(confFile) fails: \(strictErrors.first ?? "no error string")",
                ["file": .string(confFile), "errors": JSONValue(strictErrors)],
                fix: ["OPENSSL_CONF=\(confFile) openssl list -providers   # with config_diagnostics = 1 in the file to see every error"])
        }

        // Providers.
        let providers = check("providers")
        let list = providers["providers"]?.arrayValue ?? []
        let described = list.map { p -> String in
            let name = p["config_name"]?.stringValue ?? "?"
            let status = p["status"].map(scalar) ?? "-"
            return "\(name) (\(p["name"]?.stringValue ?? "?") \(p["version"]?.stringValue ?? "?"), status \(status))"
        }
        let fips = list.first { $0["fips"] == .bool(true) }
        // 1.1: FIPS_mode() where the build has it (a FIPS-capable 1.1 build says 1 once FIPS is on).
        let fipsMode = providers["fips_mode"]
        let fipsActive = v1_1 ? fipsMode == .int(1) : fips.map { $0["status"] == .int(1) || $0["status"] == nil } ?? false
        let fipsModeText = fipsMode.map { "FIPS_mode() returned \(scalar($0))" } ?? "this build has no FIPS_mode()"
        checks.append(PostCheck(name: "providers", status: expectFIPS && !fipsActive ? .fail : v1_1 ? .skip : (list.isEmpty ? .fail : .pass),
            summary: (v1_1 ? "OpenSSL 1.1 has no providers; " + fipsModeText
                      : described.isEmpty ? "none loaded" : described.joined(separator: ", "))
                + (expectFIPS ? (fipsActive ? "; fips active" : "; fips NOT active") : ""),
            errors: errors(providers)))
        let providerEvidence: JSONValue = .array(list)
        if expectFIPS && !fipsActive {
            let maps = check("maps")
            let selfTest = check("self_test")
            let cause: String
            if v1_1 { cause = "OpenSSL 1.1 has no FIPS provider (\(fipsModeText))" }
            else if strictStatus == "fail" { cause = "the config fails a strict load (see post-config-error)" }
            else if !(selfTest["failed_tests"]?.arrayValue ?? []).isEmpty { cause = "its self-test failed while loading (see post-self-test-failed)" }
            else if maps["fips_expected_exists"] == .bool(false) { cause = "there is no fips.so in \(maps["fips_expected_dir"]?.stringValue ?? "the modules folder") (OPENSSL_MODULES, else MODULESDIR)" }
            else { cause = "the fips provider did not load or activate under this environment (is it activated in OPENSSL_CONF?)" }
            add(.postFIPSNotActive, "FIPS is expected but the fips provider is not active for \(path): \(cause)",
                ["providers": providerEvidence, "config_errors": JSONValue(strictErrors),
                 "fips_module_mapped": check("maps")["fips_module"] ?? .null,
                 "default_properties_fips": providers["default_properties_fips"] ?? .null, "fips_mode": fipsMode ?? .null],
                fix: ["check OPENSSL_CONF activates fips and base, and OPENSSL_MODULES (or MODULESDIR) holds fips.so",
                      "openssl fipsinstall -module DIR/fips.so -out DIR/fipsmodule.cnf -provider_name fips"])
        }

        // Self-test.
        let selfTest = check("self_test")
        let failedTests = (selfTest["failed_tests"]?.arrayValue ?? []).compactMap(\.stringValue)
        let selfStatus = status(selfTest)
        let selfFailed = selfStatus == "fail" || !failedTests.isEmpty
        checks.append(PostCheck(name: "fips self-test", status: selfFailed ? .fail : (selfStatus == "pass" ? .pass : .skip),
            summary: selfFailed ? "failed: \(failedTests.isEmpty ? "OSSL_PROVIDER_self_test returned \(scalar(selfTest["return"]))" : failedTests.joined(separator: ", "))"
                : selfStatus == "pass" ? "OSSL_PROVIDER_self_test(fips) passed (before any RNG use)" : "no fips provider loaded",
            errors: errors(selfTest)))
        if selfFailed {
            add(.postSelfTestFailed, "the FIPS provider's self-test fails for \(path): \(failedTests.first ?? "OSSL_PROVIDER_self_test returned 0")",
                ["failed_tests": JSONValue(failedTests), "errors": JSONValue(errors(selfTest)), "return": selfTest["return"] ?? .null],
                fix: ["reinstall fips.so from its package (an integrity failure means the file changed after fipsinstall)",
                      "openssl fipsinstall -module DIR/fips.so -out DIR/fipsmodule.cnf -provider_name fips"])
        }

        if let fips, fipsActive {   // an inactive provider's validation or module section judges nothing in use
            let validation = judgeValidation(fips, policy: policy)
            checks.append(validation.check)
            if let f = validation.finding { add(f.code, f.summary, f.evidence, fix: f.fix, severity: f.severity, about: f.about) }
            let config = judgeModuleConfig(check("fips_module_config"), integrityPasses: selfTest["integrity_passes"])
            checks.append(config.check)
            if let f = config.finding { add(f.code, f.summary, f.evidence, fix: f.fix, severity: f.severity, about: f.about) }
        }

        // SHA-256 known answer.
        let sha = check("sha256")
        let shaOK = status(sha) == "pass" && sha["digest"]?.stringValue == sha256OfABC
        let shaProvider = sha["provider"]?.stringValue ?? (v1_1 ? "OpenSSL 1.1's built-in code" : nil)
        checks.append(PostCheck(name: "sha-256 known answer", status: shaOK ? .pass : .fail,
            summary: shaOK ? "SHA-256(\"abc\") correct, served by \(shaProvider ?? "?")" : "SHA-256 failed" + (shaProvider.map { " (provider \($0))" } ?? ""),
            errors: errors(sha)))
        if !shaOK {
            add(.postApprovedFailed, "SHA-256 (approved) fails under the service's environment: \(errors(sha).first ?? "wrong digest")",
                ["errors": JSONValue(errors(sha)), "digest": sha["digest"] ?? .null, "provider": JSONValue(shaProvider)])
        }

        // MD5 must be refused under FIPS.
        let md5 = check("md5")
        let md5Allowed = md5["allowed"] == .bool(true)
        checks.append(PostCheck(name: "md5 refused", status: expectFIPS ? (md5Allowed ? .fail : .pass) : .info,
            summary: md5Allowed ? "MD5 works (provider \(md5["provider"]?.stringValue ?? (v1_1 ? "OpenSSL 1.1's built-in code" : "?")))" : "MD5 refused",
            errors: errors(md5)))
        if expectFIPS && md5Allowed {
            add(.postUnapprovedAllowed, "FIPS is expected but MD5 (not approved) works through \(path), served by the '\(md5["provider"]?.stringValue ?? "?")' provider",
                ["md5_provider": md5["provider"] ?? .null, "default_properties_fips": providers["default_properties_fips"] ?? .null],
                fix: ["set default_properties = fips=yes in the algorithm section of OPENSSL_CONF and activate the fips provider"])
        }

        // DRBG.
        let drbg = check("drbg")
        let drbgOK = status(drbg) == "pass"
        checks.append(PostCheck(name: "drbg", status: drbgOK ? .pass : .fail,
            summary: drbgOK && v1_1 ? "RAND_bytes ok (OpenSSL 1.1: no EVP_RAND state to read)"
                : drbgOK ? "RAND_bytes ok; primary \(drbg["algorithm"]?.stringValue ?? "?") from \(drbg["provider"]?.stringValue ?? "?"), state ready"
                : "RAND_bytes returned \(scalar(drbg["rand_bytes"])); primary DRBG \(drbg["primary"] == .bool(true) ? "state \(scalar(drbg["state"]))" : "missing")",
            errors: errors(drbg)))
        if !drbgOK {
            add(.postDRBGFailed, "RAND_bytes fails under the service's environment: \(errors(drbg).first { $0.contains("drbg") } ?? errors(drbg).first ?? "no error string")",
                ["errors": JSONValue(errors(drbg)), "rand_bytes": drbg["rand_bytes"] ?? .null, "state": drbg["state"] ?? .null])
        }

        // The product's own operations.
        if !policy.operations.isEmpty {
            let judged = judgeOperations(check("operations"), policy: policy, fipsActive: fipsActive)
            checks += judged.checks
            for f in judged.findings { add(f.code, f.summary, f.evidence, fix: f.fix, severity: f.severity, about: f.about) }
        }

        // Trust paths.
        let trust = check("trust")
        var usable: [String] = []
        var described2: [String] = []
        for key in ["env_file", "env_dir", "compiled_file", "compiled_dir"] {
            guard let t = trust[key], let p = t["path"]?.stringValue else { continue }
            let n = t["certificates"].map(scalar) ?? "0"
            described2.append("\(key.replacing("_", with: " ")) \(p) \(t["exists"] == .bool(true) ? "(\(n) certificates)" : "(missing)")")
            if t["exists"] == .bool(true), case .int(let c)? = t["certificates"], c > 0 { usable.append(p) }
        }
        checks.append(PostCheck(name: "trust store", status: usable.isEmpty ? .fail : .pass,
            summary: described2.joined(separator: "; "), errors: []))
        if usable.isEmpty {
            add(.trustStoreMissing, "no CA certificates where \(path) looks (compiled-in cert file/dir, SSL_CERT_FILE, SSL_CERT_DIR)",
                ["trust": trust,
                 "note": "from the initial environment (/proc/PID/environ); a frozen app may set SSL_CERT_FILE itself at start-up (cx_Freeze's ssl hook does), which no environ shows"], fix: ["export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt (in the service's unit)"])
        }

        // Our own mappings.
        let maps = check("maps")
        let mapped = (maps["libcrypto"]?.arrayValue ?? []).compactMap(\.stringValue)
        let fipsMapped = maps["fips_module"]?.stringValue
        let fromExpected = maps["fips_from_expected_dir"]
        let mapsOK = mapped.count == 1 && fromExpected != .bool(false)
        checks.append(PostCheck(name: "probe mappings", status: mapsOK ? .pass : .fail,
            summary: "\(mapped.count) libcrypto mapped (\(mapped.joined(separator: ", ")))"
                + (fipsMapped.map { "; fips.so from \($0)" + (fromExpected == .bool(false) ? " (NOT from \(maps["fips_expected_dir"]?.stringValue ?? "?"))" : "") } ?? "; no fips.so mapped"),
            errors: []))
        if mapped.count > 1 {
            add(.processSplitLibcrypto, "the POST child itself maps \(mapped.count) libcrypto files", ["mapped": JSONValue(mapped)])
        }
        let api = doc["api"].flatMap { a -> JSONValue? in
            guard case .object(let o) = a else { return nil }
            return .object(o.mapValues { $0["present"] ?? .null })
        } ?? .null
        let library: JSONValue = ["requested": .string(run.library), "path": .string(path), "version": .string(version),
                                  "openssl_1_1": .bool(v1_1), "fips_mode": fipsMode ?? .null,
                                  "openssldir": identity["openssldir_path"] ?? .null, "modulesdir": identity["modulesdir_path"] ?? .null,
                                  "newer_api": api, "elapsed_ms": doc["elapsed_ms"] ?? .null,
                                  "child_uid": doc["uid"] ?? .null, "child_gid": doc["gid"] ?? .null, "child_cwd": doc["cwd"] ?? .null]
        return Result(checks: checks, findings: findings, library: library)
    }

    static func scalar(_ v: JSONValue?) -> String {
        switch v {
        case .int(let i)?: return String(i)
        case .string(let s)?: return s
        case .bool(let b)?: return b ? "true" : "false"
        default: return "-"
        }
    }

    static func lastStage(_ stderr: String) -> String? {
        stderr.split(separator: "\n").reversed().first { $0.hasPrefix("sentinel-probe: stage ") }
            .map { String($0.dropFirst("sentinel-probe: stage ".count)) }
    }

    static func formatSeconds(_ s: Double) -> String {
        s == s.rounded() ? String(Int(s)) : String(s)
    }

    static func signalName(_ sig: Int32) -> String {
        switch sig {
        case 6: return "SIGABRT"; case 7: return "SIGBUS"; case 8: return "SIGFPE"; case 9: return "SIGKILL"
        case 11: return "SIGSEGV"; case 4: return "SIGILL"; case 24: return "SIGXCPU"; case 15: return "SIGTERM"
        default: return "signal \(sig)"
        }
    }

    /// The finding for the product's own POST command (`--command`).
    public static func commandFinding(argv: [String], outcome: PostOutcome, outputTail: String, target: String) -> Finding? {
        let cmd = argv.joined(separator: " ")
        let summary: String
        switch outcome {
        case .exited(let status, _) where status == 0: return nil
        case .exited(let status, _): summary = "the product's POST command `\(cmd)` exited with status \(status)"
        case .signaled(let sig): summary = "the product's POST command `\(cmd)` died by \(signalName(sig))"
        case .timedOut(let s): summary = "the product's POST command `\(cmd)` did not finish within \(formatSeconds(s)) s and was killed"
        }
        return Finding(code: .postCommandFailed, target: target, subject: cmd, summary: summary,
                       evidence: ["command": JSONValue(argv), "output_tail": .string(outputTail)])
    }
}
