import Foundation
import Testing
import SentinelCore
import SentinelTestSupport

@Suite("daemon config")
struct DaemonConfigTests {
    static let examplePath = FixtureScripts.packageRoot + "/config/crypto-sentinel.example.yaml"

    static func example() throws -> String { try String(contentsOfFile: examplePath, encoding: .utf8) }

    // MARK: - The shipped example and the embedded default

    @Test("the shipped example parses to exactly the documented values")
    func exampleParses() throws {
        let config = try DaemonConfig.parse(try Self.example(), file: Self.examplePath)
        let modules = "/opt/product/lib/ossl-modules", conf = "/opt/product/etc/openssl-fips.cnf"
        var expected = DaemonConfig(
            interval: 300, jitter: 0.1, socket: nil, socketGroup: nil, runtimeDirectory: nil, stateDirectory: nil,
            historyLimit: 1000, postTimeout: 10,
            discover: .init(enabled: false, expectFIPS: false, post: false),
            bundles: [.init(name: "product", root: "/opt/product", expectFIPS: true,
                            environment: ["OPENSSL_MODULES": modules])],
            services: [
                .init(name: "product-api", selector: .unit("product-api.service"), bundle: "product", expectFIPS: true,
                      environment: ["OPENSSL_CONF": conf, "OPENSSL_MODULES": modules, "PATH": "/usr/bin:/bin"],
                      expectEnvironment: ["OPENSSL_CONF": conf, "LD_PRELOAD": ""],
                      post: true, postCommand: ["/opt/product/bin/fips-post", "--quick"], user: "product"),
                .init(name: "product-worker", selector: .pidFile("/run/product-worker.pid"), bundle: "product",
                      expectFIPS: true, post: false),
                .init(name: "legacy-tool", selector: .exe("/opt/legacy/bin/tool"), expectFIPS: false),
            ])
        expected.fipsValidations = "/etc/crypto-sentinel/fips-validations.json"
        expected.services[0].require = ["x509-sign-sha256", "aes-256-gcm", "tls1.2-prf"]
        expected.services[0].forbid = ["md5", "rsa1024-sign-sha256"]
        let line = try #require(try Self.example().split(separator: "\n", omittingEmptySubsequences: false)
            .firstIndex { $0.hasPrefix("  - code: mangled-openssl-name") }) + 1
        expected.waivers = [Waiver(code: .mangledOpenSSLName, target: "product", path: "lib/libcrypto-27e744a7.so.3",
                                   reason: "vendor fix due in 4.2", expires: "2027-01-31", source: "\(Self.examplePath):\(line)")]
        #expect(config == expected)
        #expect(config.services[0].expectations == ProcessExpectations(expectFIPS: true, environment: ["OPENSSL_CONF": conf, "LD_PRELOAD": ""]))
    }

    @Test("the example documents every key the parser knows, each with a comment")
    func exampleDocumentsEveryKey() throws {
        let lines = try Self.example().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        /// "KEY:" as a whole word (so "environment:" is not found inside "expect_environment:").
        func mentions(_ line: String, _ key: String) -> Bool {
            var rest = line[...]
            while let r = rest.range(of: key + ":") {
                let before = r.lowerBound == line.startIndex ? nil : line[line.index(before: r.lowerBound)]
                if before.map({ !($0.isLetter || $0 == "_") }) ?? true { return true }
                rest = rest[r.upperBound...]
            }
            return false
        }
        /// Mentioned on a line that is or has a comment, or followed by a comment line.
        func documented(_ key: String, in section: ArraySlice<String>) -> Bool {
            section.indices.contains { i in
                let next = i + 1 < lines.count ? lines[i + 1].trimmingCharacters(in: .whitespaces) : ""
                return mentions(lines[i], key) && (lines[i].contains("#") || next.hasPrefix("#"))
            }
        }
        // Top-level keys start a line, active or as "# key:".
        for key in DaemonConfig.Keys.top {
            #expect(lines.contains { $0.hasPrefix("\(key):") || $0.hasPrefix("# \(key):") }, "top-level key \(key) is not in the example")
            #expect(documented(key, in: lines[...]), "\(key) has no comment")
        }
        let sections: [(String, [String])] = [("discover", DaemonConfig.Keys.discover), ("bundles", DaemonConfig.Keys.bundle),
                                              ("services", DaemonConfig.Keys.service), ("waivers", DaemonConfig.Keys.waiver)]
        for (section, keys) in sections {
            let start = try #require(lines.firstIndex { $0.hasPrefix("\(section):") })
            let body = lines[(start + 1)...].prefix { $0.isEmpty || $0.hasPrefix(" ") }
            for key in keys {
                #expect(documented(key, in: body), "\(section).\(key) is not documented in the example")
            }
        }
    }

    @Test("the embedded default: discover every OpenSSL process every 5 minutes, nothing else")
    func embeddedDefault() {
        let d = DaemonConfig.embeddedDefault
        #expect(d.interval == 300)
        #expect(d.jitter == 0.1)
        #expect(d.discover == .init(enabled: true, expectFIPS: false, post: false))
        #expect(d.bundles.isEmpty && d.services.isEmpty)
        #expect(d.socket == nil && d.socketGroup == nil && d.runtimeDirectory == nil && d.stateDirectory == nil)
        #expect(d.historyLimit == 1000)
        #expect(d.postTimeout == 10)
        #expect(d.resolvedSocketPath(environment: [:]) == "/run/crypto-sentinel/api.sock")
        #expect(d.resolvedStateDirectory(environment: [:]) == "/var/lib/crypto-sentinel")
    }

    @Test("a file with only settings keeps the embedded default's targets; a service turns discover off unless asked")
    func discoverDefault() throws {
        #expect(try DaemonConfig.parse("interval: 1m\n", file: "f") == DaemonConfig(interval: 60))
        #expect(try DaemonConfig.parse("services: []\nbundles: []\n", file: "f").discover.enabled)
        let withService = try DaemonConfig.parse("services:\n  - name: a\n    unit: a\n", file: "f")
        #expect(!withService.discover.enabled)
        let withBoth = try DaemonConfig.parse("discover: {enabled: true, post: true}\nbundles: [{name: b, root: /b}]\n", file: "f")
        #expect(withBoth.discover == .init(enabled: true, expectFIPS: false, post: true))
        let off = try DaemonConfig.parse("discover:\n  enabled: no\n", file: "f")
        #expect(!off.discover.enabled && off.bundles.isEmpty)
    }

    // MARK: - Values

    @Test("durations: bare seconds, units, compounds; malformed and negative ones are nil")
    func durations() {
        let good: [(String, Double)] = [("300", 300), ("300s", 300), ("5m", 300), ("1h", 3600), ("1h30m", 5400),
                                        ("500ms", 0.5), ("1.5", 1.5), ("2.5m", 150), ("1d", 86_400), ("1m30s", 90),
                                        ("1s500ms", 1.5), ("0", 0)]
        for (text, seconds) in good { #expect(DaemonConfig.parseDuration(text) == seconds, "\(text)") }
        for bad in ["", "-5m", "m", "5x", "30m1h", "1h1h", "1h30", "5 m", ".5s", "5.s", "1e3", "0x10", "5:00", "+5m"] {
            #expect(DaemonConfig.parseDuration(bad) == nil, "\(bad)")
        }
    }

    @Test("values as written: numbers for interval and timeout, units in quotes, durations in the config")
    func valuesAsWritten() throws {
        let c = try DaemonConfig.parse("""
            interval: 90
            post_timeout: "500ms"
            host_fips_check: false
            jitter: 0
            history_limit: 5
            socket: /tmp/s.sock
            socket_group: 1001
            runtime_directory: /run/x
            state_directory: /var/lib/x
            services:
              - name: svc@1:a.b_c-d
                unit: "app@1"
                user: 0
                post_command: []
                environment: {N: 2024, EMPTY: "", YES_WORD: yes}
                expect_environment: {OPENSSL_MODULES: , SSL_CERT_DIR: /etc/ssl/certs}
            """, file: "f")
        #expect(c.interval == 90 && c.postTimeout == 0.5 && c.jitter == 0 && c.historyLimit == 5 && !c.hostFIPSCheck)
        #expect(try DaemonConfig.parse("interval: 90\n", file: "f").hostFIPSCheck)
        #expect(c.socket == "/tmp/s.sock" && c.socketGroup == "1001")
        let s = c.services[0]
        #expect(s.name == "svc@1:a.b_c-d")
        #expect(s.selector == .unit("app@1.service"))
        #expect(s.user == "0" && s.postCommand.isEmpty && s.post && !s.expectFIPS && s.bundle == nil)
        // Scalars are kept as written: YAML 1.1 would read `yes` as a bool, an env value is text.
        #expect(s.environment == ["N": "2024", "EMPTY": "", "YES_WORD": "yes"])
        #expect(s.expectEnvironment == ["OPENSSL_MODULES": "", "SSL_CERT_DIR": "/etc/ssl/certs"])
    }

    @Test("runtime, state and socket folders: systemd's variables win, then the keys, then the defaults")
    func resolvedFolders() throws {
        let keyed = try DaemonConfig.parse("runtime_directory: /run/keyed\nstate_directory: /var/lib/keyed\n", file: "f")
        #expect(keyed.resolvedRuntimeDirectory(environment: [:]) == "/run/keyed")
        #expect(keyed.resolvedStateDirectory(environment: [:]) == "/var/lib/keyed")
        #expect(keyed.resolvedSocketPath(environment: [:]) == "/run/keyed/api.sock")
        let env = ["RUNTIME_DIRECTORY": "/run/crypto-sentinel:/run/other", "STATE_DIRECTORY": "/var/lib/cs"]
        #expect(keyed.resolvedRuntimeDirectory(environment: env) == "/run/crypto-sentinel")
        #expect(keyed.resolvedStateDirectory(environment: env) == "/var/lib/cs")
        #expect(keyed.resolvedSocketPath(environment: env) == "/run/crypto-sentinel/api.sock")
        // An empty variable is no folder.
        #expect(keyed.resolvedRuntimeDirectory(environment: ["RUNTIME_DIRECTORY": ""]) == "/run/keyed")
        #expect(DaemonConfig().resolvedRuntimeDirectory(environment: [:]) == "/run/crypto-sentinel")
        let socket = try DaemonConfig.parse("socket: /tmp/x/api.sock\n", file: "f")
        #expect(socket.resolvedSocketPath(environment: env) == "/tmp/x/api.sock")
    }

    // MARK: - Rejections: exact line and key

    struct Rejection: CustomTestStringConvertible, Sendable {
        var label: String
        var yaml: String
        var line: Int
        var column: Int?
        var key: String
        var says: String
        var testDescription: String { label }
        init(_ label: String, _ yaml: String, line: Int, column: Int? = nil, key: String, says: String) {
            self.label = label; self.yaml = yaml; self.line = line; self.column = column; self.key = key; self.says = says
        }
    }

    static let service = "services:\n  - name: api\n    unit: api\n"
    static let waiver = "waivers:\n  - code: mangled-openssl-name\n    target: product\n    reason: vendor fix\n    expires: 2027-01-31\n"

    static let rejections: [Rejection] = [
        // Unknown keys, at every level, with a suggestion.
        .init("unknown top-level key", "interval: 5m\nintervall: 6m\n", line: 2, column: 1, key: "intervall", says: "unknown key; did you mean interval?"),
        .init("camelCase key", "historyLimit: 5\n", line: 1, key: "historyLimit", says: "did you mean history_limit?"),
        .init("unknown discover key", "discover:\n  enabled: true\n  expect-fips: true\n", line: 3, column: 3, key: "discover.expect-fips", says: "did you mean expect_fips?"),
        .init("unknown bundle key", "bundles:\n  - name: b\n    root: /b\n    roots: /c\n", line: 4, column: 5, key: "bundles[0].roots", says: "unknown key"),
        .init("unknown service key", service + "    environ: {}\n", line: 4, column: 5, key: "services[0].environ", says: "unknown key"),
        .init("variable given twice: `yes` (a YAML 1.1 bool) and \"yes\"", service + "    environment:\n      yes: 1\n      \"yes\": 2\n", line: 6, column: 7, key: "services[0].environment.yes", says: "given twice"),
        .init("duplicate key (YAML)", "interval: 5m\njitter: 0.1\ninterval: 6m\n", line: 1, key: "interval", says: "more than once"),
        .init("merge keys are unknown keys", "jitter: 0.2\n<<: {interval: 5m}\n", line: 2, key: "\"<<\"", says: "unknown key"),
        // Wrong types.
        .init("jitter as text", "jitter: fast\n", line: 1, column: 9, key: "jitter", says: "expected a fraction of the interval from 0 to 0.5"),
        .init("quoted number", "history_limit: \"10\"\n", line: 1, key: "history_limit", says: "expected a whole number, got \"10\""),
        .init("fractional history", "history_limit: 2.5\n", line: 1, key: "history_limit", says: "expected a whole number"),
        .init("quoted bool", "discover:\n  post: \"yes\"\n", line: 2, column: 9, key: "discover.post", says: "expected true or false"),
        .init("bool as a number", service + "    post: 1\n", line: 4, key: "services[0].post", says: "expected true or false, got 1"),
        .init("bundles not a list", "bundles: product\n", line: 1, key: "bundles", says: "expected a list"),
        .init("services left empty", "services:\n", line: 1, key: "services", says: "or [] for none), got no value"),
        .init("discover not a mapping", "discover: true\n", line: 1, key: "discover", says: "expected a mapping"),
        .init("a list item that is not a mapping", "services:\n  - api\n", line: 2, column: 5, key: "services[0]", says: "expected a mapping"),
        .init("environment as a list", "bundles:\n  - name: b\n    root: /b\n    environment: [OPENSSL_CONF]\n", line: 4, key: "bundles[0].environment", says: "expected a mapping of VARIABLE: value"),
        .init("environment value missing", service + "    environment:\n      OPENSSL_CONF:\n", line: 5, key: "services[0].environment.OPENSSL_CONF", says: "has no value"),
        .init("environment value a list", service + "    environment: {A: [1]}\n", line: 4, key: "services[0].environment.A", says: "expected a single value, got a list"),
        .init("bad variable name", service + "    environment: {\"A-B\": x}\n", line: 4, key: "services[0].environment.A-B", says: "is not an environment variable name"),
        .init("post_command as a string", service + "    post_command: /opt/p/bin/post --quick\n", line: 4, key: "services[0].post_command", says: "expected a list"),
        .init("interval as a list", "interval: [5m]\n", line: 1, key: "interval", says: "expected a single value, got a list"),
        .init("NUL in a path", "socket: \"/run/a\\0b\"\n", line: 1, key: "socket", says: "NUL"),
        // Bad values.
        .init("negative interval", "interval: -5m\n", line: 1, column: 11, key: "interval", says: "must be positive"),
        .init("zero interval", "jitter: 0.2\ninterval: 0\n", line: 2, key: "interval", says: "must be longer than 0"),
        .init("interval over 30 days", "interval: 31d\n", line: 1, key: "interval", says: "at most 30 days"),
        .init("interval unit unknown", "interval: 5min\n", line: 1, key: "interval", says: "unknown unit \"min\""),
        .init("interval units out of order", "interval: 30m1h\n", line: 1, key: "interval", says: "largest to smallest"),
        .init("post_timeout malformed", "post_timeout: soon\n", line: 1, key: "post_timeout", says: "expected a duration such as 300, 300s, 5m"),
        .init("post_timeout over an hour", "post_timeout: 2h\n", line: 1, key: "post_timeout", says: "at most 1 hour"),
        .init("jitter above 0.5", "jitter: 0.6\n", line: 1, key: "jitter", says: "must be between 0 and 0.5 (a fraction of the interval; 0.1 = 10%), got 0.6"),
        .init("negative jitter", "jitter: -0.1\n", line: 1, key: "jitter", says: "must be between 0 and 0.5"),
        .init("jitter infinite", "jitter: .inf\n", line: 1, key: "jitter", says: "expected a fraction"),
        .init("history_limit 0", "history_limit: 0\n", line: 1, key: "history_limit", says: "between 1 and 1000000"),
        .init("socket_group with a space", "socket_group: sentinel ops\n", line: 1, key: "socket_group", says: "expected a group name or a numeric id"),
        .init("gid out of range", "socket_group: 4294967295\n", line: 1, key: "socket_group", says: "not a valid group id"),
        .init("user with a slash", service + "    user: ../root\n", line: 4, key: "services[0].user", says: "expected a user name or a numeric id"),
        .init("socket path too long", "socket: /" + String(repeating: "s", count: 107) + "\n", line: 1, key: "socket", says: "at most 107 bytes"),
        .init("runtime_directory too long for the socket", "runtime_directory: /" + String(repeating: "r", count: 100) + "\n", line: 1, key: "runtime_directory", says: "set socket: to a shorter path"),
        // Names.
        .init("duplicate service names", service + "  - name: api\n    exe: /bin/api\n", line: 4, column: 11, key: "services[1].name", says: "duplicate name \"api\": services[0] already uses it (line 2)"),
        .init("service named like a bundle", "bundles:\n  - name: api\n    root: /b\n" + service, line: 5, key: "services[0].name", says: "bundles[0] already uses it"),
        .init("name with a slash", "bundles:\n  - name: a/b\n    root: /b\n", line: 2, key: "bundles[0].name", says: "is not a usable name"),
        .init("name with a space", "bundles:\n  - name: a b\n    root: /b\n", line: 2, key: "bundles[0].name", says: "is not a usable name"),
        .init("name ..", "bundles:\n  - name: ..\n    root: /b\n", line: 2, key: "bundles[0].name", says: "cannot be a name in a URL path"),
        .init("empty name", "bundles:\n  - name: \"\"\n    root: /b\n", line: 2, key: "bundles[0].name", says: "is not a usable name"),
        .init("missing name", "bundles:\n  - root: /b\n", line: 2, column: 5, key: "bundles[0].name", says: "missing"),
        .init("missing root", "bundles:\n  - name: b\n", line: 2, column: 5, key: "bundles[0].root", says: "missing"),
        // Selectors.
        .init("no selector", "services:\n  - name: api\n    bundle: b\n", line: 2, column: 5, key: "services[0]", says: "needs one of unit:, pid_file: or exe:"),
        .init("two selectors", "services:\n  - name: api\n    exe: /bin/api\n    unit: api\n", line: 4, column: 5, key: "services[0].unit", says: "give only one of unit:, pid_file:, exe: (exe: is already set at line 3)"),
        .init("a .scope unit", "services:\n  - name: api\n    unit: session-1.scope\n", line: 3, key: "services[0].unit", says: "only .service units are matched"),
        .init("a template unit", "services:\n  - name: api\n    unit: getty@\n", line: 3, key: "services[0].unit", says: "is a template"),
        .init("a unit with a slash", "services:\n  - name: api\n    unit: a/b.service\n", line: 3, key: "services[0].unit", says: "is not a systemd unit name"),
        .init("a missing bundle", "bundles:\n  - name: product\n    root: /opt/p\n" + service + "    bundle: prodcut\n", line: 7, column: 13, key: "services[0].bundle", says: "no bundle named \"prodcut\" (configured: product)"),
        .init("a bundle when none exist", service + "    bundle: product\n", line: 4, key: "services[0].bundle", says: "no bundles are configured"),
        // Relative paths.
        .init("relative root", "bundles:\n  - name: b\n    root: opt/product\n", line: 3, column: 11, key: "bundles[0].root", says: "must be an absolute path (starting with /), got \"opt/product\""),
        .init("relative pid_file", "services:\n  - name: a\n    pid_file: run/a.pid\n", line: 3, key: "services[0].pid_file", says: "absolute path"),
        .init("relative exe", "services:\n  - name: a\n    exe: ./api\n", line: 3, key: "services[0].exe", says: "absolute path"),
        .init("relative socket", "socket: api.sock\n", line: 1, key: "socket", says: "absolute path"),
        .init("relative state_directory", "state_directory: state\n", line: 1, key: "state_directory", says: "absolute path"),
        .init("relative textfile", "textfile: metrics.prom\n", line: 1, key: "textfile", says: "absolute path"),
        .init("textfile not .prom", "textfile: /var/lib/node-exporter/metrics.txt\n", line: 1, key: "textfile", says: "must end in .prom"),
        .init("relative post_command", service + "    post_command:\n      - fips-post\n      - --quick\n", line: 5, column: 9, key: "services[0].post_command[0]", says: "absolute path"),
        .init("post_command argument null", service + "    post_command: [/p, ~]\n", line: 4, key: "services[0].post_command[1]", says: "has no value"),
        // Environment key limits.
        .init("expect_environment key not captured", service + "    expect_environment:\n      OPENSSL_CONF: /etc/ssl/openssl.cnf\n      PATH: /bin\n", line: 6, column: 7, key: "services[0].expect_environment.PATH", says: "are captured from a process, so PATH cannot be checked"),
        .init("bundle environment key that changes nothing", "bundles:\n  - name: b\n    root: /b\n    environment:\n      HOME: /root\n", line: 5, key: "bundles[0].environment.HOME", says: "the bundle audit only uses OPENSSL_CONF"),
        // Waivers.
        .init("waiver code misspelt", waiver.replacing("mangled-openssl-name", with: "mangled-opensl-name"), line: 2, column: 11, key: "waivers[0].code", says: "\"mangled-opensl-name\" is not a finding code; did you mean mangled-openssl-name?"),
        .init("waiver without a reason", waiver.replacing("    reason: vendor fix\n", with: ""), line: 2, column: 5, key: "waivers[0].reason", says: "missing"),
        .init("waiver with a blank reason", waiver.replacing("vendor fix", with: "\"  \""), line: 4, key: "waivers[0].reason", says: "is empty"),
        .init("waiver without a target", waiver.replacing("    target: product\n", with: ""), line: 2, key: "waivers[0].target", says: "or \"*\" for every target"),
        .init("waiver without expires", waiver.replacing("    expires: 2027-01-31\n", with: ""), line: 2, key: "waivers[0].expires", says: "missing (the last day it holds, YYYY-MM-DD)"),
        .init("waiver expiring on 31 February", waiver.replacing("2027-01-31", with: "2027-02-31"), line: 5, column: 14, key: "waivers[0].expires", says: "expected a date YYYY-MM-DD"),
        .init("waiver expiring in words", waiver.replacing("2027-01-31", with: "next year"), line: 5, key: "waivers[0].expires", says: "got \"next year\""),
        .init("waiver with an unknown key", waiver + "    owner: ops\n", line: 6, key: "waivers[0].owner", says: "unknown key"),
        .init("waivers not a list", "waivers: {code: split-libcrypto}\n", line: 1, key: "waivers", says: "expected a list of waivers"),
        // The document itself.
        .init("empty file", "", line: 1, column: 1, key: "", says: "the file is empty"),
        .init("only comments", "# nothing here\n\n", line: 1, key: "", says: "the file is empty"),
        .init("a list document", "- interval: 5m\n", line: 1, key: "", says: "expected a mapping of settings such as `interval: 5m`, got a list"),
        .init("a scalar document", "hello\n", line: 1, key: "", says: "got the text \"hello\""),
        .init("two documents", "interval: 5m\n---\ninterval: 6m\n", line: 2, key: "", says: "YAML syntax error: but found another document"),
        .init("syntax: tab indentation", "services:\n\t- name: a\n", line: 2, key: "", says: "YAML syntax error"),
        .init("syntax: unclosed flow list", "interval: 5m\npost_timeout: 5s\nbundles: [{name: b, root: /b}\n", line: 4, key: "", says: "YAML syntax error"),
        .init("syntax: bad indentation", "discover:\n  enabled: true\n post: true\n", line: 3, key: "", says: "YAML syntax error"),
        // Keys that are not words: rejected with what they are, at their line and column.
        .init("an explicit key", "interval: 5m\n? jitter\n: 0.2\n", line: 2, column: 1, key: "", says: "explicit keys (`? KEY`) are not supported"),
        .init("an alias as a key", "x: &k interval\n*k : 5m\n", line: 2, column: 1, key: "", says: "an alias cannot be a key"),
        .init("an alias as a key in a flow mapping", "discover: {enabled: true, *k}\n", line: 1, column: 27, key: "", says: "an alias cannot be a key"),
        .init("a list as a key", "discover:\n  [a, b]: true\n", line: 2, column: 8, key: "", says: "a list or mapping cannot be a key"),
        .init("a mapping as a key in a flow mapping", "discover: {{a: 1}: 2}\n", line: 1, column: 12, key: "", says: "a list or mapping cannot be a key"),
        .init("a complex key after a quote that only continues a plain scalar", service + "    environment:\n      D: plain\n        'continued\n? x\n: 1\n", line: 7, column: 1, key: "", says: "explicit keys"),
        .init("a file over 1 MiB", "interval: 5m\n" + String(repeating: "# padding\n", count: 110_000), line: 1, key: "", says: "too large for a configuration"),
        .init("an undefined alias", "interval: *nope\n", line: 1, key: "", says: "found undefined alias"),
        .init("a control character", "interval: 5m\nsocket: /a\u{7}\n", line: 2, column: 11, key: "", says: "unreadable text"),
    ]

    @Test("bad input is rejected with its file, line and key", arguments: rejections)
    func rejected(_ r: Rejection) {
        do {
            let config = try DaemonConfig.parse(r.yaml, file: "/etc/crypto-sentinel/config.yaml")
            Issue.record("accepted: \(config)")
        } catch {
            #expect(error.file == "/etc/crypto-sentinel/config.yaml")
            #expect(error.line == r.line, "\(error)")
            if let column = r.column { #expect(error.column == column, "\(error)") }
            #expect(error.key == r.key, "\(error)")
            #expect(error.message.contains(r.says), "\(error)")
            let text = error.description
            #expect(!text.contains("\n"), "not one line: \(text)")
            #expect(text.hasPrefix("/etc/crypto-sentinel/config.yaml:\(error.line):\(error.column): " + (r.key.isEmpty ? "" : "\(r.key): ")))
        }
    }

    @Test("a scan --waivers file: the same list, checked the same way, with each waiver's file and line")
    func waiverFile() throws {
        let list = Self.waiver.split(separator: "\n").dropFirst().map { $0.dropFirst(2) }.joined(separator: "\n")
            + "\n- code: orphan-openssl-copy\n  target: \"*\"\n  path: 254:1:1234\n  reason: loaded by path\n  expires: 2028-02-29\n"
        let waivers = try DaemonConfig.parseWaivers(bytes: Array(list.utf8), file: "w.yaml")
        #expect(waivers == [
            Waiver(code: .mangledOpenSSLName, target: "product", reason: "vendor fix", expires: "2027-01-31", source: "w.yaml:1"),
            Waiver(code: .orphanOpenSSLCopy, target: "*", path: "254:1:1234", reason: "loaded by path", expires: "2028-02-29", source: "w.yaml:5"),
        ])
        #expect(try DaemonConfig.parseWaivers(bytes: Array("# none yet\n".utf8), file: "w.yaml") == [])
        do {
            _ = try DaemonConfig.parseWaivers(bytes: Array("- code: split-libcrypto\n  target: x\n  reason: r\n  expires: 2029-02-29\n".utf8), file: "w.yaml")
            Issue.record("29 February 2029 accepted")
        } catch {
            #expect(error.description == "w.yaml:4:12: [0].expires: expected a date YYYY-MM-DD (the last day the waiver holds), got \"2029-02-29\"")
        }
    }

    @Test("the one-line error: FILE:LINE:COL: KEY: MESSAGE, and no KEY part for syntax errors")
    func errorDescription() {
        let keyed = ConfigError(file: "c.yaml", line: 3, column: 7, key: "services[0].unit", message: "bad")
        #expect(keyed.description == "c.yaml:3:7: services[0].unit: bad")
        let bare = ConfigError(file: "c.yaml", line: 1, column: 1, key: "", message: "line one\nline two")
        #expect(bare.description == "c.yaml:1:1: line one line two")
    }

    @Test("user text in errors is quoted and escaped, so a key with a newline cannot split the line")
    func hostileKeys() {
        do {
            _ = try DaemonConfig.parse("\"evil\\nkey\": 1\n", file: "f")
            Issue.record("accepted")
        } catch {
            #expect(error.key == "\"evil\\nkey\"")
            #expect(!error.description.contains("\n"))
        }
        // An unknown key of 10,000 characters: the message stays short.
        do {
            _ = try DaemonConfig.parse("interval: 5m\njitter: " + String(repeating: "x", count: 10_000) + "\n", file: "f")
            Issue.record("accepted")
        } catch {
            #expect(error.key == "jitter")
            #expect(error.description.count < 300, "\(error.description.count) characters")
        }
    }

    @Test("bytes: invalid UTF-8 is an error at its line and column; valid bytes parse as text")
    func bytes() throws {
        var data = Array("interval: 5m\nsocket: /run/".utf8)
        data += [0xC3, 0x28]
        data += Array(".sock\n".utf8)
        do {
            _ = try DaemonConfig.parse(bytes: data, file: "f")
            Issue.record("accepted")
        } catch {
            #expect(error.line == 2 && error.column == 14 && error.key == "", "\(error)")
            #expect(error.message == "not valid UTF-8 text")
        }
        let ok = try DaemonConfig.parse(bytes: Array("interval: 1h\nsocket: /run/é.sock\n".utf8), file: "f")
        #expect(ok.interval == 3600 && ok.socket == "/run/é.sock")
    }

    @Test("nested aliases used as a key are refused at once, not expanded (a billion laughs)")
    func aliasBomb() {
        // Nine levels of ten aliases each: a key of 10^9 nodes, if it were expanded.
        var text = "x0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1..<9 { text += "x\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        for (tail, column) in [("*a8 : 1\n", 1), ("? *a8\n: 1\n", 1), ("k: {*a8}\n", 5), ("k: [[*a8]: 1]\n", 9)] {
            let start = ContinuousClock.now
            do {
                _ = try DaemonConfig.parse(text + tail, file: "f")
                Issue.record("accepted")
            } catch {
                #expect(error.line == 10 && error.column == column && error.key == "", "\(error)")
            }
            #expect(ContinuousClock.now - start < .seconds(2))
        }
    }

    @Test("key-like text inside comments, quotes, block scalars and continued plain scalars is only text")
    func keyLikeText() throws {
        let c = try DaemonConfig.parse("""
            # ? not a key, *nor: this, [a]: b
            interval: 5m # *x: 1
            services:
              - name: a
                unit: a
                environment:
                  A: "*x: 1 [a]: b ? c"
                  B: '? y, it''s {a}: b'
                  C: |
                    *x: 1
                    ? y
                    [a]: b
                  D: plain
                    'continued [a]
                  E: >-
                    folded
                  F: 'x'
            """, file: "f")
        #expect(c.services[0].environment == ["A": "*x: 1 [a]: b ? c", "B": "? y, it's {a}: b", "C": "*x: 1\n? y\n[a]: b\n",
                                              "D": "plain 'continued [a]", "E": "folded", "F": "x"])
    }

    @Test("mutated copies of the example never crash the parser: a config or a one-line error")
    func mutations() throws {
        let original = Array(try Self.example().utf8)
        var rng = SplitMix64(state: 0x5EED_C0F1)
        let alphabet = Array("-?*&!|>[]{},:#'\"\n \t\\%@`x0/~.".utf8) + [0x00, 0xC3, 0xFF, 0x07]
        var accepted = 0, rejected = 0
        for _ in 0..<1500 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[at] = alphabet.randomElement(using: &rng)!
                case 1: bytes.insert(alphabet.randomElement(using: &rng)!, at: at)
                default: bytes.remove(at: at)
                }
            }
            do {
                _ = try DaemonConfig.parse(bytes: bytes, file: "m.yaml")
                accepted += 1
            } catch {
                rejected += 1
                #expect(error.line >= 1 && error.column >= 1)
                #expect(!error.description.contains("\n") && error.description.hasPrefix("m.yaml:"))
            }
        }
        // Most mutations break something; some (inside a comment or a path) still make a valid file.
        #expect(rejected > 500 && accepted > 50, "\(accepted) accepted, \(rejected) rejected")
    }

    @Test("aliases are followed: a shared environment block is allowed")
    func aliases() throws {
        let c = try DaemonConfig.parse("""
            services:
              - name: a
                unit: a
                environment: &env {OPENSSL_CONF: /etc/fips.cnf}
              - name: b
                unit: b
                environment: *env
            """, file: "f")
        #expect(c.services.map(\.environment) == [["OPENSSL_CONF": "/etc/fips.cnf"], ["OPENSSL_CONF": "/etc/fips.cnf"]])
    }
}
