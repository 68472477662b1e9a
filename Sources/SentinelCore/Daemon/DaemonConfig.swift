/// The daemon's configuration (`crypto-sentinel daemon --config PATH`), parsed from YAML by
/// `ConfigParser`; `config/crypto-sentinel.example.yaml` documents every key.
public struct DaemonConfig: Sendable, Equatable {
    /// Seconds between cycles; default 300 ("5m").
    public var interval: Double
    /// Fraction of the interval, 0...0.5, by which each wait varies at random; default 0.1.
    public var jitter: Double
    /// nil → "<runtime dir>/api.sock".
    public var socket: String?
    /// Group (name or numeric gid) that may POST /v1/scan besides root; also the socket file's group.
    public var socketGroup: String?
    /// Config key; $RUNTIME_DIRECTORY wins.
    public var runtimeDirectory: String?
    /// Config key; $STATE_DIRECTORY wins.
    public var stateDirectory: String?
    /// The metrics in Prometheus text format, rewritten after every cycle (node_exporter's textfile
    /// collector reads it); off when nil.
    public var textfile: String?
    /// Bounded change history kept on disk (entries); default 1000.
    public var historyLimit: Int
    /// Seconds a POST child may run before it is killed; default 10.
    public var postTimeout: Double
    /// With expect_fips, report a host whose kernel is not in FIPS mode (host-fips-disabled); default true.
    public var hostFIPSCheck = true
    /// CMVP validation data (JSON) read at every start and reload; nil = /etc/crypto-sentinel/fips-validations.json
    /// when it exists, else the copy built in.
    public var fipsValidations: String?
    /// The "every process that maps OpenSSL" audit.
    public var discover: Discover
    public var bundles: [Bundle]
    public var services: [Service]
    /// Accepted findings, applied to every cycle's report (Report.apply).
    public var waivers: [Waiver] = []

    public struct Discover: Sendable, Equatable {
        public var enabled: Bool
        public var expectFIPS: Bool
        public var post: Bool
        public init(enabled: Bool = true, expectFIPS: Bool = false, post: Bool = false) {
            self.enabled = enabled; self.expectFIPS = expectFIPS; self.post = post
        }
    }

    /// A frozen tree on disk, audited for linkage (no code executed).
    public struct Bundle: Sendable, Equatable {
        public var name: String
        /// Absolute path of the tree.
        public var root: String
        public var expectFIPS: Bool
        /// The environment the audit resolves under (keys limited to TargetEnvironment.keptKeys).
        public var environment: [String: String]
        public init(name: String, root: String, expectFIPS: Bool = false, environment: [String: String] = [:]) {
            self.name = name; self.root = root; self.expectFIPS = expectFIPS; self.environment = environment
        }
    }

    /// A running service: live inspection of its processes, and the POST under its environment.
    public struct Service: Sendable, Equatable {
        public enum Selector: Sendable, Equatable {
            /// A systemd unit, always with its ".service" suffix.
            case unit(String)
            /// An absolute path of a file holding the main pid.
            case pidFile(String)
            /// An absolute executable path (every process running it).
            case exe(String)
        }
        public var name: String
        /// Exactly one of unit:, pid_file:, exe:.
        public var selector: Selector
        /// Must name a configured bundle.
        public var bundle: String?
        /// Default: the bundle's expect_fips, or false without a bundle.
        public var expectFIPS: Bool
        /// The full environment for the POST when the service is down.
        public var environment: [String: String]
        /// process-env-drift expectations; keys limited to TargetEnvironment.keptKeys ("" = expect unset).
        public var expectEnvironment: [String: String]
        /// Default true.
        public var post: Bool
        /// Optional product POST program + args ([] = none).
        public var postCommand: [String]
        /// User (name or uid) for the POST while the service is down; nil = "nobody".
        public var user: String?
        /// Operations (PostOperations names) the product performs: refused is post-required-refused.
        public var require: [String] = []
        /// Operations that must fail: allowed is post-forbidden-allowed.
        public var forbid: [String] = []

        public init(name: String, selector: Selector, bundle: String? = nil, expectFIPS: Bool = false,
                    environment: [String: String] = [:], expectEnvironment: [String: String] = [:],
                    post: Bool = true, postCommand: [String] = [], user: String? = nil) {
            self.name = name; self.selector = selector; self.bundle = bundle; self.expectFIPS = expectFIPS
            self.environment = environment; self.expectEnvironment = expectEnvironment
            self.post = post; self.postCommand = postCommand; self.user = user
        }

        /// What the live inspection checks the service's processes against.
        public var expectations: ProcessExpectations {
            ProcessExpectations(expectFIPS: expectFIPS, environment: expectEnvironment)
        }
    }

