import Foundation
import Glibc
import SentinelCore
import SentinelTestSupport
import Testing
@testable import SentinelSystem

/// Lines a fallback closure received (the writer calls it from any thread).
final class FallbackLines: Sendable {
    private let lines = Locked<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    var sink: @Sendable (String) -> Void { { line in self.lines.withLock { $0.append(line) } } }
}

/// Runs `body` on a thread of its own with a private mount namespace in which an empty tmpfs hides
/// /run/systemd/journal: libsystemd's sends from that thread find no journald (ENOENT), exactly as on
/// a host without journald, while journald keeps serving the rest of this process. unshare(2) with
/// CLONE_NEWNS only affects the calling thread (its fs context is copied); Glibc's module does not
/// export unshare, so it is looked up in libc.
/// With `staleSocket`, a socket file nobody listens on is left in its place (journald killed): the send
/// then fails with ECONNREFUSED instead of ENOENT.
func withoutJournald<T: Sendable>(staleSocket: Bool = false, _ body: @escaping @Sendable () -> T) throws -> T {
    typealias Unshare = @convention(c) (Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "unshare") else { throw FixtureError("no unshare in libc") }
    let unshareCall = unsafeBitCast(symbol, to: Unshare.self)
    let result = Locked<Result<T, FixtureError>?>(nil)
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        defer { done.signal() }
        let CLONE_NEWNS: Int32 = 0x0002_0000
        guard unshareCall(CLONE_NEWNS) == 0 else {
            result.withLock { $0 = .failure(FixtureError("unshare(CLONE_NEWNS): \(String(cString: strerror(errno)))")) }
            return
        }
        // Private propagation first, so the tmpfs below never shows up in the host's namespace.
        guard mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) == 0 else {
            result.withLock { $0 = .failure(FixtureError("mount --make-rprivate /: \(String(cString: strerror(errno)))")) }
            return
        }
        if access("/run/systemd/journal", F_OK) == 0, mount("tmpfs", "/run/systemd/journal", "tmpfs", 0, nil) != 0 {
            result.withLock { $0 = .failure(FixtureError("mount tmpfs on /run/systemd/journal: \(String(cString: strerror(errno)))")) }
            return
        }
        guard access(JournaldLease.socketPath, F_OK) != 0 else {
            result.withLock { $0 = .failure(FixtureError("journal socket still visible in the private namespace")) }
            return
        }
        if staleSocket {
            // Bind then close: the file stays, nothing listens.
            do { _ = try NotifyListener(path: JournaldLease.socketPath) }
            catch { result.withLock { $0 = .failure(FixtureError("stale socket: \(error)")) }; return }
            guard access(JournaldLease.socketPath, F_OK) == 0, !JournaldLease.isListening() else {
                result.withLock { $0 = .failure(FixtureError("stale socket not in place")) }
                return
            }
        }
        let value = body()
        result.withLock { $0 = .success(value) }
    }
    thread.start()
    done.wait()
    return try result.withLock { $0 }!.get()
}

func splitAlert(_ target: String) -> Alert {
    Alert(kind: .findingNew, code: .splitLibcrypto, target: target, state: "new", severity: .critical,
          message: "consumers of \(target) resolve to 2 libcrypto files",
          evidence: ["path": "/opt/product/lib/libcrypto-3a1b2c3d.so.3", "consumer-chain": "bin/api\n_ssl.so", "odd\u{0}key": "a\u{0}b"],
          at: "2026-11-23T14:00:00Z")
}

@Suite("journal writer: priorities and field names")
struct JournalWriterMappingTests {
    @Test("PRIORITY follows severity; good news is notice")
    func priorities() {
        func alert(_ kind: Alert.Kind, _ severity: Severity, state: String = "new") -> Alert {
            Alert(kind: kind, code: kind == .targetState ? nil : .processEnvDrift, target: "t", state: state, severity: severity, message: "m", at: "")
        }
        #expect(JournalWriter.priority(of: alert(.findingNew, .critical)) == 2)
        #expect(JournalWriter.priority(of: alert(.findingNew, .error)) == 3)
        #expect(JournalWriter.priority(of: alert(.findingNew, .warning)) == 4)
        #expect(JournalWriter.priority(of: alert(.findingNew, .info)) == 6)
        #expect(JournalWriter.priority(of: alert(.findingResolved, .critical, state: "resolved")) == 5)
        #expect(JournalWriter.priority(of: alert(.targetState, .critical, state: "failed")) == 2)
        #expect(JournalWriter.priority(of: alert(.targetState, .warning, state: "degraded")) == 4)
        #expect(JournalWriter.priority(of: alert(.targetState, .info, state: "healthy")) == 5)
        #expect(JournalWriter.messageID(of: alert(.targetState, .critical, state: "failed")) == DaemonMessageID.targetState)
        #expect(JournalWriter.messageID(of: alert(.findingResolved, .warning, state: "resolved")) == FindingCode.processEnvDrift.messageID)
    }

