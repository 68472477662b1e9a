import CLibSystemd
import Dispatch
import FoundationEssentials
import Glibc
import SentinelCore

/// Journal alerts through libsystemd's native protocol (sd_journal_sendv): structured entries with a
/// fixed MESSAGE_ID per code, so `journalctl -x` shows the catalog's cause and fix. When journald is
/// absent (no /run/systemd/journal/socket, or nobody behind it) each entry becomes one line on the
/// fallback (stderr by default) instead: an alert is never dropped. The only gap: the socket vanishing
/// between the existence check and the send (libsystemd then reports success).
public final class JournalWriter: Sendable {
    public enum Delivery: Sendable, Equatable { case journal, fallback }

    private let identifier: String
    private let fallback: @Sendable (String) -> Void

    public init(identifier: String = "crypto-sentinel",
                fallback: @escaping @Sendable (String) -> Void = { line in
                    let bytes = Array((line + "\n").utf8)
                    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                }) {
        self.identifier = identifier
        self.fallback = fallback
    }

    /// One entry for one change (a finding appears or resolves, a target's state changes).
    @discardableResult
    public func send(_ alert: Alert) -> Delivery {
        let priority = Self.priority(of: alert)
        var fields: [(String, String)] = [
            ("MESSAGE", alert.message),
            ("MESSAGE_ID", Self.messageID(of: alert)),
            ("PRIORITY", String(priority)),
            ("SYSLOG_IDENTIFIER", identifier),
        ]
        if let code = alert.code { fields.append(("SENTINEL_CODE", code.rawValue)) }
        fields += [
            ("SENTINEL_TARGET", alert.target),
            ("SENTINEL_STATE", alert.state),
            ("SENTINEL_SEVERITY", alert.severity.rawValue),
            ("SENTINEL_KIND", alert.kind.rawValue),
            ("SENTINEL_AT", alert.at),
        ]
        let evidence = alert.evidence.sorted { $0.key < $1.key }
        fields += evidence.map { (Self.evidenceFieldName($0.key), $0.value) }
        if Self.sendv(fields) { return .journal }
        let head = [Self.priorityName(priority), alert.code?.rawValue ?? alert.kind.rawValue, alert.target, alert.state]
        fallback(Self.fallbackLine(identifier: identifier, head: head.map(Self.escaped).joined(separator: " "),
                                   message: alert.message, pairs: evidence.map { ($0.key, $0.value) }))
        return .fallback
    }

    /// A daemon event (started, config reloaded or rejected, stopping, cycle failed). Field names are
    /// upper-cased to journald's [A-Z0-9_]; the four standard fields cannot be overridden.
    @discardableResult
    public func log(priority: Int32, message: String, messageID: String? = nil, fields: [String: String] = [:]) -> Delivery {
        let priority = min(max(priority, 0), 7)
        var entry: [(String, String)] = [("MESSAGE", message), ("PRIORITY", String(priority)), ("SYSLOG_IDENTIFIER", identifier)]
        if let messageID { entry.append(("MESSAGE_ID", messageID)) }
        let reserved: Set<String> = ["MESSAGE", "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER"]
        let extra = fields.sorted { $0.key < $1.key }
        entry += extra.map { (Self.fieldName($0.key), $0.value) }.filter { !reserved.contains($0.0) }
        if Self.sendv(entry) { return .journal }
        fallback(Self.fallbackLine(identifier: identifier, head: Self.priorityName(priority), message: message,
                                   pairs: extra.map { ($0.key, $0.value) }))
        return .fallback
    }

    // MARK: - Mapping (internal so tests can check it without a journal)

    /// critical→crit(2), error→err(3), warning→warning(4), info→info(6); good news (a finding resolved,
    /// a target back to healthy) is notice(5), so `journalctl -p warning` shows only what needs work.
    static func priority(of alert: Alert) -> Int32 {
        switch alert.kind {
        case .findingResolved: return 5
        case .targetState where alert.state == TargetState.healthy.rawValue: return 5
        default:
            switch alert.severity {
            case .critical: return 2
            case .error: return 3
            case .warning: return 4
            case .info: return 6
            }
        }
    }

