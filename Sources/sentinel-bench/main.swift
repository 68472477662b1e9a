// Benchmark driver (not a test): audits a tree several times in one process and prints wall times,
// so the first scan and the cached rescans (stat only) can be compared. Used by scripts/bench.sh.
import Foundation
import SentinelCore
import SentinelSystem

let args = CommandLine.arguments
guard args.count >= 2 else {
    FileHandle.standardError.write(Data("usage: sentinel-bench ROOT [REPEAT]\n".utf8))
    exit(2)
}
let root = args[1]
let repeats = args.count > 2 ? Int(args[2]) ?? 3 : 3
let auditor = BundleAuditor(catalog: ELFCatalog())
let host = HostLoaderFacts.current()
for i in 1...repeats {
    let start = DispatchTime.now().uptimeNanoseconds
    let report = try auditor.audit(root: root, environment: TargetEnvironment(), expectFIPS: false, host: host)
    let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    print("scan \(i) ms \(String(format: "%.1f", ms)) files \(report.stats["files"] ?? 0) elf \(report.stats["elf_files"] ?? 0) findings \(report.findings.count)")
}
