import NIOCore
import SentinelCore
import Synchronization

/// One client connection as the admission control sees it. The phase and its start time are atomics
/// so the connection's event loop updates them per request without taking the table's lock.
final class ConnectionRecord: Sendable {
    enum Phase: Int { case idle = 0, reading = 1, busy = 2 }
    let channel: Channel
    private let phaseValue = Atomic<Int>(Phase.idle.rawValue)
    private let sinceValue = Atomic<UInt64>(0)

    init(channel: Channel) {
        self.channel = channel
        sinceValue.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed)
    }

    var phase: Phase { Phase(rawValue: phaseValue.load(ordering: .relaxed)) ?? .busy }
    var since: UInt64 { sinceValue.load(ordering: .relaxed) }

    func enter(_ phase: Phase, at now: NIODeadline) {
        phaseValue.store(phase.rawValue, ordering: .relaxed)
        sinceValue.store(now.uptimeNanoseconds, ordering: .relaxed)
    }
}

/// The open connections, bounded: a new client may shed the oldest idle or slow one.
final class ConnectionTable: Sendable {
    enum Admission { case admitted(shed: ConnectionRecord?), refused }
    private let records = Locked<[ObjectIdentifier: ConnectionRecord]>([:])

    var count: Int { records.withLock { $0.count } }
    func all() -> [ConnectionRecord] { records.withLock { Array($0.values) } }

    func admit(_ record: ConnectionRecord, limit: Int) -> Admission {
        records.withLock { table in
            var shed: ConnectionRecord?
            if table.count >= limit {
                // Oldest first among connections not in the middle of being answered.
                shed = table.values.filter { $0.phase != .busy }.min { $0.since < $1.since }
                guard let victim = shed else { return .refused }
                table[ObjectIdentifier(victim)] = nil
            }
            table[ObjectIdentifier(record)] = record
            return .admitted(shed: shed)
        }
    }

    func remove(_ record: ConnectionRecord) {
        _ = records.withLock { $0.removeValue(forKey: ObjectIdentifier(record)) }
    }
}
