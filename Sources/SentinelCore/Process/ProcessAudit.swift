/// The live-process findings, from a snapshot and the expectations. Pure.
public enum ProcessAudit {
    /// Does this process map an OpenSSL library or an object with a static copy (what `--all` keeps)?
    public static func mapsOpenSSL(_ files: [MappedObject]) -> Bool {
        files.contains { [.libcrypto, .libssl, .staticCopy].contains($0.role) }
    }

    public static func audit(_ s: ProcessSnapshot, expectations: ProcessExpectations = ProcessExpectations(),
                             name: String? = nil) -> TargetReport {
        let name = name ?? s.displayName
        var findings: [Finding] = []
        var warnings: [String] = []
        let mapsRead = !s.failures.contains { $0.file == "maps" }

        if !s.failures.isEmpty { findings.append(unreadable(s, name: name)) }
        for f in s.files where f.readError != nil && f.role != nil {
            warnings.append("\(f.path): content not readable (\(f.readError!)); identified by its name only")
        }
        for f in s.files { if let note = f.object?.searchWarning { warnings.append("\(f.path): \(note)") } }
        if mapsRead {
            for role in [OpenSSLRole.libcrypto, .libssl] {
                if let f = split(s, role: role, name: name) { findings.append(f) }
            }
            if let f = fipsShared(s, name: name) { findings.append(f) }
            findings += deleted(s, name: name)
            findings += statics(s, name: name)
            findings += foreign(s, name: name, expectFIPS: expectations.expectFIPS)
            if expectations.expectFIPS, !s.files.contains(where: \.isFIPSProvider) {
                findings.append(fipsNotLoaded(s, name: name))
            }
        }
        if !expectations.environment.isEmpty, let env = s.environment, let f = drift(env, expectations.environment, s, name: name) {
            findings.append(f)
        }

        var stats: [String: Int] = ["pid": Int(s.pid), "mapped_files": s.files.count,
                                    "elf_files": s.files.filter { $0.object != nil }.count,
                                    "openssl_libraries": s.files.filter { $0.role == .libcrypto || $0.role == .libssl }.count]
        if let c = s.credentials { stats["uid"] = Int(c.uid); stats["gid"] = Int(c.gid) }
        return TargetReport(name: name, kind: "process", root: s.executable, environment: s.environment?.values ?? [:],
                            stats: stats, findings: findings, warnings: warnings)
    }

    static func copyLine(_ f: MappedObject) -> String {
        "\(f.path) (\(f.version.map { "OpenSSL \($0)" } ?? "version unknown"), \(f.identity))"
    }

    static func split(_ s: ProcessSnapshot, role: OpenSSLRole, name: String) -> Finding? {
        let copies = s.files.filter { $0.role == role }
        guard copies.count > 1 else { return nil }
        // A DT_NEEDED entry names a copy by its SONAME or its file name; a name more than one copy
        // answers to cannot tell which copy the consumer got.
        func names(_ c: MappedObject) -> Set<String> { Set([c.object?.soname, c.basename].compactMap { $0 }) }
        var answering: [String: Int] = [:]
        for c in copies { for n in names(c) { answering[n, default: 0] += 1 } }
        let evidenceCopies: [JSONValue] = copies.map { c in
            let myNames = names(c)
            let consumers: [JSONValue] = s.files.compactMap { consumer in
                guard consumer.identity != c.identity, let needed = consumer.object?.needed.first(where: myNames.contains) else { return nil }
                let ambiguous = (answering[needed] ?? 0) > 1
                return .string("\(consumer.path) needs \(needed)" + (ambiguous ? " (ambiguous: more than one mapped copy answers to this name)" : ""))
            }
            return .object([
                "path": .string(c.path), "device_inode": .string(c.identity.description), "version": JSONValue(c.version),
                "soname": JSONValue(c.object?.soname), "deleted_on_disk": .bool(c.disk != .current && !isUnverified(c.disk)),
                "needed_by": consumers.isEmpty ? .string("no mapped object names it (dlopen()ed by path, or LD_PRELOAD)") : .array(consumers),
            ])
        }
        let lib = role == .libcrypto ? "libcrypto" : "libssl"
        var fix = ["until every OpenSSL consumer of the process resolves to one file, do not chase FIPS policy bugs"]
        if let exe = s.executable {
            let dir = exe.split(separator: "/").dropLast().joined(separator: "/")
            fix.append("crypto-sentinel scan /\(dir)   # the bundle's linkage")
            fix.append("crypto-sentinel repair /\(dir) --in-place   # the canonical-soname fix, verified; --rollback undoes it")
        }
        fix.append(s.unit.map { "systemctl restart \($0)   # after fixing the bundle" } ?? "restart the process after fixing the bundle")
        return Finding(code: .processSplitLibcrypto, target: name, subject: Finding.subject(lib, copies: copies.map(\.identity)),
                       summary: "\(name) maps \(copies.count) different \(lib) files: " + copies.map(copyLine).joined(separator: " and "),
                       evidence: ["library": .string(lib), "copies": .array(evidenceCopies)], fix: fix)
    }

