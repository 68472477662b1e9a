// Benchmark driver (not a test): audits a tree several times in one process with one auditor, as
// the daemon does, so the first scan and the cached rescans of the unchanged tree can be compared.
// Used by scripts/bench.sh.
import Foundation
import SentinelCore
import SentinelSystem

let args = CommandLine.arguments
if args.count == 4, args[1] == "serve" { serveAPI(socket: args[2], reportPath: args[3]) }
// `copy SRC DST [THREADS]`: one TreeCopier copy (DST must not exist; it is left for the caller to
// compare and remove), timed, to set beside `cp -a` with the same page cache (scripts/bench.sh).
if (4...5).contains(args.count), args[1] == "copy" {
    let copier = args.count == 5 ? TreeCopier(threads: Int(args[4]) ?? 1) : TreeCopier()
    let start = DispatchTime.now().uptimeNanoseconds
    do {
        let warnings = try copier.copy(from: args[2], to: args[3])
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        print(String(format: "copy ms %.1f threads %d warnings %d", ms, copier.threads, warnings.count))
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("sentinel-bench copy: \(error)\n".utf8))
        exit(1)
    }
}
guard args.count >= 2 else {
    FileHandle.standardError.write(Data("usage: sentinel-bench ROOT [REPEAT [fresh]] | copy SRC DST [THREADS] | serve SOCKET REPORT\n".utf8))
    exit(2)
}
let root = args[1]
let repeats = args.count > 2 ? Int(args[2]) ?? 3 : 3
// "fresh": a new auditor (empty caches) for every scan, to time first scans with a warm page cache.
let fresh = args.count > 3 && args[3] == "fresh"
var auditor = BundleAuditor(catalog: ELFCatalog())
for i in 1...repeats {
    if fresh { auditor = BundleAuditor(catalog: ELFCatalog()) }
    let start = DispatchTime.now().uptimeNanoseconds
    let report = try auditor.audit(root: root, environment: TargetEnvironment(), expectFIPS: false)
    let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    print(String(format: "scan %d ms %.1f files %d elf %d findings %d", i, ms,
                 report.stats["files"] ?? 0, report.stats["elf_files"] ?? 0, report.findings.count))
}
