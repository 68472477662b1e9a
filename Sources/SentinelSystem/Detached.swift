import Glibc

/// Runs `body` on a new thread of its own (blocking work: a POST child's wait, a cycle), with
/// `stackSize` bytes of stack. Foundation's Thread without Foundation.
public func detached(stackSize: Int = 1 << 20, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setstacksize(&attr, stackSize)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attr, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    // Without a thread the work still runs: here, on the caller's.
    if rc != 0 { Unmanaged<Box>.fromOpaque(box).takeRetainedValue().body() }
}
