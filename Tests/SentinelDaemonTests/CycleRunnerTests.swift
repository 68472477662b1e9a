import Foundation
import Glibc
import Testing
import SentinelCore
import SentinelSystem
import SentinelTestSupport
@testable import SentinelDaemon

/// One cycle on real things: the real split cx_Freeze service (Debian's python3-cryptography beside
/// the bundle's own libcrypto) running in a unit-named cgroup, its bundle, and the native probe.
@Suite(.serialized) struct CycleRunnerTests {
    static func cxfreeze(_ variant: String) throws -> String {
        try FixtureScripts.build("cxfreeze-bundles.sh", out: FixtureScripts.root + "/cxfreeze")
        return FixtureScripts.root + "/cxfreeze/" + variant
    }

    /// Configs go through the real parser, as the daemon reads them.
    func config(_ yaml: String) throws -> DaemonConfig { try DaemonConfig.parse(yaml, file: "test.yaml") }

    @Test func theSplitServiceFailsWithEveryLayerOfEvidence() throws {
        let bundle = try Self.cxfreeze("debian")
        let p = try LiveProcess([bundle + "/app", "--serve"],
                                environment: ["PATH": "/usr/bin:/bin", "OPENSSL_MODULES": "/usr/lib/x86_64-linux-gnu/ossl-modules"])
        let unit = try #require(FakeUnit("cycle-api.service"), "no writable cgroup hierarchy for a fake unit")
        defer { p.stop(); unit.remove() }
        try #require(unit.adopt(p.pid))

        let config = try config("""
            bundles:
              - name: product
                root: \(bundle)
            services:
              - name: product-api
                unit: cycle-api
                bundle: product
                environment: {OPENSSL_MODULES: /usr/lib/x86_64-linux-gnu/ossl-modules}
            """)
        let probe = try #require(PostRunner.locateProbe(), "sentinel-probe is built beside the test bundle")
        let report = try #require(CycleRunner(toolVersion: "test").run(config, probe: probe))

        #expect(report.targets.map(\.name) == ["product", "product-api"])
        let api = report.targets[1]
        #expect(api.kind == "service" && api.state == .failed && api.stats["processes"] == 1 && api.stats["pid"] == Int(p.pid))
        let codes = Set(api.findings.map(\.code))
        #expect(codes.isSuperset(of: [.processSplitLibcrypto, .splitLibcrypto]))
        #expect(api.findings.allSatisfy { $0.target == "product-api" })
        // One POST per libcrypto the service maps: two here.
        #expect(api.post?.arrayValue?.count == 2)
        // The host's FIPS state heads the report and each POST (the file is read from /proc).
        #expect(report.host == HostFIPSReader.read().json)
        #expect(api.post?.arrayValue?.allSatisfy { $0["host"] == report.host } == true)
        #expect(report.targets[0].findings.contains { $0.code == .splitLibcrypto })
        #expect(StatusLine.summary(report).hasPrefix("2 targets: 2 failed ("))
    }

    @Test func aServiceThatIsDownIsReportedAndPOSTedUnderItsConfiguredEnvironment() throws {
        let config = try config("""
            services:
              - name: ghost
                unit: no-such-unit-\(UUID().uuidString.prefix(6))
                environment: {OPENSSL_MODULES: /usr/lib/x86_64-linux-gnu/ossl-modules}
            """)
        let probe = try #require(PostRunner.locateProbe())
        let report = try #require(CycleRunner(toolVersion: "test").run(config, probe: probe))
        let ghost = try #require(report.targets.first)
        #expect(ghost.findings.map(\.code) == [.serviceNotRunning])
        #expect(ghost.state == .degraded && ghost.stats["processes"] == 0)
        // The POST ran as nobody with the configured environment, on the system's libcrypto.
        let post = try #require(ghost.post?.arrayValue?.first)
        #expect(post["run_as"]?.stringValue?.hasPrefix("uid 65534") == true)
    }

