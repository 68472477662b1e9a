import Testing
import SentinelCore

@Suite struct TriggerBudgetTests {
    /// A local user starting a process that maps OpenSSL every 2 s drove a cycle at each watcher tick
    /// (15 cycles in 30 s); now a burst of three, then one per 20 s, whatever the rate of changes.
    @Test func changesAtEveryTickStartABoundedNumberOfCycles() {
        var budget = TriggerBudget()
        let started = stride(from: 2.0, through: 30, by: 2).filter { budget.tick(at: $0, changed: true) }
        #expect(started == [2, 4, 6, 22])
        var long = TriggerBudget()
        #expect(stride(from: 2.0, through: 3600, by: 2).filter { long.tick(at: $0, changed: true) }.count <= 3 + 3600 / 20)
    }

    /// A service restart (stop, then start) is acted on at once; nothing is lost while the bucket is
    /// empty: the change waits for the next token.
    @Test func aQuietHostReactsAtOnceAndAPendingChangeIsKept() {
        var budget = TriggerBudget(capacity: 1, refill: 20)
        #expect(budget.tick(at: 0, changed: false) == false)
        #expect(budget.tick(at: 2, changed: true) == true)
        #expect(budget.tick(at: 4, changed: true) == false)
        #expect(budget.tick(at: 6, changed: false) == false)
        #expect(budget.tick(at: 20, changed: false) == false)  // 18 s of refill: not yet a whole token
        #expect(budget.tick(at: 22, changed: false) == true)   // the change seen at 4 s
        #expect(budget.tick(at: 100, changed: false) == false)
    }
}
