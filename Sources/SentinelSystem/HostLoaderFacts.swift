import Dispatch
import FoundationEssentials
import SentinelCore

#if canImport(Glibc)
import Glibc
#endif

/// This host's glibc loader, as the resolver needs it: search folders, $LIB, $PLATFORM, hwcaps
/// subfolders and /etc/ld.so.cache. Computed from the machine (uname, /proc/cpuinfo, the folder
/// layout) rather than by running ld.so; the tests check it against `ld.so --help` and LD_DEBUG.
public enum HostLoaderFacts {
    public static func current() -> LoaderHost {
        let machine = unameMachine()
        let cpu = CPUInfo(text: (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "")
        let cache = FileManager.default.contents(atPath: "/etc/ld.so.cache").flatMap { try? LdSoCache(bytes: [UInt8]($0)) }
        return facts(machine: machine, cpu: cpu, glibcVersion: glibcVersion(), cache: cache,
                     directoryExists: { path in
                         var st = stat()
                         return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
                     })
    }

    /// The pure part of `current()`.
    static func facts(machine: String, cpu: CPUInfo, glibcVersion: (Int, Int)?, cache: LdSoCache?,
                      directoryExists: (String) -> Bool) -> LoaderHost {
        let layout = searchLayout(machine: machine, directoryExists: directoryExists)
        let platform = platformName(machine: machine, cpu: cpu)
        // Legacy hwcaps subfolders were removed in glibc 2.37.
        let legacy: [String]
        if let (major, minor) = glibcVersion, major > 2 || (major == 2 && minor >= 37) {
            legacy = []
        } else {
            legacy = legacyHwcapsSubdirs(hwcapNames: legacyHwcapNames(machine: machine, cpu: cpu), platform: platform)
        }
        return LoaderHost(libToken: layout.lib, platform: platform, hwcapsSubdirs: hwcapsSubdirs(machine: machine, cpu: cpu),
                          defaultDirs: layout.dirs, cache: cache, legacyHwcapsSubdirs: legacy,
                          rtldPath: rtldPath(machine: machine))
    }

    /// Debian multiarch ("/lib/x86_64-linux-gnu", $LIB "lib/x86_64-linux-gnu"), else the lib64 layout
    /// of Red Hat-like systems, else plain /lib.
    static func searchLayout(machine: String, directoryExists: (String) -> Bool) -> (dirs: [String], lib: String) {
        if let triplet = multiarchTriplet(machine: machine), directoryExists("/usr/lib/\(triplet)") {
            return (["/lib/\(triplet)", "/usr/lib/\(triplet)", "/lib", "/usr/lib"], "lib/\(triplet)")
        }
        if is64Bit(machine), directoryExists("/usr/lib64") {
            return (["/lib64", "/usr/lib64"], "lib64")
        }
        return (["/lib", "/usr/lib"], "lib")
    }

    static func multiarchTriplet(machine: String) -> String? {
        switch machine {
        case "x86_64": return "x86_64-linux-gnu"
        case "aarch64": return "aarch64-linux-gnu"
        case "i386", "i486", "i586", "i686": return "i386-linux-gnu"
        case "armv7l", "armv8l": return "arm-linux-gnueabihf"
        case "ppc64le": return "powerpc64le-linux-gnu"
        case "s390x": return "s390x-linux-gnu"
        case "riscv64": return "riscv64-linux-gnu"
        default: return nil
        }
    }

    static func is64Bit(_ machine: String) -> Bool {
        ["x86_64", "aarch64", "ppc64le", "ppc64", "s390x", "riscv64", "sparc64", "mips64"].contains(machine)
    }

    static func rtldPath(machine: String) -> String? {
        switch machine {
        case "x86_64": return "/lib64/ld-linux-x86-64.so.2"
        case "aarch64": return "/lib/ld-linux-aarch64.so.1"
        case "i386", "i486", "i586", "i686": return "/lib/ld-linux.so.2"
        default: return nil
        }
    }

    /// glibc-hwcaps levels this CPU supports, best first (sysdeps/x86_64 dl-hwcaps-subdirs.c).
    static func hwcapsSubdirs(machine: String, cpu: CPUInfo) -> [String] {
        guard machine == "x86_64" else { return [] }
        let v2: Set = ["cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"]
        let v3: Set = ["avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"]
        let v4: Set = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]
        var levels: [String] = []
        if v2.isSubset(of: cpu.flags) {
            levels.insert("x86-64-v2", at: 0)
            if v3.isSubset(of: cpu.flags) {
                levels.insert("x86-64-v3", at: 0)
                if v4.isSubset(of: cpu.flags) { levels.insert("x86-64-v4", at: 0) }
            }
        }
        return levels
    }

