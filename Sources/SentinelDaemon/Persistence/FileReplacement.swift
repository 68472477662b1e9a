import Glibc

/// Replaces `name` in the folder `dfd` whole: a temporary file created there with
/// O_EXCL|O_NOFOLLOW (never through a file or link left at that name), written, fsync'd, renamed over
/// `name`, then the folder fsync'd. A reader sees the old file or the new one, never half of one.
/// `exactMode` sets the mode whatever the umask (for a reader running as another user).
/// Nil when done; else a one-line reason, and the temporary file is gone.
func replaceFile(in dfd: Int32, folder: String, name: String, temp: String, bytes: [UInt8],
                 mode: mode_t, exactMode: Bool = false) -> String? {
    var fd = openat(dfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
    if fd < 0 && errno == EEXIST {  // left by a daemon with the same pid that died mid-write
        unlinkat(dfd, temp, 0)
        fd = openat(dfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
    }
    guard fd >= 0 else { return "\(folder)/\(temp): cannot create: \(String(cString: strerror(errno)))" }
    var failure: String?
    bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 { if errno == EINTR { continue }; failure = "write: \(String(cString: strerror(errno)))"; return }
            done += n
        }
    }
    if failure == nil, exactMode, fchmod(fd, mode) != 0 { failure = "fchmod: \(String(cString: strerror(errno)))" }
    if failure == nil, fsync(fd) != 0 { failure = "fsync: \(String(cString: strerror(errno)))" }
    close(fd)
    if failure == nil, renameat(dfd, temp, dfd, name) != 0 { failure = "rename: \(String(cString: strerror(errno)))" }
    if let failure {
        unlinkat(dfd, temp, 0)
        return "\(folder)/\(name): \(failure)"
    }
    fsync(dfd)
    return nil
}
