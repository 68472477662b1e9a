/// The systemd unit a process belongs to, from /proc/<pid>/cgroup.
public enum CgroupUnit {
    /// The `0::` line (cgroup v2, or the unified half of a hybrid setup) first, then `name=systemd`
    /// (cgroup v1). The unit is the last path component ending in `.service`, so workers in a
    /// delegated sub-cgroup (`…/product-api.service/worker`) still belong to it.
    public static func unit(cgroupFile text: String) -> String? {
        var v2: String?, v1: String?
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty { v2 = String(parts[2]) }
            else if parts[1].split(separator: ",").contains("name=systemd") { v1 = String(parts[2]) }
        }
        return v2.flatMap(unit(cgroupPath:)) ?? v1.flatMap(unit(cgroupPath:))
    }

    /// The same from bytes, building no String unless there is a unit (once per process of `--all`).
    public static func unit(cgroupFile b: UnsafeRawBufferPointer) -> String? {
        var v2: Range<Int>?, v1: Range<Int>?
        ProcBytes.forEachLine(b) { i, eol in
            var c1 = i
            while c1 < eol && b[c1] != 0x3a { c1 += 1 }
            var c2 = c1 + 1
            while c2 < eol && b[c2] != 0x3a { c2 += 1 }
            if c2 < eol {
                let controllers = UnsafeRawBufferPointer(rebasing: b[(c1 + 1)..<c2])
                if c1 == i + 1, b[i] == 0x30, controllers.isEmpty { v2 = (c2 + 1)..<eol }
                else if contains(controllers, "name=systemd") { v1 = (c2 + 1)..<eol }
            }
            return true
        }
        for range in [v2, v1].compactMap({ $0 }) {
            if let unit = unitComponent(UnsafeRawBufferPointer(rebasing: b[range])) { return unit }
        }
        return nil
    }

    private static func contains(_ hay: UnsafeRawBufferPointer, _ needle: StaticString) -> Bool {
        let n = needle.utf8CodeUnitCount
        guard hay.count >= n else { return false }
        let needle = UnsafeRawBufferPointer(start: needle.utf8Start, count: n)
        for start in 0...(hay.count - n) where hay[start..<(start + n)].elementsEqual(needle) { return true }
        return false
    }

    private static func unitComponent(_ path: UnsafeRawBufferPointer) -> String? {
        let suffix: StaticString = ".service"
        let suffixBytes = UnsafeRawBufferPointer(start: suffix.utf8Start, count: suffix.utf8CodeUnitCount)
        var end = path.count
        while end > 0 {
            var start = end
            while start > 0 && path[start - 1] != 0x2f { start -= 1 }
            let component = path[start..<end]
            if component.count > suffixBytes.count, component.suffix(suffixBytes.count).elementsEqual(suffixBytes) {
                return String(decoding: component, as: UTF8.self)
            }
            end = start - 1
        }
        return nil
    }

    public static func unit(cgroupPath path: String) -> String? {
        path.split(separator: "/").last { $0.hasSuffix(".service") && $0.count > ".service".count }.map(String.init)
    }

    /// "product-api" → "product-api.service"; names with a unit suffix are kept.
    public static func normalise(_ name: String) -> String {
        let suffixes = [".service", ".scope", ".slice", ".socket", ".timer", ".target", ".mount"]
        return suffixes.contains(where: name.hasSuffix) ? name : name + ".service"
    }
}

/// Who a process runs as, from /proc/<pid>/status (what the POST child must run as).
public struct ProcessCredentials: Sendable, Hashable, Codable {
    public var uid: UInt32, effectiveUID: UInt32
    public var gid: UInt32, effectiveGID: UInt32
    public var groups: [UInt32]
    public init(uid: UInt32, effectiveUID: UInt32, gid: UInt32, effectiveGID: UInt32, groups: [UInt32]) {
        self.uid = uid; self.effectiveUID = effectiveUID; self.gid = gid; self.effectiveGID = effectiveGID
        self.groups = groups
    }
}

/// The few fields of /proc/<pid>/status the inspector needs.
public struct ProcStatus: Sendable, Hashable {
    public var name: String?
    /// The state letter: R, S, D, Z (zombie), T, …
    public var state: Character?
    public var credentials: ProcessCredentials?
    /// Seccomp mode (0 none, 1 strict, 2 filter); read only when asked (`throughSeccomp`).
    public var seccomp: Int?

    public init(name: String? = nil, state: Character? = nil, credentials: ProcessCredentials? = nil) {
        self.name = name; self.state = state; self.credentials = credentials
    }

    public static func parse(_ bytes: [UInt8], throughSeccomp: Bool = false) -> ProcStatus {
        bytes.withUnsafeBytes { parse($0, throughSeccomp: throughSeccomp) }
    }

    /// Bytes in, no String but the name: this runs once per process of `inspect --all`.
    public static func parse(_ b: UnsafeRawBufferPointer, throughSeccomp: Bool = false) -> ProcStatus {
        var status = ProcStatus()
        var uids: [UInt32] = [], gids: [UInt32] = [], groups: [UInt32] = []
        ProcBytes.forEachLine(b) { i, eol in
            var colon = i
            while colon < eol && b[colon] != 0x3a { colon += 1 }
            var v = colon + 1
            while v < eol && (b[v] == 0x09 || b[v] == 0x20) { v += 1 }
            let key = UnsafeRawBufferPointer(rebasing: b[i..<colon])
            func numbers() -> [UInt32] {
                var out: [UInt32] = [], n: UInt32 = 0, inNumber = false
                for k in v..<eol {
                    let c = b[k]
                    if c >= 0x30 && c <= 0x39 { n = n &* 10 &+ UInt32(c - 0x30); inNumber = true }
                    else if inNumber { out.append(n); n = 0; inNumber = false }
                }
                if inNumber { out.append(n) }
                return out
            }
            // The kernel escapes nothing in Name except '\n' and '\\': shown as is.
            if key.elementsEqual("Name".utf8) { status.name = String(decoding: b[v..<eol], as: UTF8.self) }
            else if key.elementsEqual("State".utf8), v < eol { status.state = Character(Unicode.Scalar(b[v])) }
            else if key.elementsEqual("Uid".utf8) { uids = numbers() }
            else if key.elementsEqual("Gid".utf8) { gids = numbers() }
            else if key.elementsEqual("Groups".utf8) { groups = numbers(); return throughSeccomp }  // the last field inspect needs
            else if key.elementsEqual("Seccomp".utf8) { status.seccomp = numbers().first.map(Int.init); return false }
            return true
        }
        if uids.count >= 2, gids.count >= 2 {
            status.credentials = ProcessCredentials(uid: uids[0], effectiveUID: uids[1], gid: gids[0],
                                                    effectiveGID: gids[1], groups: groups)
        }
        return status
    }
}

/// Line splitting for the /proc texts parsed as bytes (maps, status, cgroup).
enum ProcBytes {
    /// Calls `body(start, end)` for each line without its newline until `body` returns false.
    @inline(__always)
    static func forEachLine(_ b: UnsafeRawBufferPointer, _ body: (Int, Int) -> Bool) {
        var i = 0
        while i < b.count {
            var eol = i
            while eol < b.count && b[eol] != 0x0a { eol += 1 }
            guard body(i, eol) else { return }
            i = eol + 1
        }
    }
}
