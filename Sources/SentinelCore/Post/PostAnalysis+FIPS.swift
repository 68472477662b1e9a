/// The auditor's half of the POST: is the fips provider validated, does its module section weaken it,
/// and does this configuration allow what the product needs and refuse what it must not do.
extension PostAnalysis {
    /// A finding before it is tied to the library (PostAnalysis adds target, subject and base evidence).
    struct Judged {
        var code: FindingCode
        var summary: String
        var evidence: [String: JSONValue]
        var fix: [String] = []
        var severity: Severity? = nil
        /// Appended to the subject when one library can have several findings of this code.
        var about: String? = nil
    }

    /// The provider's CMVP status from the validation data; a finding only when FIPS is expected.
    static func judgeValidation(_ provider: JSONValue, policy: PostPolicy) -> (check: PostCheck, finding: Judged?) {
        let name = provider["name"]?.stringValue ?? "?"
        let version = provider["version"]?.stringValue ?? "?"
        let data = policy.validations
        let from = "validation data checked \(data.checked), \(data.origin)"
        let evidence: [String: JSONValue] = ["provider": .string(name), "provider_version": .string(version),
                                             "buildinfo": provider["buildinfo"] ?? .null, "validation_data": .string(data.origin),
                                             "validation_data_checked": .string(data.checked)]
        switch data.verdict(name: name, version: version, today: policy.today) {
        case .validated(let e):
            return (PostCheck(name: "fips validation", status: .pass, summary: "\(name) \(version): \(e.described) (\(from))", errors: []), nil)
        case .historical(let e):
            let check = PostCheck(name: "fips validation", status: .info, summary: "\(name) \(version): \(e.described), historical (\(from))", errors: [])
            guard policy.expectFIPS else { return (check, nil) }
            return (check, Judged(code: .fipsCertificateHistorical,
                summary: "the fips provider \(name) \(version) has \(e.described): it is on the historical list, no longer for new procurements",
                evidence: evidence.merging(["certificate": e.certificate.map { .int(Int64($0)) } ?? .null, "sunset": JSONValue(e.sunset),
                                            "source": .string(e.source)]) { _, b in b },
                fix: ["move to a provider version with an active certificate (see the validation data)"]))
        case .unvalidated(let pending):
            let state = pending.map { "no certificate yet (\($0.status.rawValue): \($0.source))" } ?? "no CMVP certificate in the validation data"
            let check = PostCheck(name: "fips validation", status: policy.expectFIPS ? .fail : .info, summary: "\(name) \(version): \(state) (\(from))", errors: [])
            guard policy.expectFIPS else { return (check, nil) }
            return (check, Judged(code: .fipsProviderUnvalidated,
                summary: "the fips provider \(name) \(version) has \(state): it enforces FIPS rules but is not a validated module",
                evidence: evidence,
                fix: ["use a validated provider version (e.g. 3.1.2, certificate #4985) built as its security policy says, with this libcrypto",
                      "or update the validation data: /etc/crypto-sentinel/fips-validations.json"]))
        }
    }

    /// Module options that weaken the module when set to 0: the two every version has, and OpenSSL
    /// 3.4+'s per-algorithm checks (OpenSSL's pedantic fipsmodule.cnf sets each to 1).
    static func weakens(_ option: String) -> Bool {
        option == "conditional-errors" || option == "security-checks" || option.hasSuffix("-check")
    }

