/// The host's FIPS state as the kernel and crypto-policies state it: what an auditor asks before
/// the provider (a FIPS provider in a host that is not in FIPS mode is not a FIPS deployment).
public struct HostFIPSState: Sendable, Hashable {
    /// /proc/sys/crypto/fips_enabled: nil when the file is absent or unreadable (a kernel without it).
    public var enabled: Bool?
    /// /proc/sys/crypto/fips_name and fips_version, where the kernel has them (6.x).
    public var name: String?
    public var version: String?
    /// The first setting of /etc/crypto-policies/config ("FIPS", "DEFAULT:SHA1"), where present.
    public var cryptoPolicy: String?

    public init(enabled: Bool? = nil, name: String? = nil, version: String? = nil, cryptoPolicy: String? = nil) {
        self.enabled = enabled; self.name = name; self.version = version; self.cryptoPolicy = cryptoPolicy
    }

    /// From the files' texts (nil: absent). fips_enabled holds "0" or "1" and a newline; anything else is unknown.
    public static func parse(fipsEnabled: String?, fipsName: String?, fipsVersion: String?, cryptoPoliciesConfig: String?) -> HostFIPSState {
        func line(_ text: String?) -> String? {
            text?.split(separator: "\n").map { $0.trimmingPrefix(while: \.isWhitespace) }
                .first { !$0.isEmpty && !$0.hasPrefix("#") }
                .map { String($0.reversed().trimmingPrefix(while: \.isWhitespace).reversed()) }
        }
        let enabled: Bool? = switch line(fipsEnabled) { case "1": true; case "0": false; default: nil }
        return HostFIPSState(enabled: enabled, name: line(fipsName), version: line(fipsVersion), cryptoPolicy: line(cryptoPoliciesConfig))
    }

    /// Back from `json` (the text report renders what the JSON holds).
    public init(json: JSONValue) {
        if case .bool(let b)? = json["fips_enabled"] { enabled = b }
        name = json["fips_name"]?.stringValue; version = json["fips_version"]?.stringValue
        cryptoPolicy = json["crypto_policy"]?.stringValue
    }

    public var json: JSONValue {
        ["fips_enabled": enabled.map(JSONValue.bool) ?? .null, "fips_name": JSONValue(name),
         "fips_version": JSONValue(version), "crypto_policy": JSONValue(cryptoPolicy)]
    }

    /// "host FIPS mode: off (crypto-policies DEFAULT)", for the text report.
    public var summary: String {
        let mode = enabled.map { $0 ? "on" : "off" } ?? "unknown (no /proc/sys/crypto/fips_enabled)"
        let detail = [name.map { "\($0)\(version.map { " \($0)" } ?? "")" }, cryptoPolicy.map { "crypto-policies \($0)" }].compactMap { $0 }
        return "host FIPS mode: \(mode)" + (detail.isEmpty ? "" : " (\(detail.joined(separator: ", ")))")
    }

    /// `host-fips-disabled` when FIPS is expected and the kernel says it is off.
    public func finding(target: String, expectFIPS: Bool) -> Finding? {
        guard expectFIPS, enabled == false else { return nil }
        return Finding(
            code: .hostFIPSDisabled, target: target, subject: "fips_enabled",
            summary: "FIPS is expected, but the host is not in FIPS mode (/proc/sys/crypto/fips_enabled is 0)",
            evidence: json,
            fix: ["boot the host in FIPS mode (fips=1 on the kernel command line; fips-mode-setup --enable where the distribution has it)",
                  "or, if the provider alone is the requirement, turn this check off: post --no-host-fips-check, daemon host_fips_check: false"])
    }
}