    @Test("field names are journald's [A-Z0-9_], at most 64 bytes, never starting with _ or a digit")
    func fieldNames() {
        #expect(JournalWriter.evidenceFieldName("path") == "SENTINEL_EV_PATH")
        #expect(JournalWriter.evidenceFieldName("consumer-chain") == "SENTINEL_EV_CONSUMER_CHAIN")
        #expect(JournalWriter.evidenceFieldName("1st.lib/é") == "SENTINEL_EV_1ST_LIB__")
        #expect(JournalWriter.evidenceFieldName(String(repeating: "k", count: 100)).count == 64)
        #expect(JournalWriter.fieldName("config-file") == "CONFIG_FILE")
        #expect(JournalWriter.fieldName("_PID") == "SENTINEL__PID")
        #expect(JournalWriter.fieldName("2x") == "SENTINEL_2X")
        #expect(JournalWriter.fieldName("") == "SENTINEL_")
    }
}

/// journald is shared by everything on the machine: serialised, each test leases it (JournaldLease
/// starts it when absent and stops only the one it started).
@Suite("journal writer with a real journald", .serialized)
struct JournalWriterJournaldTests {
    @Test("an alert is one entry with every field, read back with journalctl")
    func alertFields() throws {
        let lease = try JournaldLease()
        defer { lease.release() }
        let lines = FallbackLines()
        let writer = JournalWriter(fallback: lines.sink)
        let target = "sysd-test-\(UUID().uuidString.lowercased())"

        #expect(writer.send(splitAlert(target)) == .journal)
        let entries = try JournaldLease.entries(matching: ["MESSAGE_ID=\(FindingCode.splitLibcrypto.messageID)", "SENTINEL_TARGET=\(target)"])
        try #require(entries.count == 1, "entries: \(entries)")
        let e = entries[0]
        #expect(e["MESSAGE"] as? String == "consumers of \(target) resolve to 2 libcrypto files")
        #expect(e["PRIORITY"] as? String == "2")
        #expect(e["SYSLOG_IDENTIFIER"] as? String == "crypto-sentinel")
        #expect(e["SENTINEL_CODE"] as? String == "split-libcrypto")
        #expect(e["SENTINEL_STATE"] as? String == "new")
        #expect(e["SENTINEL_SEVERITY"] as? String == "critical")
        #expect(e["SENTINEL_KIND"] as? String == "finding-new")
        #expect(e["SENTINEL_AT"] as? String == "2026-11-23T14:00:00Z")
        #expect(e["SENTINEL_EV_PATH"] as? String == "/opt/product/lib/libcrypto-3a1b2c3d.so.3")
        // A newline survives the native protocol; a NUL is dropped (key and value).
        #expect(e["SENTINEL_EV_CONSUMER_CHAIN"] as? String == "bin/api\n_ssl.so")
        #expect(e["SENTINEL_EV_ODD_KEY"] as? String == "ab")
        #expect(e["_PID"] as? String == String(getpid()))
        #expect(lines.all.isEmpty)

        // Resolved: same MESSAGE_ID (the catalog entry of the code), notice priority.
        var resolved = splitAlert(target)
        resolved.kind = .findingResolved
        resolved.state = "resolved"
        resolved.evidence = [:]
        #expect(writer.send(resolved) == .journal)
        let both = try JournaldLease.entries(matching: ["MESSAGE_ID=\(FindingCode.splitLibcrypto.messageID)", "SENTINEL_TARGET=\(target)"], count: 2)
        #expect(both.map { $0["PRIORITY"] as? String } == ["2", "5"])
        #expect(both.map { $0["SENTINEL_STATE"] as? String } == ["new", "resolved"])

        // A target's state: the daemon's own MESSAGE_ID, no SENTINEL_CODE.
        let state = Alert(kind: .targetState, code: nil, target: target, state: "failed", severity: .critical,
                          message: "\(target) is failed", at: "2026-11-23T14:00:00Z")
        #expect(writer.send(state) == .journal)
        let states = try JournaldLease.entries(matching: ["MESSAGE_ID=\(DaemonMessageID.targetState)", "SENTINEL_TARGET=\(target)"])
        try #require(states.count == 1)
        #expect(states[0]["PRIORITY"] as? String == "2")
        #expect(states[0]["SENTINEL_STATE"] as? String == "failed")
        #expect(states[0]["SENTINEL_CODE"] == nil)
    }