    static func messageID(of alert: Alert) -> String {
        if alert.kind == .targetState { return DaemonMessageID.targetState }
        return alert.code?.messageID ?? DaemonMessageID.targetState
    }

    static func priorityName(_ priority: Int32) -> String {
        ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"][Int(min(max(priority, 0), 7))]
    }

    /// journald keeps only names of [A-Z0-9_], at most 64 bytes, not starting with a digit or "_"
    /// (a leading "_" is reserved for trusted fields); anything else is dropped silently, so map it.
    static func fieldName(_ key: String) -> String {
        var name = upperSnake(key)
        if name.first.map({ !($0 >= "A" && $0 <= "Z") }) ?? true { name = "SENTINEL_" + name }
        return String(name.prefix(64))
    }

    /// SENTINEL_EV_<KEY>: the prefix already starts with a letter, so any key maps.
    static func evidenceFieldName(_ key: String) -> String {
        String(("SENTINEL_EV_" + upperSnake(key)).prefix(64))
    }

    private static func upperSnake(_ key: String) -> String {
        String(key.uppercased().unicodeScalars.map { s -> Character in
            (s >= "A" && s <= "Z") || (s >= "0" && s <= "9") || s == "_" ? Character(s) : "_"
        })
    }

    // MARK: - Wire

    /// libsystemd's fixed native-protocol socket.
    static let journalSocket = "/run/systemd/journal/socket"

    /// One sd_journal_sendv call: "NAME=value" iovecs (values may hold newlines: the native protocol
    /// sends them length-prefixed; NULs are dropped as C tools reading the field would stop at one).
    private static func sendv(_ fields: [(String, String)]) -> Bool {
        // libsystemd "fails silently" (returns 0) when the socket file is absent (ENOENT), so that case
        // is checked here; a stale socket with no journald behind it fails the send (ECONNREFUSED).
        guard access(journalSocket, F_OK) == 0 else { return false }
        var buffer: [UInt8] = []
        var ranges: [Range<Int>] = []
        for (name, value) in fields {
            let start = buffer.count
            buffer += Array(name.utf8)
            buffer.append(UInt8(ascii: "="))
            buffer += value.utf8.filter { $0 != 0 }
            ranges.append(start..<buffer.count)
        }
        let rc = buffer.withUnsafeMutableBytes { raw -> Int32 in
            var iov = ranges.map { iovec(iov_base: raw.baseAddress! + $0.lowerBound, iov_len: $0.count) }
            return iov.withUnsafeMutableBufferPointer { sentinel_sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
        return rc >= 0
    }

    /// `crypto-sentinel: <priority> <code> <target> <state>: <message> [key=value …]` on one line.
    private static func fallbackLine(identifier: String, head: String, message: String, pairs: [(String, String)]) -> String {
        var line = "\(identifier): \(head): \(escaped(message))"
        if !pairs.isEmpty {
            line += " [" + pairs.map { "\(escaped($0.0))=\(quoted($0.1))" }.joined(separator: " ") + "]"
        }
        return line
    }

    /// Control characters as escapes, so one alert is exactly one line of the fallback stream.
    static func escaped(_ text: String) -> String {
        var out = ""
        for s in text.unicodeScalars {
            switch s {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\0": continue
            default:
                if s.value < 0x20 || s.value == 0x7f { out += "\\x" + (s.value < 0x10 ? "0" : "") + String(s.value, radix: 16) } else { out.unicodeScalars.append(s) }
            }
        }
        return out
    }

    /// A value with spaces, quotes or brackets is quoted, so the pairs split back unambiguously.
    static func quoted(_ value: String) -> String {
        guard value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "]" || $0 == "=" }) else {
            return escaped(value)
        }
        return "\"" + escaped(String(value.flatMap { $0 == "\\" || $0 == "\"" ? ["\\", $0] : [$0] })) + "\""
    }
}
