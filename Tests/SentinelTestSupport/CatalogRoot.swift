import Foundation
import Glibc

/// A temporary root with the shipped catalog under usr/lib/systemd/catalog and its compiled database
/// (journalctl --root=… --update-catalog), removed by `remove()`. The host's catalog is never touched.
public struct CatalogRoot {
    public let path: String
    public static let shipped = FixtureScripts.packageRoot + "/systemd/crypto-sentinel.catalog"

    public init() throws {
        try FileManager.default.createDirectory(atPath: FixtureScripts.root, withIntermediateDirectories: true)
        var template = Array("\(FixtureScripts.root)/catalog-root-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw FixtureScriptError(message: "mkdtemp: \(String(cString: strerror(errno)))")
        }
        let path = String(cString: made)
        do { try Self.build(path) } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
        self.path = path
    }

    private static func build(_ path: String) throws {
        let dir = path + "/usr/lib/systemd/catalog"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: shipped, toPath: dir + "/crypto-sentinel.catalog")
        let (status, out) = try JournaldLease.runTool(JournaldLease.journalctl, ["--root=" + path, "--update-catalog"])
        guard status == 0, FileManager.default.fileExists(atPath: path + "/var/lib/systemd/catalog/database") else {
            throw FixtureScriptError(message: "journalctl --root=\(path) --update-catalog failed (\(status)): \(out)")
        }
    }

    /// `journalctl -x --no-pager ARGUMENTS…` explained by this catalog: -x reads the fixed
    /// /var/lib/systemd/catalog/database (--root does not apply to it), so one journalctl sees ours
    /// through a bind mount in a private mount namespace.
    public func explain(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let script = "mount --make-rprivate / && mount --bind \"$1\" /var/lib/systemd && shift && exec \"$@\""
        return try JournaldLease.runTool("/usr/bin/unshare", ["-m", "/bin/sh", "-c", script, "sh", path + "/var/lib/systemd",
                                                              JournaldLease.journalctl, "-x", "--no-pager"] + arguments)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}
