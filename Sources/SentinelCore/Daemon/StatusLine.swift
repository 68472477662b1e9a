/// The one-line summary sd_notify's STATUS= carries and `status` prints:
/// `3 targets: 2 healthy, 1 failed (split-libcrypto on product-api)`.
public enum StatusLine {
    public static func summary(_ report: Report) -> String {
        let targets = report.targets
        guard !targets.isEmpty else { return "0 targets: nothing maps OpenSSL" }
        var parts: [String] = []
        for state in [TargetState.healthy, .degraded, .failed] {
            let n = targets.filter { $0.state == state }.count
            if n > 0 { parts.append("\(n) \(state.rawValue)") }
        }
        var line = "\(targets.count) target\(targets.count == 1 ? "" : "s"): " + parts.joined(separator: ", ")
        if let worst = targets.compactMap({ t in t.worstFinding.map { (t.name, $0) } })
            .max(by: { $0.1.severity < $1.1.severity }), worst.1.severity >= .warning {
            line += " (\(worst.1.code.rawValue) on \(worst.0))"
        }
        return line
    }
}
