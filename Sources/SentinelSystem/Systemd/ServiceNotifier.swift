import CLibSystemd
import Glibc

/// sd_notify through libsystemd: READY, STATUS, RELOADING, STOPPING and WATCHDOG messages to the
/// service manager. libsystemd reads NOTIFY_SOCKET (a path or an abstract `@name`) at every send, so a
/// notifier made before the environment is known still reaches the right socket; with no NOTIFY_SOCKET
/// every send is a no-op (a daemon run by hand).
public struct ServiceNotifier: Sendable {
    public init() {}

    /// NOTIFY_SOCKET is set: a service manager listens.
    public var isEnabled: Bool {
        guard let value = getenv("NOTIFY_SOCKET") else { return false }
        return value.pointee != 0
    }

    /// Sends the assignments as ONE datagram, lines joined by "\n" (the manager applies a datagram's
    /// fields together, which RELOADING=1 + MONOTONIC_USEC rely on). True when the manager got it.
    @discardableResult
    public func send(_ assignments: [String]) -> Bool {
        // unset_environment = 0: the daemon notifies for its whole life, not once.
        sentinel_sd_notify(0, assignments.joined(separator: "\n")) > 0
    }

    public func ready(status: String) {
        send(["READY=1", "STATUS=" + Self.oneLine(status)])
    }

    public func status(_ line: String) {
        send(["STATUS=" + Self.oneLine(line)])
    }

    /// systemd ≥ 253 (Type=notify-reload) requires MONOTONIC_USEC beside RELOADING=1 to tell this reload
    /// from an older one; older managers ignore the extra field.
    public func reloading() {
        send(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"])
    }

    public func stopping(status: String?) {
        send(["STOPPING=1"] + (status.map { ["STATUS=" + Self.oneLine($0)] } ?? []))
    }

    public func watchdog() {
        send(["WATCHDOG=1"])
    }

    /// Half of WATCHDOG_USEC when the watchdog is on for this process (WATCHDOG_PID unset or ours, as
    /// sd_watchdog_enabled checks), else nil. Pinging at half the timeout leaves room for one late ping.
    public static func watchdogInterval() -> Duration? {
        var usec: UInt64 = 0
        guard sentinel_sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(clamping: usec / 2))
    }

    /// CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC against.
    public static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }

    /// One line: a newline would start a new assignment in the datagram, a NUL would cut the C string.
    static func oneLine(_ text: String) -> String {
        String(text.compactMap { c -> Character? in
            if c == "\0" { return nil }
            return c == "\n" || c == "\r" || c == "\r\n" ? " " : c
        })
    }
}
