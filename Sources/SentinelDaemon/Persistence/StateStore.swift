import Foundation
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
        guard let data = FileManager.default.contents(atPath: path) else {
            if access(path, F_OK) == 0 { warnings.append("\(path): cannot be read: \(String(cString: strerror(errno)))") }
            return nil
        }
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            let aside = "\(path).corrupt-\(time(nil))"
            let moved = rename(path, aside) == 0
            warnings.append("\(path): not a valid state file (\(Self.reason(error))); " + (moved ? "set aside as \(aside)" : "ignored (cannot rename: \(String(cString: strerror(errno))))"))
            return nil
        }
    }

    static func reason(_ error: Error) -> String {
        if case DecodingError.dataCorrupted(let c) = error { return c.debugDescription }
        if case DecodingError.keyNotFound(let k, _) = error { return "missing key \(k.stringValue)" }
        if case DecodingError.typeMismatch(_, let c) = error { return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: "."))" }
        return "\(error)"
    }

    public func save(report: Report) throws(Failure) { try write(report, to: reportPath) }
    public func save(history: [Alert]) throws(Failure) { try write(Array(history.suffix(historyLimit)), to: historyPath) }

    func write<T: Encodable>(_ value: T, to path: String) throws(Failure) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do { data = try encoder.encode(value) } catch { throw Failure(description: "\(path): cannot encode: \(error)") }
        if mkdir(directory, 0o750) != 0 && errno != EEXIST {
            throw Failure(description: "\(directory): cannot create: \(String(cString: strerror(errno)))")
        }
        let temp = "\(path).tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Failure(description: "\(temp): cannot create: \(String(cString: strerror(errno)))") }
        var ok = true
        var why = ""
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; ok = false; why = "write: \(String(cString: strerror(errno)))"; return }
                offset += n
            }
        }
        if ok && fsync(fd) != 0 { ok = false; why = "fsync: \(String(cString: strerror(errno)))" }
        close(fd)
        guard ok else { unlink(temp); throw Failure(description: "\(path): \(why)") }
        guard rename(temp, path) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(temp)
            throw Failure(description: "\(path): rename: \(e)")
        }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
