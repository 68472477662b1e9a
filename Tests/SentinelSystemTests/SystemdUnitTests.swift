import Foundation
import SentinelCore
import SentinelTestSupport
import Testing

/// The shipped units, scored and installed with the real tools (no PID 1 systemd needed).
@Suite("systemd units and install")
struct SystemdUnitTests {
    static let service = FixtureScripts.packageRoot + "/systemd/crypto-sentinel.service"
    static let socket = FixtureScripts.packageRoot + "/systemd/crypto-sentinel.socket"

    /// `Key=value` lines of a unit file (comments and sections dropped), in order.
    static func settings(_ path: String) throws -> [(String, String)] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), !line.hasPrefix("["), let eq = line.firstIndex(of: "=") else { return nil }
            return (String(line[..<eq]), String(line[line.index(after: eq)...]))
        }
    }

    @Test("systemd-analyze security --offline=yes: overall exposure at most 4.0")
    func exposure() throws {
        let (status, out) = try JournaldLease.runTool("/usr/bin/systemd-analyze", ["security", "--offline=yes", "--no-pager", Self.service])
        #expect(status == 0, "\(out)")
        let line = try #require(out.split(separator: "\n").first { $0.contains("Overall exposure level") }, "\(out)")
        // "→ Overall exposure level for crypto-sentinel.service: 1.9 OK 🙂"
        let value = try #require(line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }, "\(line)")
        #expect(value <= 4.0, "\(line)")
    }

    /// systemd ignores a misspelt directive with a warning only, and the security score would not notice:
    /// `systemd-analyze verify` must have nothing to say but that the binary is not installed here.
    @Test("systemd-analyze verify: no unknown keys or bad values in either unit")
    func verify() throws {
        let (_, out) = try JournaldLease.runTool("/usr/bin/systemd-analyze", ["verify", "--man=no", Self.service, Self.socket])
        let complaints = out.split(separator: "\n").filter {
            !$0.contains("Command /usr/local/bin/crypto-sentinel is not executable")
        }
        #expect(complaints.isEmpty, "\(out)")
    }

    @Test("the service keeps what auditing needs: notify + watchdog, the capabilities, no ProtectProc")
    func serviceSettings() throws {
        let s = try Self.settings(Self.service)
        let d = Dictionary(s, uniquingKeysWith: { _, b in b })
        #expect(d["Type"] == "notify")
        #expect(d["NotifyAccess"] == "main")
        #expect(d["WatchdogSec"] == "30s")
        #expect(d["ExecStart"] == "/usr/local/bin/crypto-sentinel daemon")
        // The binary signals itself: a minimal image has no /bin/kill (procps).
        #expect(d["ExecReload"] == "/usr/local/bin/crypto-sentinel reload --pid $MAINPID")
        #expect(d["RuntimeDirectoryPreserve"] == "yes", "a stopped service must not take the socket unit's api.sock with it")
        #expect(d["RuntimeDirectory"] == "crypto-sentinel")
        #expect(d["StateDirectory"] == "crypto-sentinel")
        #expect(d["Restart"] == "on-failure")
        #expect(d["LimitNOFILE"] == "4096")
        #expect(d["RestrictAddressFamilies"] == "AF_UNIX")
        #expect(d["SystemCallFilter"] == "@system-service")
        let caps = Set((d["CapabilityBoundingSet"] ?? "").split(separator: " ").map(String.init))
        #expect(caps.isSuperset(of: ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"]))
        // setns() into the service's mount namespace and chroot() into its root (the POST child).
        #expect(caps.isSuperset(of: ["CAP_SYS_ADMIN", "CAP_SYS_CHROOT"]) && d["RestrictNamespaces"] == "mnt")
        // Hiding processes, /proc/sys, user namespaces or root-without-caps-on-exec would blind or break the audit.
        for forbidden in ["ProtectProc", "ProcSubset", "PrivateUsers", "User", "DynamicUser", "SecureBits", "ReadOnlyPaths", "InaccessiblePaths"] {
            #expect(d[forbidden] == nil, "\(forbidden)= must not be set")
        }
        #expect(!(d["SystemCallFilter"] ?? "").contains("~@privileged"), "setuid is how the POST child drops to the service's user")
        #expect(!(d["SystemCallFilter"] ?? "").contains("~@resources"), "the probe sets rlimits")
    }

    @Test("the socket unit: the API path, mode 0660")
    func socketSettings() throws {
        let d = Dictionary(try Self.settings(Self.socket), uniquingKeysWith: { _, b in b })
        #expect(d["ListenStream"] == "/run/crypto-sentinel/api.sock")
        #expect(d["SocketMode"] == "0660")
        #expect(d["Service"] == "crypto-sentinel.service")
    }

    /// `make install-files` needs no build; `make install` = release build + install-files + binaries.
    @Test("make install-files DESTDIR=… places units, catalog, example config and docs", arguments: ["", "/opt/cs", "/usr"])
    func installFiles(prefix: String) throws {
        let dest = try Fixtures.temporaryDirectory("install")
        defer { try? FileManager.default.removeItem(atPath: dest) }
        let (status, out) = try JournaldLease.runTool("/usr/bin/make", ["-C", FixtureScripts.packageRoot, "install-files", "DESTDIR=" + dest]
                                                      + (prefix.isEmpty ? [] : ["PREFIX=" + prefix]))
        #expect(status == 0, "\(out)")
        let p = prefix.isEmpty ? "/usr/local" : prefix
        // Every path under the prefix, but a distribution's (PREFIX=/usr) configuration in /etc.
        let conf = p == "/usr" ? "/etc/crypto-sentinel" : p + "/etc/crypto-sentinel"
        let expected = [
            p + "/lib/systemd/system/crypto-sentinel.service", p + "/lib/systemd/system/crypto-sentinel.socket",
            p + "/lib/systemd/catalog/crypto-sentinel.catalog", conf + "/config.example.yaml",
            p + "/share/doc/crypto-sentinel/README.md", p + "/share/doc/crypto-sentinel/systemd.md",
            p + "/share/doc/crypto-sentinel/fips-validations.json",
        ]
        let fm = FileManager.default
        for file in expected {
            let attributes = try fm.attributesOfItem(atPath: dest + file)
            #expect((attributes[.posixPermissions] as? Int) == 0o644, "\(file)")
        }
        // Nothing else: no config.yaml over the admin's, no catalog database in a staging root.
        let all = fm.enumerator(atPath: dest)!.compactMap { $0 as? String }.filter { path in
            var isDir: ObjCBool = false
            return fm.fileExists(atPath: dest + "/" + path, isDirectory: &isDir) && !isDir.boolValue
        }
        #expect(Set(all.map { "/" + $0 }) == Set(expected))

        let unit = try String(contentsOfFile: dest + p + "/lib/systemd/system/crypto-sentinel.service", encoding: .utf8)
        #expect(unit.contains("\nExecStart=\(p)/bin/crypto-sentinel daemon\n"))
        #expect(unit.contains("\nEnvironment=CRYPTO_SENTINEL_CONFIG=\(conf)/config.yaml\n"), "the daemon reads the config where it was installed")
        let catalog = try String(contentsOfFile: dest + p + "/lib/systemd/catalog/crypto-sentinel.catalog", encoding: .utf8)
        #expect(catalog.contains("Documentation: file://\(p)/share/doc/crypto-sentinel/README.md"))
        #expect(catalog.contains("-- \(FindingCode.splitLibcrypto.messageID)\n"))
        // The installed unit still scores, and the installed catalog compiles under that root.
        let (scoreStatus, score) = try JournaldLease.runTool("/usr/bin/systemd-analyze", ["security", "--offline=yes", "--no-pager", dest + p + "/lib/systemd/system/crypto-sentinel.service"])
        #expect(scoreStatus == 0 && score.contains("Overall exposure level"), "\(score)")
        // (journalctl reads catalogs from /usr/lib and /usr/local/lib only.)
        if p == "/usr" || p == "/usr/local" {
            let (catStatus, catOut) = try JournaldLease.runTool(JournaldLease.journalctl, ["--root=" + dest, "--update-catalog"])
            #expect(catStatus == 0 && fm.fileExists(atPath: dest + "/var/lib/systemd/catalog/database"), "\(catOut)")
        }
    }

    /// What `make install` adds from the binary (it runs install-generated with the release build; the
    /// debug build beside the tests makes the same files).
    @Test func makeInstallGeneratedPlacesCompletionsAndTheManPage() throws {
        let dest = try Fixtures.temporaryDirectory("install")
        defer { try? FileManager.default.removeItem(atPath: dest) }
        let bin = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().appendingPathComponent("crypto-sentinel").path
        let (status, out) = try JournaldLease.runTool("/usr/bin/make", ["-C", FixtureScripts.packageRoot, "install-generated",
                                                                        "DESTDIR=" + dest, "PREFIX=/usr", "BIN=" + bin])
        #expect(status == 0, "\(out)")
        let files = ["/usr/share/bash-completion/completions/crypto-sentinel": "-F _crypto-sentinel crypto-sentinel",
                     "/usr/share/zsh/site-functions/_crypto-sentinel": "#compdef crypto-sentinel",
                     "/usr/share/fish/vendor_completions.d/crypto-sentinel.fish": "complete -c 'crypto-sentinel'",
                     "/usr/share/man/man1/crypto-sentinel.1": ".TH \"CRYPTO-SENTINEL\" \"1\""]
        for (file, marker) in files {
            let text = (try? String(contentsOfFile: dest + file, encoding: .utf8)) ?? ""
            #expect(text.contains(marker), "\(file): \(text.prefix(200))")
            #expect((try? FileManager.default.attributesOfItem(atPath: dest + file)[.posixPermissions] as? Int) == 0o644, "\(file)")
        }
        // The page renders without roff warnings and documents every subcommand and its options.
        let (manStatus, page) = try JournaldLease.runTool("/usr/bin/man", ["--warnings", "-l", dest + "/usr/share/man/man1/crypto-sentinel.1"])
        #expect(manStatus == 0 && !page.contains("troff:"), "\(page.prefix(500))")
        for section in ["crypto-sentinel scan", "crypto-sentinel resolve", "crypto-sentinel inspect", "crypto-sentinel post",
                        "crypto-sentinel daemon", "crypto-sentinel status", "--expect-fips", "--timeout", "--waivers"] {
            #expect(page.contains(section), "\(section)")
        }
    }

    /// `make setup` (and so `make demo`) installs only what is missing, and no service of what it installs
    /// starts or is enabled while apt runs: apt-get and dpkg-query are stand-ins that record what they see.
    @Test func makeSetupInstallsOnlyWhatIsMissingAndStartsNoService() throws {
        let dir = try Fixtures.temporaryDirectory("setup")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        let fakes = [
            "dpkg-query": "#!/bin/sh\n[ \"$3\" = present ] && printf 'install ok installed'\nexit 0\n",
            // What a postinst would ask: may nginx start (policy-rc.d), is a new unit enabled (presets)?
            "apt-get": """
                #!/bin/sh
                echo "apt-get $*" >> "$LOG"
                [ "$1" = install ] || exit 0
                "$POLICY_RC_D" nginx start; echo "policy-rc.d: $?" >> "$LOG"
                cat "$PRESET" >> "$LOG"
                """,
        ]
        for (name, text) in fakes {
            try text.write(toFile: dir + "/bin/" + name, atomically: true, encoding: .utf8)
            chmod(dir + "/bin/" + name, 0o755)
        }
        let (status, out) = try JournaldLease.runTool("/usr/bin/env", [
            "PATH=\(dir)/bin:/usr/bin:/bin", "LOG=\(dir)/log", "POLICY_RC_D=\(dir)/policy-rc.d", "PRESET=\(dir)/preset/00-x.preset",
            "/usr/bin/make", "-C", FixtureScripts.packageRoot, "setup", "APT_PACKAGES=present nginx-light absent"])
        #expect(status == 0, "\(out)")
        let log = (try? String(contentsOfFile: dir + "/log", encoding: .utf8)) ?? ""
        #expect(log.contains("apt-get install -y -qq nginx-light absent\n"), "\(log)")
        #expect(log.contains("policy-rc.d: 101\n"), "no start allowed while installing: \(log)")
        #expect(log.contains("\ndisable *\n"), "no unit enabled while installing: \(log)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/policy-rc.d") && !FileManager.default.fileExists(atPath: dir + "/preset/00-x.preset"))

        // Nothing missing: apt is not run at all.
        try FileManager.default.removeItem(atPath: dir + "/log")
        let (again, againOut) = try JournaldLease.runTool("/usr/bin/env", [
            "PATH=\(dir)/bin:/usr/bin:/bin", "LOG=\(dir)/log", "/usr/bin/make", "-C", FixtureScripts.packageRoot, "setup", "APT_PACKAGES=present"])
        #expect(again == 0 && !FileManager.default.fileExists(atPath: dir + "/log"), "\(againOut)")
    }
}
