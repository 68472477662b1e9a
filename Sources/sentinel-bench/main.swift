// Benchmark driver (not a test): audits a tree several times in one process and prints wall times
// for the inventory (walk + libelf, through the stat-keyed cache) and the audit (resolution +
// findings), so the first scan and the cached rescans can be compared. Used by scripts/bench.sh.
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
let catalog = ELFCatalog()
let host = HostLoaderFacts.current()
func ms(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 }
for i in 1...repeats {
    let start = DispatchTime.now().uptimeNanoseconds
    let inventory = try BundleScanner(catalog: catalog).inventory(root: root)
    let read = ms(since: start)
    let report = BundleAudit(name: "bench", inventory: inventory, environment: TargetEnvironment(), expectFIPS: false,
                             host: host, fileSystem: DiskFileSystem(catalog: catalog)).run()
    let total = ms(since: start)
    print(String(format: "scan %d ms %.1f inventory %.1f audit %.1f files %d elf %d findings %d", i, total, read,
                 total - read, report.stats["files"] ?? 0, report.stats["elf_files"] ?? 0, report.findings.count))
}