    /// GLRO(dl_platform), which $PLATFORM expands to: AT_PLATFORM, except that glibc up to 2.36 on an
    /// Intel x86-64 CPU names it "haswell" or "xeon_phi" (sysdeps/x86/cpu-features.c).
    static func platformName(machine: String, cpu: CPUInfo) -> String {
        guard machine == "x86_64", cpu.vendor == "GenuineIntel" else { return machine }
        let f = cpu.flags
        if f.contains("avx512cd"), f.contains("avx512er"), f.contains("avx512pf") { return "xeon_phi" }
        if ["avx2", "fma", "bmi1", "bmi2", "abm", "movbe", "popcnt"].allSatisfy(f.contains) { return "haswell" }
        return machine
    }

    /// The legacy hwcap names in dl_hwcap & HWCAP_IMPORTANT, in bit order.
    static func legacyHwcapNames(machine: String, cpu: CPUInfo) -> [String] {
        guard machine == "x86_64" else { return [] }
        let f = cpu.flags
        let avx512_1 = cpu.vendor == "GenuineIntel" && f.contains("avx512cd") && !f.contains("avx512er")
            && f.contains("avx512bw") && f.contains("avx512dq") && f.contains("avx512vl")
        return ["x86_64"] + (avx512_1 ? ["avx512_1"] : [])
    }

    /// `_dl_important_hwcaps` before 2.37: every combination of hwcap names, platform and "tls", most
    /// specific first, each written with the later strings first ("tls/x86_64/x86_64"); repeats kept.
    /// The empty combination (the folder itself) is left out.
    static func legacyHwcapsSubdirs(hwcapNames: [String], platform: String?) -> [String] {
        let parts = hwcapNames + (platform.map { [$0] } ?? []) + ["tls"]
        let count = parts.count
        guard count < 16 else { return [] }
        var result: [String] = []
        for k in 0..<((1 << count) - 1) {
            let mask = (1 << count) - 1 - k
            result.append((0..<count).reversed().filter { mask & (1 << $0) != 0 }.map { parts[$0] }.joined(separator: "/"))
        }
        return result
    }

    static func unameMachine() -> String {
        var name = utsname()
        guard uname(&name) == 0 else { return "" }
        return withUnsafeBytes(of: &name.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    static func glibcVersion() -> (Int, Int)? {
        let size = confstr(Int32(_CS_GNU_LIBC_VERSION), nil, 0)
        guard size > 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: size)
        _ = confstr(Int32(_CS_GNU_LIBC_VERSION), &buffer, size)
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)  // "glibc 2.36"
        let numbers = text.split(separator: " ").last?.split(separator: ".").compactMap { Int($0) } ?? []
        return numbers.count >= 2 ? (numbers[0], numbers[1]) : nil
    }

    /// The first processor's vendor and flags in /proc/cpuinfo.
    struct CPUInfo {
        var vendor: String = ""
        var flags: Set<String> = []

        init(vendor: String, flags: Set<String>) { self.vendor = vendor; self.flags = flags }

        init(text: String) {
            // Line by line up to the first processor's flags, not a split of the whole file (one block per CPU).
            var rest = Substring(text)
            while !rest.isEmpty {
                let end = rest.firstIndex(of: "\n") ?? rest.endIndex
                let line = rest[..<end]
                rest = end == rest.endIndex ? "" : rest[rest.index(after: end)...]
                if line.isEmpty { continue }
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let key = Self.trimmed(parts[0])
                let value = Self.trimmed(parts[1])
                if key == "vendor_id", vendor.isEmpty { vendor = value }
                if key == "flags", flags.isEmpty { flags = Set(value.split(separator: " ").map(String.init)) }
                if !vendor.isEmpty, !flags.isEmpty { break }
            }
        }

        /// `trimmingCharacters(in: .whitespaces)` (tab and the space separators) without Foundation's
        /// NSString bridging, which was a third of HostLoaderFacts.current() and ~0.5 ms of every scan's start.
        static func trimmed(_ text: Substring) -> String {
            func isBlank(_ c: Unicode.Scalar) -> Bool { c == "\t" || c.properties.generalCategory == .spaceSeparator }
            let scalars = text.unicodeScalars
            guard let first = scalars.firstIndex(where: { !isBlank($0) }),
                  let last = scalars.lastIndex(where: { !isBlank($0) }) else { return "" }
            return String(scalars[first...last])
        }
    }
}