    static func judgeModuleConfig(_ c: JSONValue, integrityPasses: JSONValue?) -> (check: PostCheck, finding: Judged?) {
        let params = c["provider_params"]
        let checks: String = {
            guard case .object(let o)? = params, !o.isEmpty else { return "the module reports no check parameters" }
            let on = o.filter { $0.value == .int(1) }.keys.sorted(), off = o.filter { $0.value == .int(0) }.keys.sorted()
            return "module checks on: \(on.isEmpty ? "none" : on.joined(separator: ", ")); off: \(off.isEmpty ? "none" : off.joined(separator: ", "))"
        }()
        guard let section = c["section"]?.stringValue else {
            let summary = c == .null ? "not reported" : "the module section could not be found in the config (loaded from elsewhere?); \(checks)"
            return (PostCheck(name: "fips module config", status: .info, summary: summary, errors: []), nil)
        }
        let options = c["options"]?.arrayValue ?? []
        func option(_ n: String) -> JSONValue? { options.first { $0["name"]?.stringValue == n } }
        func place(_ o: JSONValue) -> String {
            guard let f = o["file"]?.stringValue else { return "" }
            return " (\(f)\(o["line"].map { ":" + scalar($0) } ?? ""))"
        }
        var notes: [String] = []
        if option("module-mac") != nil {
            let passes = integrityPasses.map(scalar) ?? "-"
            notes.append(passes == "0" || passes == "-" ? "module-mac present, but no integrity self-test was seen to pass"
                                                     : "module-mac present and verified by the integrity self-test")
        } else {
            notes.append("module-mac missing")
        }
        if let status = option("install-status")?["value"]?.stringValue { notes.append("install-status \(status)") }
        let relaxed = options.filter { o in
            guard let n = o["name"]?.stringValue, let v = o["value"]?.stringValue else { return false }
            return weakens(n) && v.trimmed == "0"
        }
        let relaxedText = relaxed.map { "\($0["name"]?.stringValue ?? "?") = 0\(place($0))" }
        let check = PostCheck(name: "fips module config", status: relaxed.isEmpty ? .pass : .fail,
            summary: "[\(section)]: " + (notes + [checks]).joined(separator: "; "), errors: relaxedText)
        guard !relaxed.isEmpty else { return (check, nil) }
        return (check, Judged(code: .fipsConfigRelaxed,
            summary: "the fips module section [\(section)] weakens the module: " + relaxedText.joined(separator: ", "),
            evidence: ["section": .string(section), "relaxed": .array(relaxed), "provider_params": params ?? .null],
            fix: ["rerun openssl fipsinstall without -no_conditional_errors / -no_security_checks (3.5: with -pedantic),",
                  "or set each option to 1 in the module section; then restart the service"]))
    }

    /// One check line per requested operation; findings for a required one refused and a forbidden one allowed.
    static func judgeOperations(_ c: JSONValue, policy: PostPolicy, fipsActive: Bool) -> (checks: [PostCheck], findings: [Judged]) {
        let results = c["results"]?.arrayValue ?? []
        let indicatorAPI = c["indicator_api"] == .bool(true)
        var checks: [PostCheck] = [], findings: [Judged] = []
        for op in policy.operations {
            let r = results.first { $0["op"]?.stringValue == op } ?? .null
            let status = r["status"]?.stringValue ?? "missing"
            let errors = (r["errors"]?.arrayValue ?? []).compactMap(\.stringValue)
            let events = (r["indicator"]?.arrayValue ?? []).compactMap(\.stringValue)
            let indicator: String? = !indicatorAPI || status != "pass" || !fipsActive ? nil
                : events.isEmpty ? "FIPS indicator: approved" : "FIPS indicator: not approved (\(events.joined(separator: "; ")))"
            let required = policy.require.contains(op)
            let what: String
            switch status {
            case "pass": what = "performed, correct result"
            case "refused": what = errors.isEmpty ? "refused (no OpenSSL error string)" : "refused"
            case "wrong": what = "performed, WRONG result"
            case "unavailable": what = "this libcrypto lacks the API for it"
            default: what = "not performed by the probe (\(status))"
            }
            let ok = required ? status == "pass" : status != "pass"
            checks.append(PostCheck(name: "\(required ? "require" : "forbid") \(op)", status: ok ? .pass : .fail,
                                    summary: what + (indicator.map { "; " + $0 } ?? ""), errors: errors))
            let evidence: [String: JSONValue] = ["operation": .string(op), "result": .string(status), "errors": JSONValue(errors),
                                                 "indicator": indicatorAPI ? JSONValue(events) : .null]
            if required && !ok {
                findings.append(Judged(code: .postRequiredRefused,
                    summary: "the product needs \(op) but under this environment it is \(status == "refused" ? "refused" : status): \(errors.first ?? what)",
                    evidence: evidence,
                    fix: ["change the product to an operation this configuration allows (e.g. x509-sign-sha256 for x509-sign-sha1),",
                          "or, if policy permits, relax the module option named in the error and accept the non-approved use"],
                    about: op))
            } else if !required && !ok {
                findings.append(Judged(code: .postForbiddenAllowed,
                    summary: "\(op) must be refused but succeeds under this environment" + (indicator.map { " (\($0))" } ?? ""),
                    evidence: evidence,
                    fix: ["set default_properties = fips=yes and activate only fips and base in OPENSSL_CONF,",
                          "then rerun: crypto-sentinel post --forbid \(op)"],
                    severity: policy.expectFIPS ? .critical : .error, about: op))
            }
        }
        return (checks, findings)
    }
}
