import Glibc
import NIOCore

/// One client connection: parses requests from the raw bytes, answers each with one buffer, and
/// enforces the header and idle timeouts. Pipelined requests are answered in order.
final class APIConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = IOData

    private let server: APIServer
    private let record: ConnectionRecord
    private let refused: Bool
    private var parser: HTTPRequestParser
    private var buffer: ByteBuffer?
    private var deadline = NIODeadline.distantFuture
    private var timer: Scheduled<Void>?
    private var closing = false
    /// A scan's peer check is in flight: later pipelined requests wait so answers keep their order.
    private var waiting = false
    /// The client is not taking its answers: no reads and no requests until they drain.
    private var paused = false
    private var needsFlush = false
    private var peer: PeerCredentials?

    init(server: APIServer, record: ConnectionRecord, refused: Bool) {
        self.server = server
        self.record = record
        self.refused = refused
        self.parser = HTTPRequestParser(limits: server.limits.parser)
    }

    func channelActive(context: ChannelHandlerContext) {
        if refused {
            send(context, .error(503, "too many connections"), head: nil, close: .linger)
            return
        }
        enterIdle(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        process(context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context)
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if paused, context.channel.isWritable {
            paused = false
            process(context)
            flushIfNeeded(context)
            if !paused { try? context.channel.syncOptions?.setOption(.autoRead, value: true) }
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        closing = true
        context.close(promise: nil)
    }

    // MARK: Requests

    private func process(_ context: ChannelHandlerContext) {
        while !closing && !waiting {
            guard let readable = buffer?.readableBytes, readable > 0 else {
                buffer = nil
                if record.phase != .idle { enterIdle(context) }
                return
            }
            guard context.channel.isWritable else {
                pause(context)
                return
            }
            if record.phase != .reading {
                // The header timeout runs from a request's first byte.
                let now = NIODeadline.now()
                record.enter(.reading, at: now)
                setDeadline(context, now + server.limits.headerTimeout)
            }
            let result = buffer!.withUnsafeReadableBytes { parser.parse($0) }
            switch result {
            case .incomplete:
                if buffer!.readerIndex > 0 { buffer!.discardReadBytes() }
                return
            case .failure(let status, let reason):
                send(context, .error(status, reason), head: nil, close: .linger)
                return
            case .request(let head, let consumed):
                buffer!.moveReaderIndex(forwardBy: consumed)
                handle(context, head)
            }
        }
    }

    /// Answers queued past the high water mark: a client that pipelines without reading them is not
    /// read, and its buffered requests wait, until they drain below the low one. Its queue then holds
    /// at most one answer past the mark, however many requests it sends.
    private func pause(_ context: ChannelHandlerContext) {
        paused = true
        try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        // Waiting on the client: the idle timeout applies, and it may be shed first.
        if record.phase != .idle { enterIdle(context) }
    }

    private func handle(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        switch server.router.route(head) {
        case .prepared(let answer):
            write(context, answer, close: .no)
        case .respond(let response):
            send(context, response, head: head, close: head.keepAlive ? .no : .now)
        case .scan:
            if let peer {
                answerScan(context, head, peer: peer)
                return
            }
            guard let provider = context.channel as? SocketOptionProvider else {
                send(context, .error(403, "cannot identify the peer"), head: head, close: head.keepAlive ? .no : .now)
                return
            }
            waiting = true
            record.enter(.busy, at: .now())
            let creds: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
            creds.assumeIsolated().whenComplete { result in
                self.waiting = false
                guard !self.closing else { return }
                guard case .success(let peer) = result else {
                    self.send(context, .error(403, "cannot identify the peer"), head: head, close: head.keepAlive ? .no : .now)
                    self.flushIfNeeded(context)
                    return
                }
                self.peer = peer
                self.answerScan(context, head, peer: peer)
                self.record.enter(.reading, at: .now())
                self.process(context)
                self.flushIfNeeded(context)
            }
        }
    }

    private func answerScan(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, peer: PeerCredentials) {
        let response: APIResponse
        if server.mayRequestScan(peer) {
            response = Router.scanResponse(server.requestScan())
        } else {
            let who = server.scanGroup.map { "root or group \($0)" } ?? "root"
            response = .error(403, "POST /v1/scan is for \(who); peer uid \(peer.uid) gid \(peer.gid) is neither")
        }
        send(context, response, head: head, close: head.keepAlive ? .no : .now)
    }

    // MARK: Responses

    enum Close {
        case no
        /// The client asked (Connection: close): close once the answer is written.
        case now
        /// An error the client may still be sending into: half-close so it reads the answer instead of a
        /// reset, then close when it hangs up or after a second.
        case linger
    }

    /// Head and body in one buffer, one write.
    private func send(_ context: ChannelHandlerContext, _ response: APIResponse, head: HTTPRequestHead?, close: Close) {
        let out = response.rendered(method: head?.method, http10: head?.http10 == true, close: close != .no,
                                    allocator: context.channel.allocator)
        write(context, out, close: close)
    }

    private func write(_ context: ChannelHandlerContext, _ out: ByteBuffer, close: Close) {
        switch close {
        case .no:
            context.write(wrapOutboundOut(.byteBuffer(out)), promise: nil)
            needsFlush = true
        case .now:
            closing = true
            timer?.cancel()
            timer = nil
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(out))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        case .linger:
            closing = true
            timer?.cancel()
            timer = nil
            buffer = nil
            // Shed first if the table fills up meanwhile.
            record.enter(.idle, at: .uptimeNanoseconds(0))
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(out))).assumeIsolated().whenComplete { _ in
                context.close(mode: .output, promise: nil)
                context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { context.close(promise: nil) }
            }
        }
    }

    private func flushIfNeeded(_ context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    // MARK: Timeouts

    private func enterIdle(_ context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        record.enter(.idle, at: now)
        setDeadline(context, now + server.limits.idleTimeout)
    }

    /// One timer per connection, never further out than the header timeout: a new, earlier deadline is
    /// always caught without cancelling and rescheduling on every request.
    private func setDeadline(_ context: ChannelHandlerContext, _ next: NIODeadline) {
        deadline = next
        if timer == nil { schedule(context) }
    }

    private func schedule(_ context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        let at = min(deadline, now + server.limits.headerTimeout)
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: at) {
            self.timer = nil
            guard !self.closing else { return }
            guard NIODeadline.now() >= self.deadline else { self.schedule(context); return }
            switch self.record.phase {
            case .reading:
                let seconds = self.server.limits.headerTimeout.nanoseconds / 1_000_000_000
                self.send(context, .error(408, "request not complete within \(seconds) s"), head: nil, close: .linger)
            case .idle:
                self.closing = true
                context.close(promise: nil)
            case .busy:
                self.deadline = NIODeadline.now() + self.server.limits.headerTimeout
                self.schedule(context)
            }
        }
    }
}
