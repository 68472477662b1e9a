/// Whether a repaired tree (the plan's model, or the staged copy rescanned) is what `repair` promises:
/// one libcrypto and one libssl for every consumer whatever the load order, no hashed names, and no
/// finding the original tree did not have.
public enum RepairJudge {
    public static func verify(stage: String, tree: String, audit: BundleAudit, linkage: BundleAudit.Linkage,
                              report: TargetReport, before: TargetReport, renames: [(from: String, to: String)]) -> RepairVerification {
        var problems: [String] = []
        var resolved: [String: [String]] = [:]
        var identities: [String: FileIdentity] = [:]
        for f in audit.inventory.elfFiles { for name in [f.relativePath] + f.aliases { identities[join(audit.inventory.root, name)] = f.file.identity } }
        for role in [OpenSSLRole.libcrypto, .libssl] {
            let uses = linkage.uses.filter { $0.target.object.openSSLRole == role }
            let targets = Set(uses.map(\.target.path)).sorted()
            guard !targets.isEmpty else { continue }
            resolved[role.rawValue] = targets.map(audit.display)
            if targets.count > 1 {
                problems.append("\(role.rawValue): consumers still resolve to \(targets.count) files: "
                    + targets.map { t in
                        "\(audit.display(t)) (for \(Set(uses.filter { $0.target.path == t }.map { audit.display($0.consumer) }).sorted().joined(separator: ", ")))"
                    }.joined(separator: " and "))
            }
            // A consumer whose own search was never seen to land there reaches it only because another
            // consumer loaded it first: another load order (or an import order) splits it again.
            // By file, not path: a root dlopen()ed under one hard link searched for the file loaded under another.
            let identity = { (path: String) -> String in identities[path].map(\.description) ?? path }
            let searched = Set(uses.filter { $0.via != .alreadyLoaded }.map { [identity($0.consumer), $0.name, $0.target.path] })
            for use in uses where use.via == .alreadyLoaded && audit.isInTree(use.consumer)
                && !searched.contains([identity(use.consumer), use.name, use.target.path]) {
                problems.append("\(audit.display(use.consumer)) reaches \(use.name) only because another consumer loaded \(audit.display(use.target.path)) first")
            }
        }
        for f in report.findings where [.splitLibcrypto, .mangledOpenSSLName, .opensslUnresolved].contains(f.code) {
            problems.append("\(f.code.rawValue): \(f.summary)")
        }
        // Findings of the original tree, under the names the plan gave its files.
        let known = Set(before.findings.map { f in
            [f.code.rawValue, renames.reduce(f.subject ?? "") { $0.replacing($1.from, with: $1.to) }]
        })
        for f in report.findings where ![.splitLibcrypto, .mangledOpenSSLName, .opensslUnresolved, .duplicateOpenSSLCopy, .orphanOpenSSLCopy].contains(f.code)
            && !known.contains([f.code.rawValue, f.subject ?? ""]) {
            problems.append("new finding \(f.code.rawValue): \(f.summary)")
        }
        return RepairVerification(stage: stage, tree: tree, environment: audit.environment.values, resolved: resolved, problems: problems)
    }
}