    /// A service's require:/forbid: lists reach its POST; the validation data is read every cycle and an
    /// unusable file is logged once per change of cause (the built-in copy is used meanwhile).
    @Test func operationListsAndValidationDataReachEveryCycle() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cycle-fips-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = dir + "/fips-validations.json"
        try "{\"schema_version\": 1,\n\"checked\": \"2026-12-07\"\n".write(toFile: data, atomically: true, encoding: .utf8)
        let config = try config("""
            fips_validations: \(data)
            services:
              - name: ghost
                unit: no-such-unit-\(UUID().uuidString.prefix(6))
                require: [md5, x509-sign-sha256]
                forbid: [sha1]
            """)
        let probe = try #require(PostRunner.locateProbe())
        let runner = CycleRunner(toolVersion: "test")
        let lines = Locked<[String]>([])
        let log: @Sendable (Int32, String) -> Void = { _, line in lines.withLock { $0.append(line) } }
        let report = try #require(runner.run(config, probe: probe, log: log))
        let ghost = try #require(report.targets.first)
        // Without FIPS both required operations work and the forbidden SHA-1 does too.
        #expect(ghost.findings.map(\.code).sorted { $0.rawValue < $1.rawValue } == [.postForbiddenAllowed, .serviceNotRunning])
        #expect(ghost.findings.first { $0.code == .postForbiddenAllowed }?.severity == .error)
        let checks = (ghost.post?.arrayValue?.first?["checks"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        #expect(checks.contains("require md5") && checks.contains("require x509-sign-sha256") && checks.contains("forbid sha1"))
        #expect(lines.withLock { $0 } == ["FIPS validation data: \(data):3: not valid JSON (column 1); using the embedded copy (checked \(FIPSValidations.embedded.checked))"])
        _ = runner.run(config, probe: probe, log: log)
        #expect(lines.withLock { $0.count } == 1, "the same cause is not logged again")
        try FileManager.default.copyItem(atPath: FIPSValidationsTestData.shipped, toPath: data + ".new")
        rename(data + ".new", data)
        _ = runner.run(config, probe: probe, log: log)
        #expect(lines.withLock { $0.last?.hasPrefix("FIPS validation data usable again (was: \(data):3") } == true)
    }

    @Test func aMissingBundleRootIsAFindingNotAnError() throws {
        let config = try config("""
            bundles:
              - name: gone
                root: /nonexistent/\(UUID().uuidString)
            """)
        let report = try #require(CycleRunner(toolVersion: "test").run(config, probe: nil))
        #expect(report.targets.first?.findings.map(\.code) == [.bundleUnreadable])
        #expect(report.targets.first?.state == .failed)
    }

    @Test func discoveryGroupsByUnitAndSkipsConfiguredServices() throws {
        let bundle = try Self.cxfreeze("debian")
        let p = try LiveProcess([bundle + "/app", "--serve"],
                                environment: ["PATH": "/usr/bin:/bin", "OPENSSL_MODULES": "/usr/lib/x86_64-linux-gnu/ossl-modules"])
        let unit = try #require(FakeUnit("discover-me.service"))
        defer { p.stop(); unit.remove() }
        try #require(unit.adopt(p.pid))
        let runner = CycleRunner(toolVersion: "test")
        let report = try #require(runner.run(.embeddedDefault, probe: nil))
        let found = try #require(report.targets.first { $0.name == "discover-me.service" })
        #expect(found.kind == "process" && found.findings.contains { $0.code == .processSplitLibcrypto })

        let second = try #require(runner.run(try config("""
            discover: {enabled: true}
            services:
              - name: mine
                unit: discover-me
                post: false
            """), probe: nil))
        #expect(second.targets.filter { $0.name == "discover-me.service" }.isEmpty)
        #expect(second.targets.first?.name == "mine")
    }

    /// A pid file is bound to the process its pid named when first read: the same pid with another
    /// start time (a /proc tree written by the test, so the reuse is exact) is stale until the file changes.
    @Test func aPidFileWhosePidChangedOwnerIsStaleUntilRewritten() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-pidfile-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/proc/4242", withIntermediateDirectories: true)
        func process(start: Int, comm: String) throws {
            try "4242 (\(comm)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \(start) 2228224 128 0\n"
                .write(toFile: dir + "/proc/4242/stat", atomically: true, encoding: .utf8)
            try "\(comm)\n".write(toFile: dir + "/proc/4242/comm", atomically: true, encoding: .utf8)
        }
        let file = dir + "/svc.pid"
        try "4242\n".write(toFile: file, atomically: true, encoding: .utf8)
        let runner = CycleRunner(toolVersion: "test", procRoot: dir + "/proc")
        try process(start: 1000, comm: "svc")
        #expect(runner.stalePidFile(file, pid: 4242) == nil, "first read: bound to start 1000")
        #expect(runner.stalePidFile(file, pid: 4242) == nil, "the same process")
        try process(start: 2000, comm: "intruder")
        let stale = try #require(runner.stalePidFile(file, pid: 4242))
        #expect(stale.problem.hasPrefix("stale"))
        #expect(stale.evidence["now_running"] == "intruder" && stale.evidence["start_ticks_named"] == 1000)
        #expect(runner.stalePidFile(file, pid: 4242) != nil, "still stale next cycle")
        try "4242\n".write(toFile: file, atomically: true, encoding: .utf8)  // rewritten by its service
        #expect(runner.stalePidFile(file, pid: 4242) == nil)
        // Nothing at the pid when first read: whatever takes it later is not what the file named.
        try FileManager.default.removeItem(atPath: dir + "/proc/4242/stat")
        try "4242\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(runner.stalePidFile(file, pid: 4242) == nil)
        try process(start: 3000, comm: "later")
        #expect(runner.stalePidFile(file, pid: 4242)?.evidence["start_ticks_named"] == nil)
        #expect(runner.stalePidFile(file, pid: 4242) != nil)
    }

    @Test func deniedPartsOfABundleAreOneFindingLoopsAndCorruptFilesStayWarnings() throws {
        let warnings = ["lib/locked: cannot read directory: Permission denied", "lib/a.so: cannot open: Permission denied",
                        "lib/x: Permission denied", "lib/loop: symlink loop", "lib/bad.so: truncated ELF header",
                        "lib/gone.so: vanished during the scan", "lib/mod: cannot read directory: Operation not permitted"]
        let f = try #require(CycleRunner.unreadableParts(warnings, root: "/opt/p", name: "p"))
        #expect(f.code == .bundleUnreadable && f.severity == .error && f.target == "p")
        #expect(f.evidence["paths"]?.arrayValue?.compactMap(\.stringValue) == ["lib/locked", "lib/a.so", "lib/x", "lib/mod"])
        #expect(f.evidence["count"] == 4 && !f.summary.contains("4"))
        #expect(CycleRunner.unreadableParts(["lib/loop: symlink loop", "lib/bad.so: not an ELF"], root: "/opt/p", name: "p") == nil)
    }

    @Test func aCancelledCycleIsNotPublished() throws {
        #expect(CycleRunner(toolVersion: "test").run(.embeddedDefault, probe: nil, cancelled: { true }) == nil)
    }
}

enum FIPSValidationsTestData {
    /// The shipped data file, from the repository.
    static let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("data/fips-validations.json").path
}
