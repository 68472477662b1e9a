import Foundation
import SentinelTestSupport
import Testing
@testable import SentinelCore

/// One `ldconfig -p` line: key, flags text ("libc6,x86-64"), hwcap text if any, value.
private struct LdconfigLine: Equatable {
    var key: String, flags: String, hwcap: String?, value: String
}

private func ldconfigListing(cacheFile: String? = nil) throws -> (count: Int, lines: [LdconfigLine]) {
    let run = try Shell.run(["/sbin/ldconfig", "-p"] + (cacheFile.map { ["-C", $0] } ?? []))
    guard run.status == 0 else { throw LoaderTestError("ldconfig -p failed: \(run.stderr)") }
    var count = -1
    var lines: [LdconfigLine] = []
    for raw in run.stdout.split(separator: "\n") {
        if count < 0, let n = Int(raw.split(separator: " ").first ?? "") { count = n; continue }
        guard raw.hasPrefix("\t"), let arrow = raw.range(of: ") => ", options: .backwards),
              let open = raw.range(of: " (") else { continue }
        let key = String(raw[raw.index(after: raw.startIndex)..<open.lowerBound])
        var flags = String(raw[open.upperBound..<arrow.lowerBound])
        var hwcap: String?
        if let h = flags.range(of: ", hwcap: \"") {
            hwcap = String(flags[h.upperBound...].dropLast())
            flags = String(flags[..<h.lowerBound])
        }
        lines.append(LdconfigLine(key: key, flags: flags, hwcap: hwcap, value: String(raw[arrow.upperBound...])))
    }
    return (count, lines)
}

/// A new-format cache written the way ldconfig writes one (same sort, string table after the
/// entries, extension directory with a glibc-hwcaps section).
private func buildCache(_ entries: [(flags: Int32, key: String, value: String, hwcaps: String?, isa: UInt64)],
                        hwcapsNames: [String] = []) -> [UInt8] {
    let sorted = entries.sorted { a, b in
        let c = LdSoCache.libcmp(Array(b.key.utf8), Array(a.key.utf8))
        if c != 0 { return c < 0 }
        if a.flags != b.flags { return a.flags > b.flags }
        if (a.hwcaps != nil) != (b.hwcaps != nil) { return a.hwcaps != nil }
        return (a.hwcaps ?? "") < (b.hwcaps ?? "")
    }
    var strings: [UInt8] = []
    var offsets: [String: Int] = [:]
    let stringBase = 48 + 24 * sorted.count
    func intern(_ s: String) -> UInt32 {
        if let o = offsets[s] { return UInt32(stringBase + o) }
        offsets[s] = strings.count
        strings += Array(s.utf8) + [0]
        return UInt32(stringBase + offsets[s]!)
    }
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
    var table: [UInt8] = []
    for e in sorted {
        var hwcap: UInt64 = 0
        if let h = e.hwcaps { hwcap = LdSoCache.hwcapExtension | (e.isa << 32) | UInt64(hwcapsNames.firstIndex(of: h)!) }
        table += le32(UInt32(bitPattern: e.flags)) + le32(intern(e.key)) + le32(intern(e.value)) + le32(0) + le64(hwcap)
    }
    let nameIndices = hwcapsNames.map(intern)
    var bytes = Array("glibc-ld.so.cache1.1".utf8) + le32(UInt32(sorted.count)) + le32(UInt32(strings.count)) + [2, 0, 0, 0]
    let extensionAt = (stringBase + strings.count + 3) & ~3
    bytes += le32(hwcapsNames.isEmpty ? 0 : UInt32(extensionAt)) + [UInt8](repeating: 0, count: 12)
    bytes += table + strings
    if !hwcapsNames.isEmpty {
        bytes += [UInt8](repeating: 0, count: extensionAt - bytes.count)
        let sectionAt = extensionAt + 8 + 16
        bytes += le32(LdSoCache.extensionMagic) + le32(1)
        bytes += le32(1) + le32(0) + le32(UInt32(sectionAt)) + le32(UInt32(4 * nameIndices.count))
        for index in nameIndices { bytes += le32(index) }
    }
    return bytes
}


