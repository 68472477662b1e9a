import Foundation
import SentinelCore
import SentinelTestSupport
import Testing

/// A real process started for a test: waits for its first line ("ready"), killed by `stop()` (defer).
extension Fixtures {
    /// scripts/fixtures/processes.sh: the holdlibs program and small stand-in OpenSSL files.
    static func proc() throws -> String {
        try FixtureScripts.build("processes.sh", out: root + "/proc")
        return root + "/proc"
    }

    /// A fresh folder readable by everyone (uid 65534 runs some of the fixture processes).
    static func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-proc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        return dir
    }

    static let systemLibcrypto = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"
}

func identity(_ path: String) -> String {
    var st = stat()
    guard stat(path, &st) == 0 else { return "missing" }
    return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)).description
}

@Suite struct InspectTests {
    /// Two libcrypto files and Debian 13's real fips.so in one process (OpenSSL issue #27691).
    @Test func twoLibcryptosAndOneFIPSModule() throws {
        let fx = try Fixtures.proc()
        let lab = try FIPSLab()
        defer { lab.remove() }
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Fixtures.systemLibcrypto, toPath: dir + "/libcrypto.so.3")
        let p = try LiveProcess([fx + "/holdlibs", Fixtures.systemLibcrypto, dir + "/libcrypto.so.3", lab.modules + "/fips.so"])
        defer { p.stop() }
        #expect(p.firstLine == "ready")
        let r = try Sentinel.run(["inspect", "--pid", "\(p.pid)", "--format", "json"])
        let shared = try #require(r.findings(.processFIPSShared).first, "\(r.codes())")
        #expect(shared.severity == .critical)
        #expect(shared.evidence["libcrypto"]?.arrayValue?.count == 2)
        #expect(shared.evidence["fips_modules"]?.arrayValue?.compactMap(\.stringValue).first?.hasPrefix(lab.modules + "/fips.so (") == true)
        // One libcrypto and the module: nothing shared.
        let one = try LiveProcess([fx + "/holdlibs", Fixtures.systemLibcrypto, lab.modules + "/fips.so"])
        defer { one.stop() }
        #expect(try Sentinel.run(["inspect", "--pid", "\(one.pid)", "--format", "json"]).findings(.processFIPSShared).isEmpty)
    }

    @Test func twoCopiesOfTheSystemLibcryptoInOneProcess() throws {
        let fx = try Fixtures.proc()
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for sub in ["a", "b"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Fixtures.systemLibcrypto, toPath: "\(dir)/\(sub)/libcrypto.so.3")
        }
        // environ is hostile input: only the OpenSSL and loader variables may come out.
        let p = try LiveProcess([fx + "/holdlibs", "\(dir)/a/libcrypto.so.3", "\(dir)/b/libcrypto.so.3"],
                                environment: ["OPENSSL_CONF": "/etc/ssl/fips.cnf", "API_TOKEN": "hunter2-secret", "PATH": "/usr/bin"])
        defer { p.stop() }
        #expect(p.firstLine == "ready")
        let r = try Sentinel.run(["inspect", "--pid", "\(p.pid)", "--format", "json"])
        #expect(r.status == 1)
        #expect(!r.stdout.contains("hunter2") && !r.stderr.contains("hunter2"))
        let target = try #require(r.report?.targets.first)
        #expect(target.kind == "process" && target.name == "pid \(p.pid) (holdlibs)")
        #expect(target.environment == ["OPENSSL_CONF": "/etc/ssl/fips.cnf"])
        #expect(target.stats["openssl_libraries"] == 2 && target.stats["uid"] == 0)
        let split = try #require(r.findings(.processSplitLibcrypto).first)
        #expect(split.severity == .critical && split.evidence["library"] == "libcrypto")
        let copies = split.evidence["copies"]?.arrayValue ?? []
        #expect(Set(copies.compactMap { $0["path"]?.stringValue }) == ["\(dir)/a/libcrypto.so.3", "\(dir)/b/libcrypto.so.3"])
        #expect(Set(copies.compactMap { $0["device_inode"]?.stringValue }) == [identity("\(dir)/a/libcrypto.so.3"), identity("\(dir)/b/libcrypto.so.3")])
        #expect(copies.allSatisfy { ($0["version"]?.stringValue ?? "").hasPrefix("3.0.") })  // read from the file: Debian 12's 3.0.x
        #expect(copies.allSatisfy { $0["needed_by"]?.stringValue?.hasPrefix("no mapped object names it") == true })

        let text = try Sentinel.run(["inspect", "--pid", "\(p.pid)"])
        #expect(text.status == 1)
        #expect(text.stdout.contains("critical[process-split-libcrypto]: pid \(p.pid) (holdlibs) maps 2 different libcrypto files"))
        #expect(text.stdout.contains("environment: OPENSSL_CONF=/etc/ssl/fips.cnf\n"))
    }

    /// The real split cx_Freeze bundle run as a service: moved into a cgroup named like a systemd
    /// unit (cgroup v2 is mounted here; PID 1 is not systemd, so the unit is only a cgroup directory).
    @Test func realSplitBundleAsAService() throws {
        let bundle = try Fixtures.cxfreeze("debian")
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = try LiveProcess([bundle + "/app", "--serve"],
                                environment: ["PATH": "/usr/bin:/bin", "OPENSSL_MODULES": "/usr/lib/x86_64-linux-gnu/ossl-modules"])
        defer { p.stop() }
        #expect(p.firstLine.hasPrefix("ssl: OpenSSL 3.5"))

        let fake = FakeUnit("product-api.service")
        let unit = fake.flatMap { $0.adopt(p.pid) ? $0.name : nil }
        defer {
            p.stop()
            fake?.remove()
        }
        try #require(unit != nil, "could not create a cgroup directory for the fake unit")
        let cgroup = try String(contentsOfFile: "/proc/\(p.pid)/cgroup", encoding: .utf8)
        #expect(CgroupUnit.unit(cgroupFile: cgroup) == "product-api.service")

        let r = try Sentinel.run(["inspect", "--unit", "product-api", "--format", "json"])
        #expect(r.status == 1)
        let target = try #require(r.report?.targets.first { $0.stats["pid"] == Int(p.pid) })
        #expect(target.name == "product-api.service pid \(p.pid) (app)")
        #expect(target.root == bundle + "/app")
        #expect(target.environment == ["OPENSSL_MODULES": "/usr/lib/x86_64-linux-gnu/ossl-modules"])
        let splits = target.findings.filter { $0.code == .processSplitLibcrypto }
        #expect(Set(splits.compactMap { $0.evidence["library"]?.stringValue }) == ["libcrypto", "libssl"])
        let crypto = try #require(splits.first { $0.evidence["library"] == "libcrypto" })
        let copies = crypto.evidence["copies"]?.arrayValue ?? []
        let bundled = try #require(copies.first { $0["path"]?.stringValue == bundle + "/lib/libcrypto-27e744a7.so.3" })
        #expect(bundled["version"]?.stringValue?.hasPrefix("3.5.") == true)
        let bundledConsumers = bundled["needed_by"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(bundledConsumers.contains { $0.hasPrefix(bundle + "/lib/_ssl.cpython-311") && $0.hasSuffix("needs libcrypto-27e744a7.so.3") })
        let system = try #require(copies.first { $0["path"]?.stringValue?.hasSuffix("x86_64-linux-gnu/libcrypto.so.3") == true })
        #expect(system["needed_by"]?.arrayValue?.compactMap(\.stringValue).contains { $0.contains("_openssl.abi3.so needs libcrypto.so.3") } == true)
        #expect(crypto.fix.contains("systemctl restart product-api.service   # after fixing the bundle"))

        // The same process by its executable, by a pid file, and in --all; --with-bundle adds the scan.
        try "\(p.pid)\n".write(toFile: dir + "/app.pid", atomically: true, encoding: .utf8)
        let byExe = try Sentinel.run(["inspect", "--exe", bundle + "/app", "--format", "json"])
        #expect(byExe.report?.targets.contains { $0.stats["pid"] == Int(p.pid) } == true)
        let byFile = try Sentinel.run(["inspect", "--pid-file", dir + "/app.pid", "--with-bundle", "--format", "json"])
        #expect(byFile.report?.targets.map(\.kind) == ["process", "bundle"])
        let scan = try #require(byFile.report?.targets.last)
        #expect(scan.name == "debian (as run by pid \(p.pid))" && scan.environment["OPENSSL_MODULES"] != nil)
        #expect(scan.findings.contains { $0.code == .splitLibcrypto })
        // With the service's OPENSSL_MODULES the bundled libcrypto's missing MODULESDIR is no finding.
        #expect(!scan.findings.contains { $0.code == .modulesDirMissing })
        let all = try Sentinel.run(["inspect", "--format", "json"])
        #expect(all.report?.command == "inspect")
        #expect(all.report?.targets.contains { $0.stats["pid"] == Int(p.pid) && $0.state == .failed } == true)
    }

    @Test func libraryReplacedOnDiskAndAFileNamedDeleted() throws {
        let fx = try Fixtures.proc()
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let replaced = dir + "/lib/libcrypto.so.3", named = dir + "/odd/libcrypto.so.3 (deleted)"
        for path in [replaced, named] {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: fx + "/fake/a/libcrypto.so.3", toPath: replaced)
        try FileManager.default.copyItem(atPath: fx + "/fake/b/libcrypto.so.3", toPath: named)
        let p = try LiveProcess([fx + "/holdlibs", replaced, named])
        defer { p.stop() }
        let old = identity(replaced)
        // An upgrade the usual way: a new file renamed over the mapped one.
        try FileManager.default.copyItem(atPath: fx + "/fake/b/libcrypto.so.3", toPath: dir + "/lib/.new")
        #expect(rename(dir + "/lib/.new", replaced) == 0)

        let r = try Sentinel.run(["inspect", "--pid", "\(p.pid)", "--format", "json"])
        let deleted = r.findings(.processDeletedLibrary)
        #expect(deleted.count == 1, "\(r.stdout)")
        let f = try #require(deleted.first)
        #expect(f.evidence["path"]?.stringValue == replaced)
        #expect(f.evidence["maps_pathname"]?.stringValue == replaced + " (deleted)")
        #expect(f.evidence["mapped_device_inode"]?.stringValue == old)
        #expect(f.evidence["now_at_path"]?.stringValue == identity(replaced) && old != identity(replaced))
        #expect(f.evidence["role"] == "libcrypto" && f.evidence["version"] == "3.0.99")  // content read through map_files
        #expect(f.severity == .warning)
        // The file really named "… (deleted)" is mapped, current, and one of the two copies.
        let copies = r.findings(.processSplitLibcrypto).first?.evidence["copies"]?.arrayValue ?? []
        #expect(copies.contains { $0["path"]?.stringValue == named && $0["deleted_on_disk"] == false })
    }

    @Test func staticCopyFIPSAndEnvironmentExpectations() throws {
        let fx = try Fixtures.proc()
        let p = try LiveProcess([fx + "/holdlibs", fx + "/fake/a/libcrypto.so.3", fx + "/fake/static/_static.abi3.so"],
                                environment: ["OPENSSL_CONF": "/etc/ssl/openssl.cnf"])
        defer { p.stop() }
        let r = try Sentinel.run(["inspect", "--pid", "\(p.pid)", "--expect-fips", "--expect-env", "OPENSSL_CONF=/opt/product/fips.cnf",
                                  "--expect-env", "OPENSSL_MODULES=/opt/product/ossl-modules", "--format", "json"])
        #expect(r.codes() == ["process-env-drift", "process-fips-not-loaded", "process-static-openssl"])
        #expect(r.status == 1)
        #expect(r.findings(.processStaticOpenSSL).first?.evidence["version"] == "4.0.99")
        let diffs = r.findings(.processEnvDrift).first?.evidence["differences"]?.arrayValue ?? []
        #expect(diffs.contains(["variable": "OPENSSL_MODULES", "expected": "/opt/product/ossl-modules", "actual": "(unset)"]))
        #expect(diffs.contains(["variable": "OPENSSL_CONF", "expected": "/opt/product/fips.cnf", "actual": "/etc/ssl/openssl.cnf"]))
        let ok = try Sentinel.run(["inspect", "--pid", "\(p.pid)", "--expect-env", "OPENSSL_CONF=/etc/ssl/openssl.cnf", "--format", "json"])
        #expect(ok.codes() == ["process-static-openssl"] && ok.status == 0)

        let withFIPS = try LiveProcess([fx + "/holdlibs", fx + "/fake/a/libcrypto.so.3", fx + "/fake/ossl-modules/fips.so"])
        defer { withFIPS.stop() }
        let fips = try Sentinel.run(["inspect", "--pid", "\(withFIPS.pid)", "--expect-fips", "--format", "json", "--fail-on", "info"])
        #expect(fips.codes() == [] && fips.status == 0, "\(fips.stdout)")
    }

    @Test func exitedAndZombieProcessesAreReported() throws {
        // A zombie: its parent never waits for it (python reaps nothing by itself, where bash could reap
        // the child before exec'ing sleep); maps reads empty, exe is gone.
        let p = try LiveProcess(["/usr/bin/python3", "-c",
                                 "import os, time\npid = os.fork()\nif pid == 0: os._exit(0)\nprint(pid, flush=True)\ntime.sleep(100)"])
        defer { p.stop() }
        let zombie = try #require(Int32(p.firstLine))
        for _ in 0..<2000 where !((try? String(contentsOfFile: "/proc/\(zombie)/stat", encoding: .utf8))?.contains(") Z ") ?? false) { usleep(10_000) }
        let r = try Sentinel.run(["inspect", "--pid", "\(zombie)", "--format", "json"])
        let f = try #require(r.findings(.processUnreadable).first, "\(r.stdout)")
        #expect(f.summary.hasSuffix("could not be read: process exited"))
        #expect(r.status == 0)  // a warning, below the default --fail-on error

        // Gone entirely (reaped) before inspect starts: nothing to inspect, a usage error like --unit nosuch.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let g = try Sentinel.run(["inspect", "--pid", "\(gone.processIdentifier)", "--format", "json", "--fail-on", "warning"])
        #expect(g.status == 2 && g.stdout.isEmpty, "\(g.stdout)")
        #expect(g.stderr == "crypto-sentinel: --pid \(gone.processIdentifier): no such process\n", "\(g.stderr)")
    }

    @Test func anotherUsersProcessAndAnUnprivilegedInspector() throws {
        let fx = try Fixtures.proc()
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for sub in ["a", "b"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: fx + "/fake/\(sub)/libcrypto.so.3", toPath: "\(dir)/\(sub)/libcrypto.so.3")
        }
        let nobody = try LiveProcess([fx + "/holdlibs", "\(dir)/a/libcrypto.so.3", "\(dir)/b/libcrypto.so.3"], as: "65534")
        defer { nobody.stop() }
        let rootOwned = try LiveProcess([fx + "/holdlibs", fx + "/fake/a/libcrypto.so.3"])
        defer { rootOwned.stop() }
        let nobodyPid = try #require(pidOfChild(nobody.pid))  // setpriv execs, so usually the same pid

        // As root: another uid's process is fully readable.
        let asRoot = try Sentinel.run(["inspect", "--pid", "\(nobodyPid)", "--format", "json"])
        let t = try #require(asRoot.report?.targets.first)
        #expect(t.stats["uid"] == 65534 && t.stats["gid"] == 65534)
        #expect(asRoot.codes() == ["process-split-libcrypto"])

        // As uid 65534 without CAP_SYS_PTRACE: root's process cannot be read, and says so.
        let denied = try Sentinel.run(["inspect", "--pid", "\(rootOwned.pid)", "--format", "json"], as: "65534")
        let f = try #require(denied.findings(.processUnreadable).first, "\(denied.stdout)\(denied.stderr)")
        #expect(f.summary.contains("maps") && f.summary.hasSuffix("could not be read: permission denied"))
        #expect(f.fix.first?.contains("CAP_SYS_PTRACE") == true)
        #expect(denied.status == 0)
        // Its own uid's process it can read.
        let own = try Sentinel.run(["inspect", "--pid", "\(nobodyPid)", "--format", "json"], as: "65534")
        #expect(own.codes() == ["process-split-libcrypto"], "\(own.stdout)")
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try Sentinel.run(["inspect", "--expect-env", "PYTHONPATH=/x"]).status == 2)
        #expect(try Sentinel.run(["inspect", "--expect-env", "novalue"]).status == 2)
        let noUnit = try Sentinel.run(["inspect", "--unit", "no-such-unit-\(UUID().uuidString.prefix(6))"])
        #expect(noUnit.status == 2 && noUnit.stderr.contains("no running process is in this unit"))
        #expect(try Sentinel.run(["inspect", "--pid-file", "/nonexistent/app.pid"]).status == 2)
        #expect(try Sentinel.run(["inspect", "--exe", "/nonexistent/app"]).status == 2)
    }
}

/// setpriv execs the program in place; this tolerates a wrapper that forks instead.
func pidOfChild(_ pid: Int32) -> Int32? {
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"), exe.hasSuffix("holdlibs") { return pid }
    let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
    return children.split(separator: " ").first.flatMap { Int32($0) }
}