    public init(interval: Double = 300, jitter: Double = 0.1, socket: String? = nil, socketGroup: String? = nil,
                runtimeDirectory: String? = nil, stateDirectory: String? = nil, historyLimit: Int = 1000,
                postTimeout: Double = 10, discover: Discover = Discover(), bundles: [Bundle] = [],
                services: [Service] = []) {
        self.interval = interval; self.jitter = jitter; self.socket = socket; self.socketGroup = socketGroup
        self.runtimeDirectory = runtimeDirectory; self.stateDirectory = stateDirectory
        self.historyLimit = historyLimit; self.postTimeout = postTimeout; self.discover = discover
        self.bundles = bundles; self.services = services
    }

    /// Every YAML key the parser accepts, by section (the example file documents each one).
    public enum Keys {
        public static let top = ["interval", "jitter", "socket", "socket_group", "runtime_directory", "state_directory", "textfile",
                                 "history_limit", "post_timeout", "host_fips_check", "fips_validations", "discover", "bundles", "services",
                                 "waivers"]
        public static let discover = ["enabled", "expect_fips", "post"]
        public static let bundle = ["name", "root", "expect_fips", "environment"]
        /// A service names exactly one of these.
        public static let selectors = ["unit", "pid_file", "exe"]
        public static let service = ["name"] + selectors + ["bundle", "expect_fips", "environment", "expect_environment",
                                                            "post", "post_command", "user", "require", "forbid"]
        public static let waiver = ["code", "target", "path", "reason", "expires"]
    }

    /// With no config file: audit every process on the host that maps OpenSSL, every 5 minutes.
    public static let embeddedDefault = DaemonConfig()

    public static let defaultRuntimeDirectory = "/run/crypto-sentinel"
    public static let defaultStateDirectory = "/var/lib/crypto-sentinel"
    public static let socketFileName = "api.sock"

    /// Parses a whole configuration file. `file` only names it in errors.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> DaemonConfig {
        try ConfigParser(file: file).parse(text)
    }

    /// The same from the file's bytes: invalid UTF-8 is an error at its line and column, not a
    /// silently replaced character.
    public static func parse(bytes: [UInt8], file: String) throws(ConfigError) -> DaemonConfig {
        try ConfigParser(file: file).parse(bytes: bytes)
    }

    /// A `scan --waivers` file (the YAML list `waivers:` takes), checked like the configuration.
    public static func parseWaivers(bytes: [UInt8], file: String) throws(ConfigError) -> [Waiver] {
        try ConfigParser(file: file).parseWaivers(bytes: bytes)
    }

    /// "300", "300s", "5m", "1h", "1h30m", "500ms", "1.5" → seconds; nil when malformed or negative.
    public static func parseDuration(_ text: String) -> Double? {
        try? ConfigParser.duration(text).get()
    }

    /// $RUNTIME_DIRECTORY (first entry of a ':' list) > runtime_directory > "/run/crypto-sentinel".
    public func resolvedRuntimeDirectory(environment: [String: String]) -> String {
        Self.firstEntry(environment["RUNTIME_DIRECTORY"]) ?? runtimeDirectory ?? Self.defaultRuntimeDirectory
    }

    /// $STATE_DIRECTORY (first entry of a ':' list) > state_directory > "/var/lib/crypto-sentinel".
    public func resolvedStateDirectory(environment: [String: String]) -> String {
        Self.firstEntry(environment["STATE_DIRECTORY"]) ?? stateDirectory ?? Self.defaultStateDirectory
    }

    /// socket > "<runtime dir>/api.sock".
    public func resolvedSocketPath(environment: [String: String]) -> String {
        if let socket { return socket }
        let dir = resolvedRuntimeDirectory(environment: environment)
        return (dir.hasSuffix("/") ? dir : dir + "/") + Self.socketFileName
    }

    /// systemd sets a ':'-separated list when the unit names several folders; ours is the first.
    private static func firstEntry(_ value: String?) -> String? {
        guard let first = value?.split(separator: ":", omittingEmptySubsequences: false).first, !first.isEmpty
        else { return nil }
        return String(first)
    }
}

/// A rejected configuration: where, which key, and why, on one line.
public struct ConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int
    public var column: Int
    /// Dotted path, e.g. "services[0].unit"; "" for a YAML syntax error or the whole document.
    public var key: String
    public var message: String

    public init(file: String, line: Int, column: Int, key: String, message: String) {
        self.file = file; self.line = line; self.column = column; self.key = key; self.message = message
    }

    /// "FILE:LINE:COL: KEY: MESSAGE" (no "KEY: " when there is no key); always one line, since it
    /// goes to the journal, STATUS= and stderr.
    public var description: String {
        let text = key.isEmpty ? message : "\(key): \(message)"
        return "\(file):\(line):\(column): " + String(text.map { $0.isNewline ? " " : $0 })
    }
}
