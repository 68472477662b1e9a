import Dispatch
import FoundationEssentials
import Glibc
import SentinelCore

/// The state folder: the last report (served after a restart until the first new cycle completes) and
/// a bounded history of changes. Every write is temp file, fsync, rename, fsync of the folder, so a
/// crash leaves the old or the new file, never half of one.
public final class StateStore: Sendable {
    public let directory: String
    public let historyLimit: Int
    var reportPath: String { directory + "/report.json" }
    var historyPath: String { directory + "/history.json" }

    public init(directory: String, historyLimit: Int) {
        self.directory = directory
        self.historyLimit = max(1, historyLimit)
    }

    /// Creates the folder if needed (mode 0750) and refuses one that another user could change: it
    /// must be a real directory (not a link), owned by this process's user, writable by no one else.
    /// Otherwise whoever can write there could plant links for root to write through.
    public func checkFolder() throws(Failure) {
        if mkdir(directory, 0o750) != 0 && errno != EEXIST {
            throw Failure(description: "\(directory): cannot create: \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard lstat(directory, &st) == 0 else { throw Failure(description: "\(directory): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw Failure(description: "\(directory): not a directory (a link or a file)") }
        guard st.st_uid == geteuid() else {
            throw Failure(description: "\(directory): owned by uid \(st.st_uid), not by this daemon's uid \(geteuid())")
        }
        guard st.st_mode & 0o022 == 0 else {
            throw Failure(description: "\(directory): writable by group or others (mode \(String(st.st_mode & 0o7777, radix: 8))); chmod go-w it")
        }
    }

    /// The folder itself, opened without following a link: every file below is opened relative to it.
    func openFolder() throws(Failure) -> Int32 {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dfd >= 0 else { throw Failure(description: "\(directory): \(String(cString: strerror(errno)))") }
        return dfd
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Loads what the last run left. A file that does not decode is set aside (renamed to
    /// NAME.corrupt-<unix time>) with a warning, and the daemon starts as if it were absent.
    public func load() -> (report: Report?, history: [Alert], warnings: [String]) {
        var warnings: [String] = []
        let report: Report? = read(reportPath, warnings: &warnings)
        let history: [Alert] = read(historyPath, warnings: &warnings) ?? []
        return (report, Array(history.suffix(historyLimit)), warnings)
    }

    func read<T: Decodable>(_ path: String, warnings: inout [String]) -> T? {
        let name = String(path.dropFirst(directory.count + 1))
        let dfd: Int32
        do { dfd = try openFolder() } catch {
            if errno != ENOENT { warnings.append(error.description) }
            return nil
        }
        defer { close(dfd) }
        let fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno != ENOENT { warnings.append("\(path): cannot be read: \(String(cString: strerror(errno)))") }
            return nil
        }
        defer { close(fd) }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            let aside = "\(name).corrupt-\(time(nil))"
            let moved = renameat(dfd, name, dfd, aside) == 0
            warnings.append("\(path): not a valid state file (\(Self.reason(error))); " + (moved ? "set aside as \(directory)/\(aside)" : "ignored (cannot rename: \(String(cString: strerror(errno))))"))
            return nil
        }
    }

    static func reason(_ error: Error) -> String {
        if case DecodingError.dataCorrupted(let c) = error { return c.debugDescription }
        if case DecodingError.keyNotFound(let k, _) = error { return "missing key \(k.stringValue)" }
        if case DecodingError.typeMismatch(_, let c) = error { return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: "."))" }
        return "\(error)"
    }

    public func save(report: Report) throws(Failure) { try write(ReportJSON.encode(report, style: .compact), to: reportPath) }
    public func save(history: [Alert]) throws(Failure) {
        try write(ReportJSON.encode(Array(history.suffix(historyLimit)), style: .compact), to: historyPath)
    }

    func write(_ data: [UInt8], to path: String) throws(Failure) {
        try checkFolder()
        let dfd = try openFolder()
        defer { close(dfd) }
        let name = String(path.dropFirst(directory.count + 1))
        if let failure = replaceFile(in: dfd, folder: directory, name: name, temp: Self.tempName(name), bytes: data, mode: 0o640) {
            throw Failure(description: failure)
        }
    }

    static func tempName(_ name: String) -> String { "\(name).tmp-\(getpid())" }
}
