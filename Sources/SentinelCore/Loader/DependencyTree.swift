/// One ELF's dependency tree as the loader builds it (`crypto-sentinel resolve`), read off a
/// `ProcessLoad`: every DT_NEEDED of every object, how each was found or every path tried, and the
/// OpenSSL identity of each file. An object's own dependencies are listed under the edge that loaded
/// it (the loader's breadth-first order decides which); every other request for it is a leaf.
public struct DependencyTree: Sendable {
    public struct Node: Sendable {
        public var file: LoadedFile
        public var needed: [Edge]
    }

    public struct Edge: Sendable {
        public var name: String
        public var result: EdgeResult
        public var skipped: [String]
        /// The object's own dependencies, where this edge is the first to reach it; nil for a repeat or a miss.
        public var node: Node?
    }

    public var root: Node
    /// Each DT_NEEDED name that resolved to nothing, once, in the order met.
    public var missing: [String]

    public init(main: LoadedFile, load: ProcessLoad) {
        var byConsumer: [String: [(index: Int, edge: LoaderEdge)]] = [:]
        // The edge that loaded each file: its first search; a file only ever reused (the dynamic
        // loader itself) hangs under its first request.
        var searched: [FileIdentity: Int] = [:], requested: [FileIdentity: Int] = [:]
        for (i, edge) in load.edges.enumerated() {
            byConsumer[edge.consumer, default: []].append((i, edge))
            guard case .found(let file, let via, _) = edge.result else { continue }
            if via != .alreadyLoaded, searched[file.identity] == nil { searched[file.identity] = i }
            if requested[file.identity] == nil { requested[file.identity] = i }
        }
        let loading = requested.merging(searched) { _, search in search }
        var expanded: Set<FileIdentity> = [main.identity]
        var missing: [String] = []
        func node(_ file: LoadedFile) -> Node {
            Node(file: file, needed: (byConsumer[file.path] ?? []).map { i, e in
                var edge = Edge(name: e.name, result: e.result, skipped: e.skipped, node: nil)
                switch e.result {
                case .found(let target, _, _):
                    if loading[target.identity] == i, expanded.insert(target.identity).inserted { edge.node = node(target) }
                case .missing:
                    if !missing.contains(e.name) { missing.append(e.name) }
                }
                return edge
            })
        }
        root = node(main)
        self.missing = missing
    }

    /// "libcrypto, OpenSSL 3.0.15" / "static OpenSSL 4.0.1" / nil for a file that is no OpenSSL.
    static func openSSLIdentity(_ object: ELFObject) -> String? {
        guard let role = object.openSSLRole else { return nil }
        let version = object.opensslVersion.map { "OpenSSL \($0)" } ?? "version unknown"
        return role == .staticCopy ? "static \(version)" : "\(role.rawValue), \(version)"
    }

    // MARK: - Text

    /// libtree's shape: the root's path, then one line per DT_NEEDED with the file it resolved to, the
    /// rule that found it in brackets and its OpenSSL identity; a miss lists every path tried under it.
    public func text() -> String {
        var out = TextRenderer.shown(root.file.path) + Self.suffix(root.file) + "\n"
        func walk(_ node: Node, _ prefix: String) {
            for (i, edge) in node.needed.enumerated() {
                let last = i == node.needed.count - 1
                let branch = prefix + (last ? "└── " : "├── "), under = prefix + (last ? "    " : "│   ")
                let name = TextRenderer.shown(edge.name)
                switch edge.result {
                case .found(let file, let via, let owner):
                    let how = via.rawValue + (owner.map { " of \(TextRenderer.shown($0))" } ?? "")
                    // A search that ends in a file already loaded under another name: its dependencies are under that one.
                    let listed = edge.node == nil && via != .alreadyLoaded ? " (listed once)" : ""
                    out += "\(branch)\(name) => \(TextRenderer.shown(file.path)) [\(how)]\(Self.suffix(file))\(listed)\n"
                    out += edge.skipped.map { "\(under)    skipped \(TextRenderer.shown($0))\n" }.joined()
                case .missing(let tried):
                    // `tried` holds the skipped candidates too, in search order.
                    out += "\(branch)\(name) not found\n" + tried.map { "\(under)    tried \(TextRenderer.shown($0))\n" }.joined()
                }
                if let child = edge.node { walk(child, under) }
            }
        }
        walk(root, "")
        return out
    }

    private static func suffix(_ file: LoadedFile) -> String {
        openSSLIdentity(file.object).map { " (\($0))" } ?? ""
    }

    // MARK: - JSON

    /// The document's members: `root` (the file, its `needed` edges, recursively) and `missing`.
    public func json() -> [String: JSONValue] {
        ["root": Self.json(root), "missing": JSONValue(missing)]
    }

    static func json(_ node: Node) -> JSONValue {
        var fields = describe(node.file)
        fields["needed"] = .array(node.needed.map(json))
        return .object(fields)
    }

    static func json(_ edge: Edge) -> JSONValue {
        var fields: [String: JSONValue] = ["name": .string(edge.name)]
        switch edge.result {
        case .found(let file, let via, let owner):
            fields.merge(describe(file)) { a, _ in a }
            fields["found"] = true
            fields["via"] = .string(via.rawValue)
            if let owner { fields["rpath_owner"] = .string(owner) }
            if let node = edge.node { fields["needed"] = .array(node.needed.map(json)) } else { fields["repeat"] = true }
        case .missing(let tried):
            fields["found"] = false
            fields["tried"] = JSONValue(tried)
        }
        if !edge.skipped.isEmpty { fields["skipped"] = JSONValue(edge.skipped) }
        return .object(fields)
    }

    static func describe(_ file: LoadedFile) -> [String: JSONValue] {
        var fields: [String: JSONValue] = ["path": .string(file.path), "device_inode": .string(file.identity.description)]
        if let soname = file.object.soname { fields["soname"] = .string(soname) }
        if let role = file.object.openSSLRole {
            fields["openssl"] = ["role": .string(role.rawValue),
                                 "version": JSONValue(file.object.opensslVersion)]
        }
        return fields
    }
}