    /// Two libcrypto files and a FIPS provider in one process: the module's one state is shared by both.
    static func fipsShared(_ s: ProcessSnapshot, name: String) -> Finding? {
        let libs = s.files.filter { $0.role == .libcrypto }
        let modules = s.files.filter(\.isFIPSProvider)
        guard libs.count > 1, !modules.isEmpty else { return nil }
        return Finding(
            code: .processFIPSShared, target: name,
            subject: Finding.subject("fips", copies: libs.map(\.identity) + modules.map(\.identity)),
            summary: "\(name) maps \(libs.count) libcrypto files and the FIPS provider \(modules.map(\.path).joined(separator: ", ")): one module cannot serve both",
            evidence: ["libcrypto": .array(libs.map { .string(copyLine($0)) }),
                       "fips_modules": .array(modules.map { .string("\($0.path) (\($0.identity))") })],
            fix: (s.executable.map { exe in
                ["crypto-sentinel repair /\(exe.split(separator: "/").dropLast().joined(separator: "/")) --in-place   # one libcrypto for every consumer"]
            } ?? []) + [s.unit.map { "systemctl restart \($0)   # after fixing the bundle" } ?? "restart the process after fixing the bundle"])
    }

    static func isUnverified(_ d: DiskState) -> Bool { if case .unverified = d { return true }; return false }

    static func deleted(_ s: ProcessSnapshot, name: String) -> [Finding] {
        s.files.compactMap { f -> Finding? in
            guard let role = f.role, role != .staticCopy || f.object != nil else { return nil }
            let now: FileIdentity?, what: String
            switch f.disk {
            case .current, .unverified: return nil
            case .deleted(let n): now = n; what = n == nil ? "deleted" : "replaced (deleted, a new file is at its path)"
            case .replaced(let n): now = n; what = "replaced (its path now names another file)"
            }
            return Finding(
                code: .processDeletedLibrary, target: name, subject: f.path,
                summary: "\(name) still runs \(f.path) (\(role.rawValue)\(f.version.map { ", OpenSSL \($0)" } ?? "")), which was \(what) on disk",
                evidence: ["path": .string(f.path), "maps_pathname": .string(f.mapsPathname), "role": .string(role.rawValue),
                           "mapped_device_inode": .string(f.identity.description), "version": JSONValue(f.version),
                           "deleted_marker": .bool(f.mapsPathname.hasSuffix(MapsParser.deletedSuffix)),
                           "now_at_path": .string(now.map(\.description) ?? "nothing")],
                fix: [s.unit.map { "systemctl restart \($0)   # it keeps running the old code until restarted" }
                      ?? "restart pid \(s.pid): it keeps running the old code until restarted"])
        }
    }

    static func statics(_ s: ProcessSnapshot, name: String) -> [Finding] {
        s.files.filter { $0.role == .staticCopy }.map { f in
            let e = f.object?.embeddedOpenSSL
            let program = f.object?.isProgram == true
            return Finding(
                code: .processStaticOpenSSL, target: name, subject: f.path,
                summary: "\(name) maps \(f.path), \(program ? "a program with" : "which carries") its own statically linked OpenSSL\(e?.version.map { " \($0)" } ?? "")",
                evidence: ["path": .string(f.path), "device_inode": .string(f.identity.description), "version": JSONValue(e?.version),
                           "openssldir": JSONValue(e?.openSSLDir), "modulesdir": JSONValue(e?.modulesDir), "program": .bool(program)],
                fix: ["use a build of this module that links the process's one libcrypto dynamically (e.g. Debian's python3-cryptography instead of the PyPI wheel)"])
        }
    }

