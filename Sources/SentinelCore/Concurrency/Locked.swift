#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value behind a pthread mutex: the lock for every piece of state this package shares across threads.
///
/// Why not `Synchronization.Mutex`: on Linux its contended path is a priority-inheritance futex taken
/// inside the Swift runtime's own (uninstrumented) library, which ThreadSanitizer cannot see, so every
/// contended `withLock` reads as a data race and real races drown among them. glibc's mutex is
/// intercepted by the sanitizers, so under `--sanitize=thread` a report is a real race. The price is a
/// libc call per lock and unlock instead of an inlined compare-and-swap: tens of nanoseconds, against
/// the stat or file read most of these locks guard.
///
/// Same shape as `Mutex.withLock`: the value is only reachable inside the closure, and `sending`
/// keeps non-Sendable values from leaking out of it.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    public init(_ initialValue: consuming sending Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let rc = pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
        value = .allocate(capacity: 1)
        value.initialize(to: initialValue)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    @inlinable
    public func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
        lock()
        defer { unlock() }
        return try body(&pointer.pointee)
    }

    // The pieces `withLock` inlines into client modules (the fields stay private).
    @usableFromInline var pointer: UnsafeMutablePointer<Value> { value }
    @usableFromInline func lock() { pthread_mutex_lock(mutex) }
    @usableFromInline func unlock() { pthread_mutex_unlock(mutex) }
}
