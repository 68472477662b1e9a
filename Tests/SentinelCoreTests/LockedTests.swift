import Dispatch
import SentinelCore
import Testing

@Suite struct LockedTests {
    final class Token: Sendable {}
    struct Refused: Error, Equatable {}

    /// Read-modify-write from every core at once loses no update (a lock that let two in would).
    @Test func concurrentUpdatesAreAllKept() {
        let counts = Locked<[Int: Int]>([:])
        DispatchQueue.concurrentPerform(iterations: 8) { w in
            for i in 0..<5_000 { counts.withLock { $0[i % 16, default: 0] += 1 } }
        }
        let total = counts.withLock { $0.values.reduce(0, +) }
        #expect(total == 40_000)
        #expect(counts.withLock { $0.count } == 16)
    }

    /// A throwing body leaves the value as it changed it and releases the lock (the next call gets in).
    @Test func aThrowingBodyUnlocks() {
        let value = Locked(0)
        #expect(throws: Refused.self) { try value.withLock { (v: inout Int) throws(Refused) in v = 7; throw Refused() } }
        #expect(value.withLock { $0 } == 7)
    }

    /// The value is released with the lock (no leak of what it holds).
    @Test func theValueGoesWithTheLock() {
        weak var weakToken: Token?
        do {
            let token = Token()
            weakToken = token
            let box = Locked<Token?>(token)
            #expect(box.withLock { $0 } === token)
        }
        #expect(weakToken == nil)
    }
}
