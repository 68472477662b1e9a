import Glibc
import SentinelCore

/// node_exporter's textfile collector reads every *.prom file of its folder at each scrape: the
/// metrics replace the file whole (replaceFile), so a scrape never reads half a file. The temporary
/// name starts with a dot and does not end in .prom, so the collector skips it.
enum Textfile {
    /// Nil when written; else the one-line reason.
    static func write(_ bytes: [UInt8], to path: String) -> String? {
        let folder = LoaderResolver.dirname(path)
        let name = String(path.dropFirst(folder == "/" ? 1 : folder.count + 1))
        let dfd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return "\(folder): \(String(cString: strerror(errno)))" }
        defer { close(dfd) }
        // 0644 whatever the daemon's umask: the collector runs as another user.
        return replaceFile(in: dfd, folder: folder, name: name, temp: ".\(name).\(getpid()).tmp", bytes: bytes,
                           mode: 0o644, exactMode: true)
    }
}
