import Foundation
import Glibc

/// A cgroup directory named like a systemd unit (`…/sentinel-test-XXXX.slice/NAME`): PID 1 is not
/// systemd here, so a "unit" is only where /proc/<pid>/cgroup says a process lives. Removed by `remove()`.
public final class FakeUnit {
    public let name: String
    let slice: String
    var dir: String { slice + "/" + name }

    /// nil when no writable cgroup hierarchy is mounted (the caller says why it cannot go on).
    public init?(_ name: String) {
        guard let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].first(where: { FileManager.default.fileExists(atPath: $0 + "/cgroup.procs") })
        else { return nil }
        self.name = name
        slice = "\(root)/sentinel-test-\(UUID().uuidString.prefix(8)).slice"
        guard (try? FileManager.default.createDirectory(atPath: slice + "/" + name, withIntermediateDirectories: true)) != nil else { return nil }
    }

    /// Moves a running process into the unit.
    public func adopt(_ pid: Int32) -> Bool {
        (try? "\(pid)\n".write(toFile: dir + "/cgroup.procs", atomically: false, encoding: .utf8)) != nil
    }

    /// Call after the unit's processes are gone (a cgroup with members cannot be removed).
    public func remove() {
        for _ in 0..<50 where rmdir(dir) != 0 && errno == EBUSY { usleep(20_000) }
        rmdir(slice)
    }
}
