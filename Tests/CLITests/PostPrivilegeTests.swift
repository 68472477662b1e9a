import Foundation
import Glibc
import SentinelCore
import SentinelTestSupport
import Testing

/// The POST child attacked the way a hostile service user would: the service's own environment names
/// an LD_PRELOAD (scripts/fixtures/post-src/preloadspy.c) that records what each process loading it
/// holds. The probe must hold no descriptor of its caller and never more than the service itself.
@Suite("post privileges", .serialized)
struct PostPrivilegeTests {
    static let python = "/usr/bin/python3"

    /// A folder every user may write (the spy runs as the service's user), and the spy's path.
    struct Spy {
        let dir: String, library: String
        var held: String { dir + "/held" }
        init() throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-held-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            chmod(dir, 0o1777)
            library = URL(fileURLWithPath: try Fixtures.postLib("hang")).deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("preloadspy.so").path
            // Created here, writable by all: whichever process loads the spy first must not own them.
            for log in [dir + "/held", dir + "/uids"] {
                _ = FileManager.default.createFile(atPath: log, contents: nil)
                chmod(log, 0o666)
            }
        }
        var environment: [String: String] { ["LD_PRELOAD": library, "SPY_LOG": dir + "/uids", "SPY_HELD": held] }
        /// One dictionary per probe process that loaded the spy ("fds", "CapEff", "NoNewPrivs", "mnt", …).
        func probes() -> [[String: String]] { lines().filter { $0["exe"] == "sentinel-probe" } }
        func lines() -> [[String: String]] {
            ((try? String(contentsOfFile: held, encoding: .utf8)) ?? "").split(separator: "\n").map { line in
                Dictionary(line.split(separator: " ").compactMap { field -> (String, String)? in
                    let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
                }, uniquingKeysWith: { a, _ in a })
            }
        }
        func remove() { try? FileManager.default.removeItem(atPath: dir) }
    }

    static func caps(_ line: [String: String], _ name: String) -> UInt64? { line[name].flatMap { UInt64($0, radix: 16) } }

    /// `post` from a shell holding a root-only file open: the probe (and so the service's preload)
    /// starts with descriptors 0-2 only.
    @Test func theProbeInheritsNoDescriptorFromItsCaller() throws {
        let spy = try Spy()
        defer { spy.remove() }
        let service = try Service([Self.python, "-c", "import ssl, time; time.sleep(120)"], environment: spy.environment, user: "nobody")
        defer { service.stop() }
        #expect(service.waitForLibcrypto())
        let r = try Sentinel.shell(["/bin/sh", "-c", "exec 7</etc/shadow 8<>/dev/null; exec \"$0\" post --pid $1 --format json",
                                    Sentinel.binary, String(service.pid)])
        #expect(r.report != nil, "\(r.stderr)")
        let probes = spy.probes()
        #expect(!probes.isEmpty, "the spy ran in no probe: \(spy.lines())")
        for p in probes { #expect(p["fds"] == "", "the probe held \(p["fds"] ?? "?")") }
    }

    /// The daemon's POST of a service whose user controls LD_PRELOAD: the probe holds none of the
    /// daemon's sockets, its epoll or its files, and the API keeps answering.
    @Test func theDaemonsSocketsNeverReachAProbe() throws {
        let spy = try Spy()
        defer { spy.remove() }
        let service = try Service([Self.python, "-c", "import ssl, time; time.sleep(120)"], environment: spy.environment, user: "nobody")
        defer { service.stop() }
        #expect(service.waitForLibcrypto())
        let pidFile = spy.dir + "/service.pid"
        try "\(service.pid)\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
        let d = try DaemonUnderTest(config: """
            interval: 1h
            services:
              - name: hostile
                pid_file: \(pidFile)
            """)
        defer { d.stop(); d.remove() }
        #expect(d.waitForNotify { $0.contains("READY=1") } != nil, "no READY=1; stderr: \(d.stderr)")
        let probes = spy.probes()
        #expect(!probes.isEmpty, "the spy ran in no probe: \(spy.lines())")
        for p in probes { #expect(p["fds"] == "", "the probe held the daemon's \(p["fds"] ?? "?")") }
        #expect(try d.curl("/v1/health").code == 200)
    }

    /// A root service without capabilities (systemd's CapabilityBoundingSet=): its POST holds none
    /// either, in any set, and cannot regain them by exec.
    @Test func aRootServiceWithoutCapabilitiesGetsAProbeWithout() throws {
        let spy = try Spy()
        defer { spy.remove() }
        let service = try Service(["/usr/bin/setpriv", "--bounding-set=-all", "--inh-caps=-all", "--",
                                   Self.python, "-c", "import ssl, time; time.sleep(120)"], environment: spy.environment)
        defer { service.stop() }
        #expect(service.waitForLibcrypto())
        let own = try #require(spy.lines().first { $0["exe"]?.hasPrefix("python") == true }, "\(spy.lines())")
        #expect(Self.caps(own, "CapBnd") == 0 && Self.caps(own, "CapEff") == 0, "the service: \(own)")
        let r = try Sentinel.run(["post", "--pid", String(service.pid), "--format", "json", "--command", "/bin/true"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let probes = spy.probes()
        #expect(!probes.isEmpty, "the spy ran in no probe: \(spy.lines())")
        for p in probes {
            for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                #expect(Self.caps(p, set) == 0, "the probe's \(set) is \(p[set] ?? "?")")
            }
            #expect(p["NoNewPrivs"] == "1")
        }
        #expect(r.report?.targets.first?.post?["run_as"]?.stringValue?.contains("capability bounds") == true)
    }

    /// A service in a mount namespace of its own: paths (its LD_PRELOAD, here only mounted there)
    /// resolve as the service sees them, because the probe joins that namespace.
    @Test func theProbeRunsInTheServicesMountNamespace() throws {
        let spy = try Spy()
        defer { spy.remove() }
        let privateDir = spy.dir + "/private"
        try FileManager.default.createDirectory(atPath: privateDir, withIntermediateDirectories: true)
        // Inside its namespace only, a tmpfs over privateDir holds the spy.
        var env = spy.environment
        env["LD_PRELOAD"] = privateDir + "/spy.so"
        let script = "mount -t tmpfs tmpfs \(privateDir) && cp \(spy.library) \(privateDir)/spy.so && chmod 755 \(privateDir) && exec \"$@\""
        let service = try Service(["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, "sh",
                                   "/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                                   Self.python, "-c", "import ssl, time; time.sleep(120)"], environment: env)
        defer { service.stop() }
        let pid = try #require(Self.descendant(of: service.pid, named: "python3"), "the service did not start")
        let serviceNS = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")
        #expect(serviceNS != (try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")))
        let r = try Sentinel.run(["post", "--pid", String(pid), "--format", "json"])
        #expect(r.report != nil, "\(r.stderr)")
        let probes = spy.probes()
        #expect(!probes.isEmpty, "the service's LD_PRELOAD did not load in the probe: \(spy.lines())")
        for p in probes { #expect(p["mnt"] == serviceNS) }
    }

    /// A service whose cwd was deleted: the POST still runs, and the rest of the drop (no_new_privs,
    /// not dumpable) is not skipped because the cwd step failed.
    @Test func aDeletedCwdSkipsNothingOfTheDrop() throws {
        let spy = try Spy()
        defer { spy.remove() }
        let cwd = spy.dir + "/cwd"
        try FileManager.default.createDirectory(atPath: cwd, withIntermediateDirectories: true)
        chown(cwd, 65534, 65534)  // the service removes it itself
        let service = try Service([Self.python, "-c", "import os, ssl, time; os.rmdir(os.getcwd()); print('gone', flush=True); time.sleep(120)"],
                                  environment: spy.environment, user: "nobody", cwd: cwd)
        defer { service.stop() }
        #expect(service.waitForLibcrypto())
        let deadline = Date().addingTimeInterval(20)
        while FileManager.default.fileExists(atPath: cwd), Date() < deadline { usleep(20_000) }
        let r = try Sentinel.run(["post", "--pid", String(service.pid), "--format", "json"])
        #expect(r.report != nil, "\(r.stderr)")
        let probes = spy.probes()
        #expect(!probes.isEmpty, "\(spy.lines())")
        for p in probes { #expect(p["NoNewPrivs"] == "1", "\(p)") }
    }

    /// The first process named `name` among `pid` and its descendants (unshare and sh exec or fork).
    static func descendant(of pid: Int32, named name: String, seconds: Double = 20) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var queue = [pid]
            while let p = queue.popLast() {
                if let comm = try? String(contentsOfFile: "/proc/\(p)/comm", encoding: .utf8),
                   comm.trimmingCharacters(in: .whitespacesAndNewlines) == name,
                   let maps = FileHandle(forReadingAtPath: "/proc/\(p)/maps")?.readDataToEndOfFile(),
                   String(decoding: maps, as: UTF8.self).contains("libcrypto") { return p }
                let children = (try? String(contentsOfFile: "/proc/\(p)/task/\(p)/children", encoding: .utf8)) ?? ""
                queue += children.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
            usleep(50_000)
        }
        return nil
    }
}

/// Bounded work for what a service maps: a 1 GiB sparse file named like a libcrypto, mapped and
/// deleted by a process any user can start, used to be read whole and written to /tmp by `post`.
@Suite("post bounded", .serialized)
struct PostBoundedTests {
    @Test func aHugeDeletedMappingIsNeitherReadWholeNorCopied() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-huge-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lib = dir + "/libcrypto.so.3"
        let service = try LiveProcess(["/usr/bin/python3", "-c", """
            import mmap, os, time
            f = open('\(lib)', 'wb+'); f.truncate(1 << 30)
            m = mmap.mmap(f.fileno(), 1 << 30, prot=mmap.PROT_READ); os.remove('\(lib)')
            print('mapped', flush=True); time.sleep(120)
            """])
        defer { service.stop() }
        #expect(service.firstLine == "mapped")
        let r = try Sentinel.shell(["/usr/bin/time", "-f", "maxrss_kb=%M", Sentinel.binary, "post", "--pid", String(service.pid), "--format", "json"])
        let rss = r.stderr.split(separator: "\n").compactMap { $0.hasPrefix("maxrss_kb=") ? Int($0.dropFirst(10)) : nil }.first
        #expect(r.report?.targets.contains { $0.name.hasSuffix(lib + " (deleted)") } == true, "\(r.stdout.prefix(400)) \(r.stderr)")
        #expect(r.findings(.processDeletedLibrary).first?.evidence["mapped_range"]?.stringValue != nil)
        let kb = try #require(rss)
        // It was read into memory whole (and written to /tmp) to be tested: about 1 GiB at the peak.
        #expect(kb < 200_000, "post peaked at \(kb) KiB for a 1 GiB mapping")
    }
}