@Suite("ld.so.cache")
struct LdSoCacheTests {
    static let realCache: [UInt8]? = FileManager.default.contents(atPath: "/etc/ld.so.cache").map { [UInt8]($0) }

    @Test("the host's /etc/ld.so.cache parses and agrees with ldconfig -p")
    func realCacheAgreesWithLdconfig() throws {
        let bytes = try #require(Self.realCache)
        let cache = try LdSoCache(bytes: bytes)
        #expect(cache.lookup("libc.so.6", flags: 0x303, hwcapsSubdirs: []) == "/lib/x86_64-linux-gnu/libc.so.6")
        #expect(cache.generator?.hasPrefix("ldconfig") == true)

        let listing = try ldconfigListing()
        #expect(cache.entries.count == listing.count)
        #expect(cache.entries.count == listing.lines.count)
        for (entry, line) in zip(cache.entries, listing.lines) {
            #expect(entry.key == line.key && entry.value == line.value && entry.hwcapsSubdir == line.hwcap)
        }
        // Every key resolves to the first x86-64 entry ldconfig lists for it (no hwcaps entries here).
        var firstByKey: [String: String] = [:]
        for line in listing.lines where line.flags == "libc6,x86-64" && line.hwcap == nil && firstByKey[line.key] == nil {
            firstByKey[line.key] = line.value
        }
        #expect(firstByKey.count > 100)
        for (key, value) in firstByKey {
            #expect(cache.lookup(key, flags: 0x303, hwcapsSubdirs: ["x86-64-v3", "x86-64-v2"]) == value, "\(key)")
        }
        #expect(cache.lookup("libc.so.6", flags: 0x803, hwcapsSubdirs: []) == nil)  // x32 flags
        #expect(cache.lookup("libdoes-not-exist.so.1", flags: 0x303, hwcapsSubdirs: []) == nil)
    }

    @Test("caches written by ldconfig in new, compat and old format", arguments: ["new", "compat", "old"])
    func ldconfigFormats(format: String) throws {
        let elf = try LoaderFixtures.elf()
        let dir = LoaderFixtures.cacheRoot + "/ldcache-\(format)-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o777])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "\(elf)/hwcaps/lib\n\(elf)/canonical/lib\n".write(toFile: dir + "/ld.so.conf", atomically: true, encoding: .utf8)
        let cacheFile = dir + "/ld.so.cache"
        // ldconfig also rewrites /var/cache/ldconfig/aux-cache whatever -C says: as root, run it as
        // nobody so the host's files stay untouched (-X: no symlink updates either).
        let ldconfig = ["/sbin/ldconfig", "-X", "-C", cacheFile, "-f", dir + "/ld.so.conf", "-c", format]
        let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        let made = try Shell.run(geteuid() == 0 ? asNobody + ldconfig : ldconfig)
        try #require(made.status == 0, "\(made.stderr)")
        let bytes = try #require(FileManager.default.contents(atPath: cacheFile).map { [UInt8]($0) })
        let cache = try LdSoCache(bytes: bytes)
        #expect(cache.format.rawValue == format)

        let listing = try ldconfigListing(cacheFile: cacheFile)
        #expect(cache.entries.count == listing.lines.count)
        for (entry, line) in zip(cache.entries, listing.lines) {
            #expect(entry.key == line.key && entry.value == line.value && entry.hwcapsSubdir == line.hwcap)
        }

        let plain = "\(elf)/hwcaps/lib/libhw.so.1", v2 = "\(elf)/hwcaps/lib/glibc-hwcaps/x86-64-v2/libhw.so.1"
        let withV2 = cache.lookup("libhw.so.1", flags: 0x303, hwcapsSubdirs: ["x86-64-v3", "x86-64-v2"])
        let withoutV2 = cache.lookup("libhw.so.1", flags: 0x303, hwcapsSubdirs: [])
        switch format {
        case "new":
            #expect(withV2 == v2)
            #expect(withoutV2 == plain)
        case "compat":
            // glibc 2.36 reads hwcaps names from the start of the file, as ldconfig -p shows: in a
            // compat cache that is not where ldconfig wrote them, so the entry is never chosen.
            #expect(cache.entries.contains { $0.value == v2 && $0.isHwcapsExtension && $0.hwcapsSubdir != "x86-64-v2" })
            #expect(withV2 == plain)
        default:
            // The old format has no hwcap data: the first entry wins whatever the CPU.
            #expect(withV2 == v2 && withoutV2 == v2)
        }
        #expect(cache.lookup("libcrypto.so.3", flags: 0x303, hwcapsSubdirs: []) == "\(elf)/canonical/lib/libcrypto.so.3")
    }

