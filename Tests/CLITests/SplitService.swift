import Foundation
import Glibc
import SentinelTestSupport

/// The real split cx_Freeze service (Debian's python3-cryptography beside the bundle's own libcrypto),
/// run from a private copy of the bundle in a unit-named cgroup; `heal()` restarts it from the
/// canonicalised bundle, as an operator would after the fix. `remove()` stops it and removes both.
final class SplitService {
    static let modules = "/usr/lib/x86_64-linux-gnu/ossl-modules"
    let work: String
    let unit: FakeUnit
    private(set) var process: LiveProcess

    init() throws {
        work = try Fixtures.copy(try Fixtures.cxfreeze("debian"))
        guard let unit = FakeUnit("sentinel-api-\(UUID().uuidString.prefix(6).lowercased()).service") else {
            try? FileManager.default.removeItem(atPath: work)
            throw FixtureError(message: "no writable cgroup hierarchy for the service's unit")
        }
        self.unit = unit
        do { process = try Self.start(work, in: unit) } catch {
            unit.remove()
            try? FileManager.default.removeItem(atPath: work)
            throw error
        }
    }

    var pid: Int32 { process.pid }

    /// The daemon's configuration watching it as `product-api` (and its bundle as `product`).
    func daemonConfig(_ extra: String = "") -> String {
        """
        interval: 1h
        bundles:
          - name: product
            root: \(work)
        services:
          - name: product-api
            unit: \(unit.name)
            bundle: product
            environment: {OPENSSL_MODULES: \(Self.modules)}
        \(extra)
        """
    }

    /// Stops the service, replaces its bundle with the canonicalised one and starts it again.
    func heal() throws {
        process.stop()
        let replaced = try Sentinel.shell(["bash", "-c", "rm -rf '\(work)'/* && cp -a '\(try Fixtures.cxfreeze("canonical"))'/. '\(work)'/"])
        guard replaced.status == 0 else { throw FixtureError(message: "bundle swap: \(replaced.stderr)") }
        process = try Self.start(work, in: unit)
    }

    func remove() {
        process.stop()
        unit.remove()
        try? FileManager.default.removeItem(atPath: work)
    }

    private static func start(_ bundle: String, in unit: FakeUnit) throws -> LiveProcess {
        let p = try LiveProcess([bundle + "/app", "--serve"], environment: ["PATH": "/usr/bin:/bin", "OPENSSL_MODULES": modules])
        guard unit.adopt(p.pid) else { p.stop(); throw FixtureError(message: "cannot move pid \(p.pid) into \(unit.name)") }
        return p
    }
}