    /// A second TLS stack: each mapped library of another family, when the process also maps an OpenSSL
    /// (or another such family).
    static func foreign(_ s: ProcessSnapshot, name: String, expectFIPS: Bool) -> [Finding] {
        let objects = s.files.filter { $0.object?.foreignCrypto != nil }
        guard !objects.isEmpty else { return [] }
        let openSSL = s.files.contains { [.libcrypto, .libssl, .staticCopy].contains($0.role) }
        guard let stacks = ForeignCrypto.stacks(objects.compactMap { $0.object?.foreignCrypto }, besideOpenSSL: openSSL) else { return [] }
        return objects.map { f in
            let foreign = f.object!.foreignCrypto!
            let linkage = foreignLinkage(f.object!)
            let (phrase, others) = foreign.secondStack(among: stacks, linkage: linkage, expectFIPS: expectFIPS)
            return Finding(
                code: .processForeignCrypto, target: name, subject: f.path,
                summary: "\(name) maps \(f.path), which carries \(phrase)",
                evidence: ["path": .string(f.path), "device_inode": .string(f.identity.description),
                           "library": .string(foreign.library.rawValue), "version": JSONValue(foreign.version),
                           "linkage": JSONValue(linkage), "other_stacks": JSONValue(others), "fips_expected": .bool(expectFIPS)],
                fix: ["if one TLS stack (and one FIPS boundary) is required, replace the module that brings \(foreign.library.rawValue) in with one built against the process's OpenSSL, then restart"],
                severity: expectFIPS ? .warning : nil)
        }
    }

    static func fipsNotLoaded(_ s: ProcessSnapshot, name: String) -> Finding {
        let libs = s.files.filter { $0.role == .libcrypto }.map { JSONValue.string(copyLine($0)) }
        let providers = s.files.filter { $0.role == .provider }.map { JSONValue.string($0.path) }
        return Finding(
            code: .processFIPSNotLoaded, target: name, subject: "fips.so",
            summary: "FIPS expected, but \(name) has no FIPS provider (fips.so) mapped",
            evidence: ["libcrypto": .array(libs), "providers_mapped": .array(providers),
                       "openssl_conf": JSONValue(s.environment?["OPENSSL_CONF"]), "openssl_modules": JSONValue(s.environment?["OPENSSL_MODULES"])],
            fix: ["check that the service's OPENSSL_CONF activates the fips provider and OPENSSL_MODULES holds fips.so",
                  "crypto-sentinel post --pid \(s.pid) --expect-fips   # the POST under the service's own environment"])
    }

    static func drift(_ env: TargetEnvironment, _ expected: [String: String], _ s: ProcessSnapshot, name: String) -> Finding? {
        let diffs = expected.sorted { $0.key < $1.key }.compactMap { key, want -> JSONValue? in
            let have = env[key]
            if want.isEmpty ? (have ?? "").isEmpty : have == want { return nil }
            return .object(["variable": .string(key), "expected": want.isEmpty ? .string("(unset)") : .string(want),
                            "actual": have.map(JSONValue.string) ?? .string("(unset)")])
        }
        guard !diffs.isEmpty else { return nil }
        let keys = diffs.compactMap { $0["variable"]?.stringValue }
        return Finding(code: .processEnvDrift, target: name, subject: keys.joined(separator: ", "),
                       summary: "\(name) runs with \(keys.joined(separator: ", ")) different from what is expected",
                       evidence: ["differences": .array(diffs), "note": "/proc/<pid>/environ holds the environment the process started with"],
                       fix: [s.unit.map { "set the expected values in \($0) (systemctl edit \($0)), then restart it" }
                             ?? "start the process with the expected environment"])
    }

    static func unreadable(_ s: ProcessSnapshot, name: String) -> Finding {
        let exited = s.failures.contains { $0.reason == .exited }
        let denied = s.failures.contains { $0.reason == .permissionDenied }
        let files = s.failures.map(\.file)
        let reason = exited ? "process exited" : denied ? "permission denied" : s.failures[0].reason.description
        var fix: [String] = []
        if denied { fix.append("run crypto-sentinel as root, or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (reading another user's maps and environ needs them)") }
        if exited { fix.append("the process is gone: check whether the service restarted (crypto-sentinel inspect --unit NAME)") }
        return Finding(
            code: .processUnreadable, target: name, subject: files.sorted().joined(separator: ", "),
            summary: "\(name): \(files.joined(separator: ", ")) could not be read: \(reason)",
            evidence: ["pid": .int(Int64(s.pid)),
                       "failures": .array(s.failures.map { .string("\($0.file): \($0.reason)") })],
            fix: fix)
    }
}
