/// What `repair` will do to a tree, decided from the scan's model before anything changes. Paths are
/// relative to the tree's root; every rewrite comes before any removal.
public struct RepairPlan: Sendable {
    /// The copy of one OpenSSL library every consumer will share.
    public struct Canonical: Sendable, Hashable {
        public var library: OpenSSLRole
        /// Where it is now, and where it will be (the canonical file name in the same folder).
        public var from: String
        public var path: String
        public var name: String
        public var version: String?
    }
    /// One string rewritten in place in a file's dynamic string table.
    public struct Edit: Sendable, Hashable {
        public var file: String
        public var patch: StringPatch
    }
    /// A file the plan drops: a hashed or identical copy whose consumers now name the canonical one.
    public struct Removal: Sendable, Hashable {
        public var path: String
        public var reason: String
    }
    /// A symlink in the tree that named a renamed or removed copy: it keeps its shape, pointing at the canonical file.
    public struct Relink: Sendable, Hashable {
        public var path: String
        public var target: String
    }
    /// A file the plan needed to change and may not, or one it leaves alone on purpose.
    public struct Note: Sendable, Hashable {
        public var path: String
        public var reason: String
    }

    public var root: String
    public var canonical: [Canonical] = []
    public var edits: [Edit] = []
    public var relinks: [Relink] = []
    public var removals: [Removal] = []
    /// Files the plan needs to change but must not: the plan fails and nothing is written.
    public var refused: [Note] = []
    /// Files never touched (a FIPS module, an integrity MAC), reported so nobody wonders.
    public var untouched: [Note] = []
    /// The variable the service's unit must set when an edit cannot make a consumer reach the
    /// canonical copy by itself ("LD_LIBRARY_PATH=/opt/app/lib"); nil when none is needed.
    public var environmentLine: String?

    public init(root: String) { self.root = root }

    /// The renames the copy applies: the canonical copies that change their file name.
    public var renames: [(from: String, to: String)] { canonical.filter { $0.from != $0.path }.map { ($0.from, $0.path) } }

    public var changesNothing: Bool { edits.isEmpty && removals.isEmpty && relinks.isEmpty && renames.isEmpty }
}

/// What the verification of a planned or staged tree found: empty `problems` is a pass.
public struct RepairVerification: Sendable, Hashable {
    /// What was checked: "plan" (the model of the tree the plan leaves) or "staged" (the written copy, rescanned).
    public var stage: String
    public var tree: String
    public var environment: [String: String]
    /// The file each library resolves to for every consumer, relative to the tree when inside it.
    public var resolved: [String: [String]]
    public var problems: [String]
    /// The product's own smoke test (`--verify-command`), when one ran: its command line, outcome and output tail.
    public var command: CommandResult?

    public struct CommandResult: Sendable, Hashable {
        public var argv: [String]
        public var user: String
        public var passed: Bool
        public var outcome: String
        public var outputTail: String
        public init(argv: [String], user: String, passed: Bool, outcome: String, outputTail: String) {
            self.argv = argv; self.user = user; self.passed = passed; self.outcome = outcome; self.outputTail = outputTail
        }
    }

    public var passed: Bool { problems.isEmpty && (command?.passed ?? true) }

    public init(stage: String, tree: String, environment: [String: String], resolved: [String: [String]], problems: [String]) {
        self.stage = stage; self.tree = tree; self.environment = environment; self.resolved = resolved; self.problems = problems
    }
}
