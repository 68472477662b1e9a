import Foundation
import SentinelCore
import SentinelTestSupport
import Testing

/// systemd/crypto-sentinel.service's privileges, applied without a systemd PID 1: the unit's
/// CapabilityBoundingSet= and NoNewPrivileges= through setpriv(1), MemoryDenyWriteExecute= through
/// prctl(PR_SET_MDWE) (Linux 6.3+; systemd 252 uses a seccomp filter with the same effect: no W+X
/// mapping, no PROT_EXEC gained later; inherited by every child, as the unit's is). The audit and the
/// POST must work inside it.
@Suite(.serialized) struct SandboxTests {
    static let unit = FixtureScripts.packageRoot + "/systemd/crypto-sentinel.service"
    static let python = "/usr/bin/python3"

    /// setpriv's --bounding-set argument from the unit's CapabilityBoundingSet=, minus `dropping`.
    static func boundingSet(dropping: Set<String> = []) throws -> String {
        let text = try String(contentsOfFile: unit, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("CapabilityBoundingSet=") })
        let caps = line.dropFirst("CapabilityBoundingSet=".count).split(separator: " ")
            .map { $0.lowercased().replacingOccurrences(of: "cap_", with: "") }.filter { !dropping.contains($0) }
        #expect(text.contains("\nNoNewPrivileges=yes\n") && text.contains("\nMemoryDenyWriteExecute=yes\n"))
        return (["-all"] + caps.map { "+" + $0 }).joined(separator: ",")
    }

    /// A tiny C wrapper that sets PR_SET_MDWE and execs its arguments, built once with gcc.
    static func mdwe() throws -> String { try mdweResult.get() }
    private static let mdweResult = Result<String, any Error> {
        let dir = FixtureScripts.root + "/sandbox"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let source = """
        #include <sys/prctl.h>
        #include <unistd.h>
        #include <stdio.h>
        #include <string.h>
        #include <errno.h>
        int main(int argc, char **argv) {
            if (argc < 2) return 2;
            if (prctl(65 /* PR_SET_MDWE */, 1 /* PR_MDWE_REFUSE_EXEC_GAIN */, 0, 0, 0) != 0) {
                fprintf(stderr, "mdwe: PR_SET_MDWE: %s\\n", strerror(errno)); return 125;
            }
            execv(argv[1], argv + 1);
            fprintf(stderr, "mdwe: %s: %s\\n", argv[1], strerror(errno)); return 127;
        }
        """
        let pid = getpid()
        try source.write(toFile: dir + "/mdwe-\(pid).c", atomically: true, encoding: .utf8)
        defer { unlink(dir + "/mdwe-\(pid).c") }
        // Built under a per-process name, then renamed: concurrent test processes never see a half-written file.
        let r = try Sentinel.shell(["gcc", "-O1", "-o", dir + "/mdwe-\(pid)", dir + "/mdwe-\(pid).c"])
        guard r.status == 0 else { throw FixtureError(message: "gcc mdwe.c: \(r.stderr)") }
        guard rename(dir + "/mdwe-\(pid)", dir + "/mdwe") == 0 else { throw FixtureError(message: "rename mdwe") }
        return dir + "/mdwe"
    }

    /// `crypto-sentinel ARGS` as the unit would run it.
    static func sandboxed(_ args: [String], dropping: Set<String> = []) throws -> Sentinel.Result {
        try Sentinel.shell(["setpriv", "--no-new-privs", "--bounding-set=" + boundingSet(dropping: dropping), "--inh-caps=-all",
                            mdwe(), Sentinel.binary] + args)
    }

    @Test func theMDWEWrapperReallyRefusesWritableExecutableMemory() throws {
        let wx = "import mmap; mmap.mmap(-1, 4096, prot=7)"   // PROT_READ|PROT_WRITE|PROT_EXEC
        #expect(try Sentinel.shell([Self.python, "-c", wx]).status == 0)
        let refused = try Sentinel.shell([Self.mdwe(), Self.python, "-c", wx])
        #expect(refused.status != 0 && refused.stderr.contains("PermissionError"), "\(refused.stderr)")
    }

    /// The POST child starts as root inside the sandbox and drops to the service's user itself:
    /// no_new_privs does not stop that, and the FIPS provider's self-test runs without W+X memory.
    @Test func fipsPostAsTheServiceUserInsideTheSandbox() throws {
        let lab = try FIPSLab()
        defer { lab.remove() }
        let service = try Service([Self.python, "-c", "import ssl, time; time.sleep(120)"],
                                  environment: ["OPENSSL_CONF": lab.fipsConf, "OPENSSL_MODULES": lab.modules],
                                  user: "nobody", cwd: lab.dir)
        defer { service.stop() }
        #expect(service.waitForLibcrypto())
        let r = try Self.sandboxed(["post", "--pid", String(service.pid), "--expect-fips", "--fips-validations", lab.validations,
                                    "--format", "json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.codes() == [])
        let post = try #require(r.report?.targets.first?.post)
        #expect(post["library"]?["child_uid"] == .int(65534))
        let checks = Dictionary((post["checks"]?.arrayValue ?? []).compactMap { c in
            c["name"]?.stringValue.map { ($0, c["status"]?.stringValue ?? "") }
        }, uniquingKeysWith: { a, _ in a })
        for name in ["fips self-test", "sha-256 known answer", "md5 refused", "drbg"] {
            #expect(checks[name] == "pass", "\(name): \(checks[name] ?? "missing")")
        }
    }

    /// CAP_CHECKPOINT_RESTORE is in the unit for /proc/<pid>/map_files: without it even root reads a
    /// replaced library by name only (no version). CAP_SYS_ADMIN (the POST child's setns) opens them
    /// too, so the unit keeps CAP_CHECKPOINT_RESTORE for a drop-in that takes CAP_SYS_ADMIN away.
    @Test func replacedLibraryIsReadThroughMapFilesOnlyWithCheckpointRestore() throws {
        let fx = try Fixtures.proc()
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let replaced = dir + "/lib/libcrypto.so.3"
        try FileManager.default.createDirectory(atPath: dir + "/lib", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fx + "/fake/a/libcrypto.so.3", toPath: replaced)
        let p = try LiveProcess([fx + "/holdlibs", replaced], as: "65534")
        defer { p.stop() }
        try FileManager.default.copyItem(atPath: fx + "/fake/b/libcrypto.so.3", toPath: dir + "/lib/.new")
        #expect(rename(dir + "/lib/.new", replaced) == 0)

        let inside = try Self.sandboxed(["inspect", "--pid", "\(p.pid)", "--format", "json"])
        let found = try #require(inside.findings(.processDeletedLibrary).first, "\(inside.stdout)\(inside.stderr)")
        #expect(found.evidence["version"] == "3.0.99")
        #expect(inside.findings(.processUnreadable).isEmpty)

        let without = try Self.sandboxed(["inspect", "--pid", "\(p.pid)", "--format", "json"], dropping: ["checkpoint_restore", "sys_admin"])
        let byName = try #require(without.findings(.processDeletedLibrary).first, "\(without.stdout)")
        #expect((byName.evidence["version"] ?? .null) == .null, "\(byName.evidence)")
    }
}
