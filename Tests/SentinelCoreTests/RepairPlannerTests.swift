import SentinelCore
import SentinelSystem
import Testing

/// The planner's decisions that need a fact a test cannot stage on a real disk: dpkg owning a file of the
/// tree (only a tree under /usr is that). The gcc-built `hashed` tree, its real facts, one answer changed.
@Suite struct RepairPlannerTests {
    struct OwnedBy: RepairFileFacts {
        var disk: DiskRepairFacts
        var owned: String
        func dynamicStrings(_ paths: [String]) -> [String: Result<DynamicStrings, RewriteRefusal>] { disk.dynamicStrings(paths) }
        func integrityCompanion(_ path: String) -> String? { disk.integrityCompanion(path) }
        func readOnlyReason(_ path: String) -> String? { disk.readOnlyReason(path) }
        func linksOutsideTree(_ file: BundleFile) -> Int { disk.linksOutsideTree(file) }
        func packageOwner(_ path: String) -> String? { path.hasSuffix(owned) ? "libexample3" : nil }
        func symlinks(of file: BundleFile) -> [String: String] { disk.symlinks(of: file) }
    }

    func plan(inPlace: Bool) throws -> RepairPlan {
        let root = try LoaderFixtures.elf() + "/hashed"
        let analysis = try BundleAuditor(catalog: ELFCatalog()).analyse(root: root, environment: TargetEnvironment())
        let facts = OwnedBy(disk: DiskRepairFacts(root: root, runner: nil), owned: "/lib/libssl-5e6f7a8b.so.3")
        return RepairPlanner(audit: analysis.audit, linkage: analysis.linkage, facts: facts, inPlace: inPlace).plan()
    }

    @Test func aPackageOwnedFileIsRefusedInPlaceOnly() throws {
        let inPlace = try plan(inPlace: true)
        #expect(inPlace.refused.map(\.path) == ["lib/libssl-5e6f7a8b.so.3"])
        #expect(inPlace.refused.first?.reason.contains("owned by the package libexample3") == true)
        // A --out copy belongs to no package: the same tree plans cleanly.
        let out = try plan(inPlace: false)
        #expect(out.refused.isEmpty)
        #expect(out.canonical.map(\.path) == ["lib/libcrypto.so.3", "lib/libssl.so.3"])
        #expect(Set(out.edits.map(\.file)) == ["lib/_ssl.cpython-311-x86_64-linux-gnu.so", "lib/libcrypto-1a2b3c4d.so.3", "lib/libssl-5e6f7a8b.so.3"])
    }
}
