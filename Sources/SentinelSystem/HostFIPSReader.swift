import Glibc
import SentinelCore

/// Reads the host's FIPS state: /proc/sys/crypto/fips_enabled, fips_name, fips_version and
/// /etc/crypto-policies/config, under `root` (a test's folder, or a container's view of its host).
public enum HostFIPSReader {
    public static func read(root: String = "/") -> HostFIPSState {
        func text(_ path: String) -> String? {
            guard case .success(let bytes) = ProcReader.readWhole(join(root, path), limit: 4096) else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        }
        return HostFIPSState.parse(fipsEnabled: text("proc/sys/crypto/fips_enabled"), fipsName: text("proc/sys/crypto/fips_name"),
                                   fipsVersion: text("proc/sys/crypto/fips_version"),
                                   cryptoPoliciesConfig: text("etc/crypto-policies/config"))
    }
}

/// The host's FIPS state for the POSTs of one run (read once), and whether a host not in FIPS mode is a
/// finding under `expect_fips` (`--no-host-fips-check`, `host_fips_check: false` turn it off).
public struct HostFIPSCheck: Sendable {
    public var state: HostFIPSState
    public var enabled: Bool
    public init(state: HostFIPSState, enabled: Bool) { self.state = state; self.enabled = enabled }
}
