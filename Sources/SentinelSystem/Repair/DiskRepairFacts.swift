import Dispatch
import Glibc
import SentinelCore

/// The planner's questions answered from the disk: lstat, the dynamic string tables, and dpkg's
/// database through `dpkg-query` (run by the probe as `nobody`, like every program `repair` starts).
public struct DiskRepairFacts: RepairFileFacts {
    public var root: String
    /// Asks dpkg only when set (`--in-place`).
    public var runner: PostRunner?

    public init(root: String, runner: PostRunner?) { self.root = root; self.runner = runner }

    public func dynamicStrings(_ paths: [String]) -> [String: Result<DynamicStrings, RewriteRefusal>] {
        let tables = Locked<[String: Result<DynamicStrings, RewriteRefusal>]>([:])
        let cores = max(1, min(paths.count, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        DispatchQueue.concurrentPerform(iterations: cores) { part in
            for i in stride(from: part, to: paths.count, by: cores) {
                let result: Result<DynamicStrings, RewriteRefusal>
                do { result = .success(try DynamicStringsReader.read(path: paths[i])) } catch {
                    result = .failure(RewriteRefusal("cannot read its dynamic strings: \(error)"))
                }
                tables.withLock { $0[paths[i]] = result }
            }
        }
        return tables.withLock { $0 }
    }

    public func integrityCompanion(_ path: String) -> String? {
        let dir = dirOf(path), name = lastComponent(path)
        // Fedora/RHEL FIPS builds keep `.libcrypto.so.1.1.hmac`; fipscheck and libkcapi write `NAME.hmac`.
        return [dir + "/." + name + ".hmac", path + ".hmac"].first { access($0, F_OK) == 0 }
    }

    public func readOnlyReason(_ path: String) -> String? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return "cannot stat: \(String(cString: strerror(errno)))" }
        if st.st_mode & 0o222 == 0 {
            return "mode \(String(st.st_mode & 0o7777, radix: 8)) has no write bit: marked read-only, so it is left alone (chmod u+w it if this edit is intended)"
        }
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return "cannot open: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var flags: CLong = 0
        // FS_IOC_GETFLAGS; FS_IMMUTABLE_FL 0x10, FS_APPEND_FL 0x20 (chattr +i / +a).
        if ioctl(fd, 0x8008_6601, &flags) == 0, flags & 0x30 != 0 {
            return "immutable or append-only (chattr +\(flags & 0x10 != 0 ? "i" : "a")): left alone"
        }
        return nil
    }

    public func linksOutsideTree(_ file: BundleFile) -> Int {
        var st = stat()
        var inside = 0
        var links = 0
        for rel in [file.relativePath] + file.aliases where lstat(join(root, rel), &st) == 0 && st.st_mode & S_IFMT == S_IFREG {
            inside += 1
            links = Int(st.st_nlink)
        }
        return max(0, links - inside)
    }

    public func packageOwner(_ path: String) -> String? {
        guard let runner, access("/usr/bin/dpkg-query", X_OK) == 0 else { return nil }
        let nobody = getpwnam("nobody").map { PostRunner.Identity(uid: $0.pointee.pw_uid, gid: $0.pointee.pw_gid) }
        let (outcome, output, _) = runner.runCommand(["/usr/bin/dpkg-query", "-S", path], environment: ["PATH": "/usr/bin:/bin", "LC_ALL": "C"],
                                                     cwd: "/", identity: getuid() == 0 ? nobody : nil)
        guard case .exited(status: 0, _) = outcome else { return nil }
        // "openssl: /usr/lib/x86_64-linux-gnu/libcrypto.so.3" (a diversion line starts with "diversion by").
        return output.split(separator: "\n").first { $0.hasSuffix(": " + path) && !$0.hasPrefix("diversion") }
            .map { String($0.dropLast(path.count + 2)) }
    }

    public func symlinks(of file: BundleFile) -> [String: String] {
        var out: [String: String] = [:]
        for rel in [file.relativePath] + file.aliases {
            if let text = ProcReader.readLink(AT_FDCWD, join(root, rel)).value { out[rel] = text }
        }
        return out
    }
}