    @Test("glibc-hwcaps entries: best supported subfolder first, ISA level and flags respected")
    func hwcapsPriority() throws {
        let names = ["x86-64-v2", "x86-64-v3", "x86-64-v4"]
        let bytes = buildCache([
            (0x303, "libz.so.1", "/l/libz.so.1", nil, 0),
            (0x303, "libz.so.1", "/l/glibc-hwcaps/x86-64-v2/libz.so.1", "x86-64-v2", 0),
            (0x303, "libz.so.1", "/l/glibc-hwcaps/x86-64-v3/libz.so.1", "x86-64-v3", 0),
            (0x303, "libz.so.1", "/l/glibc-hwcaps/x86-64-v4/libz.so.1", "x86-64-v4", 0),
            (0x303, "libisa.so.1", "/l/libisa.so.1", nil, 0),
            // Marked as needing ISA level 3 (x86-64-v4 bit): usable only when v4 is supported.
            (0x303, "libisa.so.1", "/l/glibc-hwcaps/x86-64-v2/libisa.so.1", "x86-64-v2", 3),
            (0x803, "libx32.so.1", "/libx32/libx32.so.1", nil, 0),
            (0x303, "libfoo.so.10", "/l/libfoo.so.10", nil, 0),
            (0x303, "libfoo.so.9", "/l/libfoo.so.9", nil, 0),
        ], hwcapsNames: names)
        let cache = try LdSoCache(bytes: bytes)
        #expect(cache.entries.filter(\.isHwcapsExtension).compactMap(\.hwcapsSubdir).sorted() == ["x86-64-v2", "x86-64-v2", "x86-64-v3", "x86-64-v4"])
        #expect(cache.lookup("libz.so.1", flags: 0x303, hwcapsSubdirs: ["x86-64-v4", "x86-64-v3", "x86-64-v2"]) == "/l/glibc-hwcaps/x86-64-v4/libz.so.1")
        #expect(cache.lookup("libz.so.1", flags: 0x303, hwcapsSubdirs: ["x86-64-v3", "x86-64-v2"]) == "/l/glibc-hwcaps/x86-64-v3/libz.so.1")
        #expect(cache.lookup("libz.so.1", flags: 0x303, hwcapsSubdirs: ["x86-64-v2"]) == "/l/glibc-hwcaps/x86-64-v2/libz.so.1")
        #expect(cache.lookup("libz.so.1", flags: 0x303, hwcapsSubdirs: []) == "/l/libz.so.1")
        #expect(cache.lookup("libisa.so.1", flags: 0x303, hwcapsSubdirs: ["x86-64-v3", "x86-64-v2"]) == "/l/libisa.so.1")
        #expect(cache.lookup("libisa.so.1", flags: 0x303, hwcapsSubdirs: ["x86-64-v4", "x86-64-v3", "x86-64-v2"]) == "/l/glibc-hwcaps/x86-64-v2/libisa.so.1")
        #expect(cache.lookup("libx32.so.1", flags: 0x303, hwcapsSubdirs: []) == nil)
        #expect(cache.lookup("libx32.so.1", flags: 0x803, hwcapsSubdirs: []) == "/libx32/libx32.so.1")
        // Keys compare numerically: ".so.09" is ".so.9".
        #expect(cache.lookup("libfoo.so.09", flags: 0x303, hwcapsSubdirs: []) == "/l/libfoo.so.9")
        #expect(cache.lookup("libfoo.so.10", flags: 0x303, hwcapsSubdirs: []) == "/l/libfoo.so.10")
    }

