import Dispatch
import SentinelCore

/// A one-slot doorbell between the scheduler and whoever wants a cycle now (POST /v1/scan, the live
/// watcher, a reload, shutdown). Rings while nobody waits are remembered, and many rings make one.
///
/// The timeout is one reusable dispatch timer, rescheduled per wait, not a Task.sleep cancelled by each
/// ring: a cancelled sleep's memory is kept until its deadline (swiftlang/swift#60441), so with a 1 h
/// interval and frequent scan requests the daemon grew by ~700 bytes per ring.
final class Wakeup: Sendable {
    private struct State { var pending = false; var waiter: CheckedContinuation<Void, Never>? }
    private let state = Locked(State())
    /// Dispatch sources may be rescheduled from any thread; the type is just not marked Sendable.
    nonisolated(unsafe) private let timer: any DispatchSourceTimer

    init() {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global())
        timer.schedule(deadline: .distantFuture)
        // The handler before activate(): libdispatch logs a "DEPRECATED USE" line (to the journal, through
        // syslog) for a source activated without one.
        timer.setEventHandler { [weak self] in self?.ring() }
        timer.activate()
    }

    deinit { timer.cancel() }

    /// Returns true when this ring was not already pending.
    @discardableResult func ring() -> Bool {
        let (waiter, fresh): (CheckedContinuation<Void, Never>?, Bool) = state.withLock { s in
            if let w = s.waiter { s.waiter = nil; return (w, true) }
            defer { s.pending = true }
            return (nil, !s.pending)
        }
        waiter?.resume()
        return fresh
    }

    /// Waits for a ring or the timeout, whichever comes first; consumes the ring.
    func wait(timeout: Duration) async {
        let c = timeout.components
        timer.schedule(deadline: .now() + .nanoseconds(Int(min(c.seconds, 86_400 * 365)) * 1_000_000_000 + Int(c.attoseconds / 1_000_000_000)))
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow: Bool = state.withLock { s in
                if s.pending { s.pending = false; return true }
                s.waiter = c
                return false
            }
            if resumeNow { c.resume() }
        }
        // The timer may still fire for this wait; a stray ring only makes the next cycle come early.
        timer.schedule(deadline: .distantFuture)
    }
}
