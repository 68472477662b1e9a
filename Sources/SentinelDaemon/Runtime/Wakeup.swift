import Synchronization

/// A one-slot doorbell between the scheduler and whoever wants a cycle now (POST /v1/scan, the live
/// watcher, a reload, shutdown). Rings while nobody waits are remembered, and many rings make one.
final class Wakeup: Sendable {
    private struct State { var pending = false; var waiter: CheckedContinuation<Void, Never>? }
    private let state = Mutex(State())

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

    var isPending: Bool { state.withLock { $0.pending } }

    /// Waits for a ring or the timeout, whichever comes first; consumes the ring.
    func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Cancellation (the ring came first) must not ring again.
                if (try? await Task.sleep(for: timeout)) != nil { self.ring() }
            }
            group.addTask { await self.next() }
            await group.next()
            group.cancelAll()
        }
    }

    private func next() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow: Bool = state.withLock { s in
                if s.pending { s.pending = false; return true }
                s.waiter = c
                return false
            }
            if resumeNow { c.resume() }
        }
    }
}