    @Test("_dl_cache_libcmp orders digit runs numerically")
    func libcmp() {
        func cmp(_ a: String, _ b: String) -> Int { LdSoCache.libcmp(Array(a.utf8), Array(b.utf8)) }
        #expect(cmp("libfoo.so.10", "libfoo.so.9") > 0)
        #expect(cmp("libfoo.so.9", "libfoo.so.10") < 0)
        #expect(cmp("liba1", "liba01") == 0)
        #expect(cmp("libfoo.so", "libfoo.so.1") < 0)
        #expect(cmp("libb", "liba") > 0)
        #expect(cmp("lib1", "liba") > 0)  // a digit sorts after any non-digit
    }

    @Test("every truncation of the real cache throws a one-line error")
    func truncations() throws {
        let bytes = try #require(Self.realCache)
        for i in 0..<200 {
            let length = bytes.count * i / 200
            do {
                _ = try LdSoCache(bytes: Array(bytes[..<length]))
                Issue.record("truncation at \(length) of \(bytes.count) parsed")
            } catch let error as LdSoCache.FormatError {
                #expect(!error.description.contains("\n"))
            }
        }
    }

    @Test("hostile bytes never crash: seeded flips of the real cache, garbage, hand-made headers")
    func hostileBytes() throws {
        let bytes = try #require(Self.realCache)
        var rng = SplitMix64(state: 0x5EED_CAC4E)
        var parsed = 0
        for _ in 0..<3000 {
            var mutated = bytes
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                // Half of the flips hit the header and the first entries, where the offsets live.
                let limit = Bool.random(using: &rng) ? min(bytes.count, 48 + 24 * 8) : bytes.count
                mutated[Int.random(in: 0..<limit, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            if let cache = try? LdSoCache(bytes: mutated) {
                parsed += 1
                _ = cache.lookup("libc.so.6", flags: 0x303, hwcapsSubdirs: ["x86-64-v2"])
                _ = cache.lookup(cache.entries.randomElement(using: &rng)?.key ?? "x", flags: 0x303, hwcapsSubdirs: [])
            }
        }
        #expect(parsed > 0)  // most single flips inside strings still parse

        for _ in 0..<500 {
            let garbage = (0..<Int.random(in: 0...4096, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(throws: LdSoCache.FormatError.self) { try LdSoCache(bytes: garbage) }
            let prefixed = Array("glibc-ld.so.cache1.1".utf8) + garbage
            _ = try? LdSoCache(bytes: prefixed)
            _ = try? LdSoCache(bytes: Array("ld.so-1.7.0".utf8) + [0] + garbage)
        }

        let valid = buildCache([(0x303, "libz.so.1", "/l/libz.so.1", "x86-64-v2", 0)], hwcapsNames: ["x86-64-v2"])
        _ = try LdSoCache(bytes: valid)
        func patched(_ at: Int, _ value: UInt32) -> [UInt8] {
            var b = valid
            for k in 0..<4 { b[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k))) }
            return b
        }
        let extensionAt = Int(valid[32]) | Int(valid[33]) << 8
        for bad in [patched(20, 0xFFFF_FFFF),              // nlibs
                    patched(48 + 4, 0x7FFF_FFF0),          // key offset
                    patched(48 + 8, UInt32(valid.count)),  // value offset at the very end
                    patched(32, 0xFFFF_FFFC),              // extension offset
                    patched(32, UInt32(extensionAt + 2)),  // misaligned extension
                    patched(extensionAt + 4, 0x1000_0000), // section count
                    patched(extensionAt + 8 + 8, 0xFFFF_FFF0)] {  // section offset
            #expect(throws: LdSoCache.FormatError.self) { try LdSoCache(bytes: bad) }
        }
        var unterminated = valid
        unterminated.removeLast(unterminated.count - (48 + 24 + 3))
        #expect(throws: LdSoCache.FormatError.self) { try LdSoCache(bytes: unterminated) }
        var bigEndian = valid
        bigEndian[28] = 3
        #expect(throws: LdSoCache.FormatError.self) { try LdSoCache(bytes: bigEndian) }
    }
}
