import Glibc
import SentinelCore

/// node_exporter's textfile collector reads every *.prom file of its folder at each scrape: the
/// metrics are written to a temporary file in that folder, fsync'd, then renamed over the old one, so a
/// scrape never reads half a file. The temporary name starts with a dot and does not end in .prom (the
/// collector skips it), and is created O_EXCL|O_NOFOLLOW relative to the folder's descriptor.
enum Textfile {
    /// Nil when written; else the one-line reason.
    static func write(_ bytes: [UInt8], to path: String) -> String? {
        let folder = LoaderResolver.dirname(path)
        let name = String(path.dropFirst(folder == "/" ? 1 : folder.count + 1))
        let dfd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return "\(folder): \(String(cString: strerror(errno)))" }
        defer { close(dfd) }
        let temp = ".\(name).\(getpid()).tmp"
        unlinkat(dfd, temp, 0)  // a leftover of a daemon killed mid-write with the same pid
        let fd = openat(dfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return "\(folder)/\(temp): \(String(cString: strerror(errno)))" }
        var failure: String?
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 { if errno == EINTR { continue }; failure = "write: \(String(cString: strerror(errno)))"; return }
                done += n
            }
        }
        // 0644 whatever the daemon's umask: the collector runs as another user.
        if failure == nil, fchmod(fd, 0o644) != 0 { failure = "fchmod: \(String(cString: strerror(errno)))" }
        if failure == nil, fsync(fd) != 0 { failure = "fsync: \(String(cString: strerror(errno)))" }
        close(fd)
        if failure == nil, renameat(dfd, temp, dfd, name) != 0 { failure = "rename: \(String(cString: strerror(errno)))" }
        if let failure { unlinkat(dfd, temp, 0); return "\(path): \(failure)" }
        fsync(dfd)
        return nil
    }
}
