import Foundation

/// Evaluates `body` every `every` seconds until it returns a value, or nil once `seconds` have passed:
/// a wait that ends on the event, with a deadline generous enough for a loaded machine.
public func poll<T>(seconds: Double, every: Double = 0.25, _ body: () throws -> T?) rethrows -> T? {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        if let value = try body() { return value }
        if Date() >= deadline { return nil }
        usleep(useconds_t(every * 1_000_000))
    }
}
