/// How many cycles the /proc watcher may start: any local user can start and stop processes that map
/// OpenSSL, and each would otherwise cost a whole cycle (every POST included). A token bucket: a
/// burst of `capacity` reactions at once (a service restart is a stop and a start), then one per
/// `refill`. A change seen while the bucket is empty is kept and acted on when a token comes back,
/// so the last change is never lost, only later. Times are seconds on a monotonic clock.
public struct TriggerBudget: Sendable {
    public let capacity: Int
    public let refill: Double
    /// Credit in seconds (a token is `refill` seconds): sums of tick intervals stay exact.
    private var credit: Double
    private var updated: Double?
    private var pending = false

    public init(capacity: Int = 3, refill: Double = 20) {
        self.capacity = capacity; self.refill = refill; self.credit = Double(capacity) * refill
    }

    /// A tick at `now`; `changed`: the watcher saw a change. True when a cycle should start now.
    public mutating func tick(at now: Double, changed: Bool) -> Bool {
        if let updated { credit = min(Double(capacity) * refill, credit + max(0, now - updated)) }
        updated = now
        pending = pending || changed
        guard pending, credit >= refill else { return false }
        credit -= refill
        pending = false
        return true
    }
}
