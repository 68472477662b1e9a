import Foundation
import Testing
import SentinelCore
@testable import SentinelSystem

@Suite("host loader facts")
struct HostLoaderFactsTests {
    /// /proc/cpuinfo as the kernel writes it: tab-padded keys, one block per processor; the first wins.
    @Test func cpuInfoTextIsReadAsFoundationTrimmedIt() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu  sse2 avx2 \n\nprocessor\t: 1\n"
            + "vendor_id\t: AuthenticAMD\nflags\t\t: fpu\n"
        let cpu = HostLoaderFacts.CPUInfo(text: text)
        #expect(cpu.vendor == "GenuineIntel")
        #expect(cpu.flags == ["fpu", "sse2", "avx2"])
        #expect(HostLoaderFacts.CPUInfo.trimmed(" \u{00A0}\tx y\u{2009} ") == "x y")
        #expect(HostLoaderFacts.CPUInfo.trimmed(" \t ") == "")
        #expect(HostLoaderFacts.CPUInfo(text: "").vendor == "")
    }

    /// `ld.so --help`: the system search path, the supported glibc-hwcaps subfolders and AT_PLATFORM.
    struct Help {
        var systemDirs: [String] = []
        var supportedHwcaps: [String] = []
        var platform: String?
        var selfName: String?
    }

    static func help() throws -> Help {
        let run = try Shell.run([GroundTruth.rtld, "--help"])
        var help = Help()
        for line in run.stdout.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if line.hasSuffix("(system search path)") {
                help.systemDirs.append(String(line.dropLast("(system search path)".count)).trimmingCharacters(in: .whitespaces))
            } else if line.hasSuffix("(supported, searched)"), line.hasPrefix("x86-64-v") {
                help.supportedHwcaps.append(String(line.prefix { $0 != " " }))
            } else if line.contains("(AT_PLATFORM;") {
                help.platform = String(line.prefix { $0 != " " })
            } else if line.hasPrefix("This program interpreter self-identifies as: ") {
                help.selfName = String(line.dropFirst("This program interpreter self-identifies as: ".count))
            }
        }
        return help
    }

    @Test("agrees with ld.so --help: system search path, glibc-hwcaps levels, AT_PLATFORM, cache")
    func agreesWithLdSoHelp() throws {
        let host = HostLoaderFacts.current()
        let help = try Self.help()
        #expect(!help.systemDirs.isEmpty)
        #expect(host.defaultDirs == help.systemDirs)
        #expect(host.hwcapsSubdirs == help.supportedHwcaps)
        #expect(host.platform == help.platform)
        #expect(host.rtldPath == help.selfName)
        let cache = try #require(host.cache)
        #expect(cache.lookup("libc.so.6", flags: 0x303, hwcapsSubdirs: host.hwcapsSubdirs) == "/lib/x86_64-linux-gnu/libc.so.6")
    }

    @Test("the capability subfolders are the ones LD_DEBUG shows the loader trying, in order")
    func capabilitySubfoldersMatchLdDebug() throws {
        let elf = try LoaderFixtures.elf()
        let app = "\(elf)/rpath-inherit/app"
        let run = try Shell.run([app], environment: ["LD_DEBUG": "libs", "LD_TRACE_LOADED_OBJECTS": "1"])
        // The first search of the app's RPATH folder lists every subfolder (none is known missing yet).
        let line = try #require(run.stderr.split(separator: "\n").first { $0.contains("search path=") && $0.contains("RPATH from file") })
        let list = line.split(separator: "=", maxSplits: 1)[1].split(separator: "\t")[0]
        let dir = "\(elf)/rpath-inherit/r"
        let subfolders = list.split(separator: ":").map { entry -> String in
            entry == dir ? "" : String(entry.dropFirst(dir.count + 1))
        }
        let host = HostLoaderFacts.current()
        #expect(subfolders == host.hwcapsSubdirs.map { "glibc-hwcaps/\($0)" } + host.legacyHwcapsSubdirs + [""])
    }

    @Test("$LIB is what the loader substitutes (origin fixture: $ORIGIN/../$LIB)")
    func libToken() throws {
        let elf = try LoaderFixtures.elf()
        let trace = try GroundTruth.trace("\(elf)/origin/opt/bin/user.so", executable: false)
        let tok = try #require(trace.loaded.first { $0.name == "libtok.so" }?.path)
        let prefix = "\(elf)/origin/opt/bin/../"
        #expect(tok.hasPrefix(prefix))
        #expect(String(tok.dropFirst(prefix.count).dropLast("/libtok.so".count)) == HostLoaderFacts.current().libToken)
    }

    @Test("legacy hwcaps combinations follow _dl_important_hwcaps")
    func legacyCombinations() {
        #expect(HostLoaderFacts.legacyHwcapsSubdirs(hwcapNames: ["x86_64"], platform: "x86_64")
                == ["tls/x86_64/x86_64", "tls/x86_64", "tls/x86_64", "tls", "x86_64/x86_64", "x86_64", "x86_64"])
        let intel = HostLoaderFacts.legacyHwcapsSubdirs(hwcapNames: ["x86_64", "avx512_1"], platform: "haswell")
        #expect(intel.count == 15)
        #expect(intel.first == "tls/haswell/avx512_1/x86_64")
        #expect(intel.last == "x86_64")
        #expect(HostLoaderFacts.legacyHwcapsSubdirs(hwcapNames: [], platform: nil) == ["tls"])
    }

    @Test("platform and hwcaps levels from CPU flags")
    func cpuDerivedFacts() {
        typealias CPU = HostLoaderFacts.CPUInfo
        let v2: Set = ["cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"]
        let v3 = v2.union(["avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"])
        let v4 = v3.union(["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"])
        #expect(HostLoaderFacts.hwcapsSubdirs(machine: "x86_64", cpu: CPU(vendor: "AuthenticAMD", flags: [])) == [])
        #expect(HostLoaderFacts.hwcapsSubdirs(machine: "x86_64", cpu: CPU(vendor: "AuthenticAMD", flags: v2)) == ["x86-64-v2"])
        #expect(HostLoaderFacts.hwcapsSubdirs(machine: "x86_64", cpu: CPU(vendor: "AuthenticAMD", flags: v4))
                == ["x86-64-v4", "x86-64-v3", "x86-64-v2"])
        #expect(HostLoaderFacts.hwcapsSubdirs(machine: "x86_64", cpu: CPU(vendor: "x", flags: v4.subtracting(["pni"]))) == [])
        #expect(HostLoaderFacts.platformName(machine: "x86_64", cpu: CPU(vendor: "AuthenticAMD", flags: v4)) == "x86_64")
        #expect(HostLoaderFacts.platformName(machine: "x86_64", cpu: CPU(vendor: "GenuineIntel", flags: v3)) == "haswell")
        #expect(HostLoaderFacts.platformName(machine: "x86_64", cpu: CPU(vendor: "GenuineIntel", flags: v2)) == "x86_64")
        #expect(HostLoaderFacts.legacyHwcapNames(machine: "x86_64", cpu: CPU(vendor: "GenuineIntel", flags: v4)) == ["x86_64", "avx512_1"])
        #expect(HostLoaderFacts.legacyHwcapNames(machine: "x86_64", cpu: CPU(vendor: "AuthenticAMD", flags: v4)) == ["x86_64"])
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2\n\nprocessor\t: 1\nflags\t: other\n"
        #expect(CPU(text: text).vendor == "GenuineIntel")
        #expect(CPU(text: text).flags == ["fpu", "sse2", "avx2"])
    }

    @Test("search layout: Debian multiarch, lib64, plain")
    func layouts() {
        let debian = HostLoaderFacts.searchLayout(machine: "x86_64") { $0 == "/usr/lib/x86_64-linux-gnu" }
        #expect(debian.dirs == ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"])
        #expect(debian.lib == "lib/x86_64-linux-gnu")
        let fedora = HostLoaderFacts.searchLayout(machine: "x86_64") { $0 == "/usr/lib64" }
        #expect(fedora.dirs == ["/lib64", "/usr/lib64"] && fedora.lib == "lib64")
        let plain = HostLoaderFacts.searchLayout(machine: "mips") { _ in false }
        #expect(plain.dirs == ["/lib", "/usr/lib"] && plain.lib == "lib")
    }
}