    @Test("a daemon event: priority, MESSAGE_ID and upper-cased fields; reserved fields are not overridden")
    func daemonEvent() throws {
        let lease = try JournaldLease()
        defer { lease.release() }
        let writer = JournalWriter(identifier: "crypto-sentinel-test")
        let marker = UUID().uuidString.lowercased()
        let delivery = writer.log(priority: 3, message: "config rejected: /etc/x.yaml:3: unknown key 'intervall'",
                                  messageID: DaemonMessageID.configRejected,
                                  fields: ["config-file": "/etc/x.yaml", "line": "3", "marker": marker, "PRIORITY": "7"])
        #expect(delivery == .journal)
        let entries = try JournaldLease.entries(matching: ["MESSAGE_ID=\(DaemonMessageID.configRejected)", "MARKER=\(marker)"])
        try #require(entries.count == 1)
        #expect(entries[0]["PRIORITY"] as? String == "3")
        #expect(entries[0]["CONFIG_FILE"] as? String == "/etc/x.yaml")
        #expect(entries[0]["LINE"] as? String == "3")
        #expect(entries[0]["SYSLOG_IDENTIFIER"] as? String == "crypto-sentinel-test")
    }

    @Test("journalctl -x shows the catalog's cause and fix under the alert")
    func catalogExplains() throws {
        let lease = try JournaldLease()
        defer { lease.release() }
        let target = "sysd-test-\(UUID().uuidString.lowercased())"
        #expect(JournalWriter().send(splitAlert(target)) == .journal)
        _ = try JournaldLease.entries(matching: ["SENTINEL_TARGET=\(target)"])

        let root = try CatalogRoot()
        defer { root.remove() }
        let (status, out) = try root.explain(["MESSAGE_ID=\(FindingCode.splitLibcrypto.messageID)", "SENTINEL_TARGET=\(target)"])
        #expect(status == 0, "\(out)")
        #expect(out.contains("consumers of \(target) resolve to 2 libcrypto files"))
        #expect(out.contains("Subject: split-libcrypto (critical) on \(target): new"), "\(out)")
        #expect(out.contains("Why it matters: Two libcrypto (or libssl) files in one process"), "\(out)")
        #expect(out.contains("patchelf --replace-needed"), "\(out)")
        #expect(out.contains("http://localhost/v1/targets/\(target)"), "\(out)")
    }

    @Test("no journald: every alert becomes one stderr-style line, none lost; the same writer reaches journald again after")
    func fallback() throws {
        let lease = try JournaldLease()
        defer { lease.release() }
        let lines = FallbackLines()
        let writer = JournalWriter(fallback: lines.sink)
        let deliveries = try withoutJournald {
            var out = [writer.send(splitAlert("api"))]
            out.append(writer.log(priority: 6, message: "started", messageID: DaemonMessageID.started, fields: ["targets": "3"]))
            for i in 0..<100 {
                out.append(writer.send(Alert(kind: .findingResolved, code: .processDeletedLibrary, target: "svc-\(i)", state: "resolved",
                                             severity: .warning, message: "gone", at: "")))
            }
            return out
        }
        #expect(deliveries.allSatisfy { $0 == .fallback })
        // journald killed, its socket file left behind: refused, so the fallback too.
        let refused = try withoutJournald(staleSocket: true) { writer.send(splitAlert("stale")) }
        #expect(refused == .fallback)
        #expect(lines.all.last?.hasPrefix("crypto-sentinel: crit split-libcrypto stale new: ") == true)
        let got = Array(lines.all.prefix(102))
        try #require(lines.all.count == 103)
        #expect(got[0] == #"crypto-sentinel: crit split-libcrypto api new: consumers of api resolve to 2 libcrypto files [consumer-chain=bin/api\n_ssl.so oddkey=ab path=/opt/product/lib/libcrypto-3a1b2c3d.so.3]"#)
        #expect(got[1] == "crypto-sentinel: info: started [targets=3]")
        #expect(got[2] == "crypto-sentinel: notice process-deleted-library svc-0 resolved: gone")
        #expect(Set(got.dropFirst(2)).count == 100)
        #expect(got.allSatisfy { !$0.contains("\n") })

        // Outside the private namespace the same writer delivers to journald.
        #expect(writer.send(splitAlert("sysd-test-\(UUID().uuidString.lowercased())")) == .journal)
        #expect(lines.all.count == 103)
    }
}
