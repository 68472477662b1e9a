/// Walks the YAML node tree by hand rather than through Codable: every node keeps its mark, so each
/// rejection names the exact line, column and dotted key, and unknown keys are caught at every level.
struct ConfigParser {
    let file: String
    typealias Node = YAMLNode

    typealias Keys = DaemonConfig.Keys

    /// Upper bounds that keep later arithmetic (nanoseconds in Int64, sockaddr_un) safe.
    static let maxInterval = 30.0 * 86_400
    static let maxPostTimeout = 3_600.0
    static let maxHistoryLimit = 1_000_000
    static let maxNameLength = 128
    /// sun_path holds 108 bytes including the terminating NUL.
    static let maxSocketPathBytes = 107
    /// A real configuration is a few kilobytes; this bounds the work a runaway file can cause.
    static let maxFileBytes = 1 << 20

    // MARK: - Entry points

    func parse(bytes: [UInt8]) throws(ConfigError) -> DaemonConfig {
        try checkUTF8(bytes)
        return try parse(String(decoding: bytes, as: UTF8.self))
    }

    private func checkUTF8(_ bytes: [UInt8]) throws(ConfigError) {
        if let bad = Self.firstInvalidUTF8(bytes) {
            var line = 1, column = 1
            for byte in bytes[..<bad] {
                if byte == UInt8(ascii: "\n") { line += 1; column = 1 } else if byte & 0xC0 != 0x80 { column += 1 }
            }
            throw ConfigError(file: file, line: line, column: column, key: "", message: "not valid UTF-8 text")
        }
    }

    func parse(_ text: String) throws(ConfigError) -> DaemonConfig {
        guard let root = try compose(text) else {
            throw ConfigError(file: file, line: 1, column: 1, key: "",
                              message: "the file is empty: expected a mapping of settings such as `interval: 5m`")
        }
        guard case .mapping = root else {
            throw fail(root, "", "expected a mapping of settings such as `interval: 5m`, got \(Self.kind(root))")
        }
        return try config(root)
    }

    /// A `scan --waivers` file: the same list as the config's `waivers:`; an empty file holds none.
    func parseWaivers(bytes: [UInt8]) throws(ConfigError) -> [Waiver] {
        try checkUTF8(bytes)
        guard let root = try compose(String(decoding: bytes, as: UTF8.self)) else { return [] }
        return try waivers(root, path: "")
    }

    /// The document's node tree, nil when it holds nothing; size, complex keys and syntax checked.
    private func compose(_ text: String) throws(ConfigError) -> Node? {
        guard text.utf8.count <= Self.maxFileBytes else {
            throw ConfigError(file: file, line: 1, column: 1, key: "",
                              message: "\(text.utf8.count) bytes is too large for a configuration (at most 1 MiB)")
        }
        if let complex = ComplexKeyGuard.firstComplexKey(in: text) {
            throw ConfigError(file: file, line: complex.line, column: complex.column, key: "", message: complex.message)
        }
        do { return try YAMLNode.compose(text) } catch { throw translate(error) }
    }

    // MARK: - The schema

    private func config(_ root: Node) throws(ConfigError) -> DaemonConfig {
        let top = try entries(root, path: "", allowed: Keys.top)
        var config = DaemonConfig()
        if let e = top["interval"] {
            config.interval = try duration(e, max: Self.maxInterval, maxText: "30 days")
        }
        if let e = top["jitter"] {
            let value = try number(e, expected: "a fraction of the interval from 0 to 0.5 (0.1 = 10%)")
            guard (0...0.5).contains(value) else {
                throw fail(e, "must be between 0 and 0.5 (a fraction of the interval; 0.1 = 10%), got \(Self.show(e.value))")
            }
            config.jitter = value
        }
        if let e = top["socket"] {
            let path = try absolutePath(e)
            guard path.utf8.count <= Self.maxSocketPathBytes else {
                throw fail(e, "a Unix socket path holds at most \(Self.maxSocketPathBytes) bytes, this one has \(path.utf8.count)")
            }
            config.socket = path
        }
        if let e = top["socket_group"] { config.socketGroup = try account(e, what: "group") }
        if let e = top["runtime_directory"] {
            let path = try absolutePath(e)
            // The default socket lives here, so the same sockaddr_un limit applies to the folder.
            if top["socket"] == nil,
               path.utf8.count + 1 + DaemonConfig.socketFileName.utf8.count > Self.maxSocketPathBytes {
                throw fail(e, "too long for the socket \(DaemonConfig.socketFileName) inside it (at most \(Self.maxSocketPathBytes) bytes); set socket: to a shorter path")
            }
            config.runtimeDirectory = path
        }
        if let e = top["state_directory"] { config.stateDirectory = try absolutePath(e) }
        if let e = top["textfile"] {
            let path = try absolutePath(e)
            guard path.hasSuffix(".prom") else { throw fail(e, "must end in .prom (node_exporter's textfile collector reads only those)") }
            config.textfile = path
        }
        if let e = top["history_limit"] {
            let value = try integer(e)
            guard (1...Self.maxHistoryLimit).contains(value) else {
                throw fail(e, "must be between 1 and \(Self.maxHistoryLimit) entries, got \(value)")
            }
            config.historyLimit = value
        }
        if let e = top["post_timeout"] {
            config.postTimeout = try duration(e, max: Self.maxPostTimeout, maxText: "1 hour")
        }
        if let e = top["host_fips_check"] { config.hostFIPSCheck = try bool(e) }
        if let e = top["fips_validations"] { config.fipsValidations = try absolutePath(e) }

        // Bundles before services, whatever their order in the file: services refer to bundles.
        var names: [String: Entry] = [:]
        if let e = top["bundles"] {
            for (i, item) in try list(e).enumerated() {
                config.bundles.append(try bundle(item, path: "bundles[\(i)]", names: &names))
            }
        }
        if let e = top["services"] {
            for (i, item) in try list(e).enumerated() {
                config.services.append(try service(item, path: "services[\(i)]", bundles: config.bundles, names: &names))
            }
        }

        if let e = top["waivers"] { config.waivers = try waivers(e.value, path: e.path) }

        // Watching every OpenSSL process is the point of a bare install; once targets are named, it
        // is opt-in so a service list does not drag in the rest of the host.
        config.discover.enabled = config.bundles.isEmpty && config.services.isEmpty
        if let e = top["discover"] {
            let d = try entries(e.value, path: e.path, allowed: Keys.discover)
            if let v = d["enabled"] { config.discover.enabled = try bool(v) }
            if let v = d["expect_fips"] { config.discover.expectFIPS = try bool(v) }
            if let v = d["post"] { config.discover.post = try bool(v) }
        }
        return config
    }

    private func bundle(_ node: Node, path: String, names: inout [String: Entry]) throws(ConfigError) -> DaemonConfig.Bundle {
        let e = try entries(node, path: path, allowed: Keys.bundle)
        let name = try targetName(e, node: node, path: path, names: &names)
        guard let rootEntry = e["root"] else { throw missing("root", in: node, path: path, hint: "the bundle's folder, e.g. /opt/product") }
        var bundle = DaemonConfig.Bundle(name: name, root: try absolutePath(rootEntry))
        if let v = e["expect_fips"] { bundle.expectFIPS = try bool(v) }
        if let v = e["environment"] {
            bundle.environment = try environment(v, keptOnly: "the bundle audit only uses")
        }
        return bundle
    }

    private func service(_ node: Node, path: String, bundles: [DaemonConfig.Bundle],
                         names: inout [String: Entry]) throws(ConfigError) -> DaemonConfig.Service {
        let e = try entries(node, path: path, allowed: Keys.service)
        let name = try targetName(e, node: node, path: path, names: &names)

        let given = Keys.selectors.compactMap { e[$0] }.sorted { Self.position($0.key) < Self.position($1.key) }
        guard let chosen = given.first else {
            throw fail(node, path, "needs one of unit:, pid_file: or exe: to find the service's processes")
        }
        if given.count > 1 {
            let second = given[1]
            throw ConfigError(file: file, line: Self.position(second.key).line, column: Self.position(second.key).column,
                              key: second.path,
                              message: "give only one of unit:, pid_file:, exe: (\(chosen.name): is already set at line \(Self.position(chosen.key).line))")
        }
        let selector: DaemonConfig.Service.Selector
        switch chosen.name {
        case "unit": selector = .unit(try unit(chosen))
        case "pid_file": selector = .pidFile(try absolutePath(chosen))
        default: selector = .exe(try absolutePath(chosen))
        }
        var service = DaemonConfig.Service(name: name, selector: selector)

        if let v = e["bundle"] {
            let ref = try string(v)
            guard let b = bundles.first(where: { $0.name == ref }) else {
                let known = bundles.isEmpty ? "no bundles are configured"
                    : "configured: " + bundles.map(\.name).joined(separator: ", ")
                throw fail(v, "no bundle named \(Self.show(ref)) (\(known))")
            }
            service.bundle = ref
            service.expectFIPS = b.expectFIPS
        }
        if let v = e["expect_fips"] { service.expectFIPS = try bool(v) }
        if let v = e["environment"] { service.environment = try environment(v, keptOnly: nil) }
        if let v = e["expect_environment"] { service.expectEnvironment = try expectedEnvironment(v) }
        if let v = e["post"] { service.post = try bool(v) }
        if let v = e["post_command"] { service.postCommand = try command(v) }
        if let v = e["user"] { service.user = try account(v, what: "user") }
        if let v = e["require"] { service.require = try operations(v) }
        if let v = e["forbid"] { service.forbid = try operations(v) }
        if let both = service.require.first(where: service.forbid.contains), let v = e["forbid"] {
            throw fail(v, "\(Self.show(both)) is both required and forbidden")
        }
        return service
    }

    private func waivers(_ node: Node, path: String) throws(ConfigError) -> [Waiver] {
        guard case .sequence(let sequence, _) = node else {
            throw fail(node, path, "expected a list of waivers (lines starting with `- code:`), got \(Self.kind(node))")
        }
        var out: [Waiver] = []
        for (i, item) in sequence.enumerated() { out.append(try waiver(item, path: "\(path)[\(i)]")) }
        return out
    }

    private func waiver(_ node: Node, path: String) throws(ConfigError) -> Waiver {
        let e = try entries(node, path: path, allowed: Keys.waiver)
        guard let codeEntry = e["code"] else { throw missing("code", in: node, path: path, hint: "a finding code such as mangled-openssl-name") }
        let text = try string(codeEntry)
        guard let code = FindingCode(rawValue: text) else {
            var message = "\(Self.show(text)) is not a finding code"
            if let guess = Self.suggestion(for: text, among: FindingCode.allCases.map(\.rawValue)) { message += "; did you mean \(guess)?" }
            throw fail(codeEntry, message + " (the README lists them)")
        }
        guard let targetEntry = e["target"] else { throw missing("target", in: node, path: path, hint: "a target name, or \"*\" for every target") }
        let target = try string(targetEntry)
        guard target == "*" || (!target.isEmpty && target.unicodeScalars.allSatisfy(Self.isNameCharacter)) else {
            throw fail(targetEntry, "\(Self.show(target)) is not a target name (letters, digits and . - _ @ :), or \"*\" for every target")
        }
        var about: String?
        if let v = e["path"] {
            about = try string(v)
            guard about?.isEmpty == false else { throw fail(v, "is empty: give a path, or MAJOR:MINOR:INODE, or leave path: out") }
        }
        guard let reasonEntry = e["reason"] else { throw missing("reason", in: node, path: path, hint: "why the finding is accepted, for the next reader") }
        let reason = try string(reasonEntry)
        guard reason.contains(where: { !$0.isWhitespace }) else { throw fail(reasonEntry, "is empty: say why the finding is accepted") }
        guard let expiresEntry = e["expires"] else { throw missing("expires", in: node, path: path, hint: "the last day it holds, YYYY-MM-DD") }
        let expires = try string(expiresEntry)
        guard CalendarDay.isValid(expires) else { throw fail(expiresEntry, "expected a date YYYY-MM-DD (the last day the waiver holds), got \(Self.show(expires))") }
        return Waiver(code: code, target: target, path: about, reason: reason, expires: expires,
                      source: "\(file):\(Self.position(node).line)")
    }

    // MARK: - Value readers

    /// One key of a mapping: the key node (for "unknown key" and "given twice" marks) and its value.
    struct Entry {
        var name: String
        var key: Node
        var value: Node
        /// Dotted path of the value, e.g. "services[0].unit".
        var path: String
    }

    private func entries(_ node: Node, path: String, allowed: [String]) throws(ConfigError) -> [String: Entry] {
        guard case .mapping(let mapping, _) = node else {
            throw fail(node, path, "expected a mapping (key: value lines), got \(Self.kind(node))")
        }
        var result: [String: Entry] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                throw fail(key, path, "a key must be a plain word, got \(Self.kind(key))")
            }
            let name = scalar.string
            let keyPath = Self.join(path, name)
            guard allowed.contains(name) else {
                var message = "unknown key"
                if let guess = Self.suggestion(for: name, among: allowed) { message += "; did you mean \(guess)?" }
                message += " (known here: \(allowed.joined(separator: ", ")))"
                throw fail(key, keyPath, message)
            }
            // The composer compares keys with their tags, so `post:` and `"post":` would both get through.
            if let first = result[name] {
                throw fail(key, keyPath, "given twice (first at line \(Self.position(first.key).line))")
            }
            result[name] = Entry(name: name, key: key, value: value, path: keyPath)
        }
        return result
    }

    private func list(_ e: Entry) throws(ConfigError) -> [Node] {
        guard case .sequence(let sequence, _) = e.value else {
            throw fail(e, "expected a list (lines starting with `- `, or [] for none), got \(Self.kind(e.value))")
        }
        return Array(sequence)
    }

    /// Any scalar but null, as written: `name: 2024` or `OPENSSL_CONF: yes` stay the text they show.
    private func string(_ e: Entry) throws(ConfigError) -> String {
        guard case .scalar(let scalar) = e.value else {
            throw fail(e, "expected a single value, got \(Self.kind(e.value))")
        }
        if Self.tag(e.value) == .null {
            throw fail(e, "has no value (write \"\" for an empty string)")
        }
        guard !scalar.string.contains("\0") else { throw fail(e, "contains a NUL character") }
        return scalar.string
    }

    private func bool(_ e: Entry) throws(ConfigError) -> Bool {
        guard case .scalar(let scalar) = e.value, scalar.tag == .bool, let value = YAMLNode.bool(scalar.string) else {
            throw fail(e, "expected true or false, got \(Self.show(e.value))")
        }
        return value
    }

    private func number(_ e: Entry, expected: String) throws(ConfigError) -> Double {
        guard case .scalar(let scalar) = e.value, scalar.tag == .int || scalar.tag == .float,
              let value = Double(scalar.string), value.isFinite else {
            throw fail(e, "expected \(expected), got \(Self.show(e.value))")
        }
        return value
    }

    private func integer(_ e: Entry) throws(ConfigError) -> Int {
        guard case .scalar(let scalar) = e.value, scalar.tag == .int, let value = Int(scalar.string) else {
            throw fail(e, "expected a whole number, got \(Self.show(e.value))")
        }
        return value
    }

    private func duration(_ e: Entry, max: Double, maxText: String) throws(ConfigError) -> Double {
        let text = try string(e)
        switch Self.duration(text) {
        case .failure(let problem): throw fail(e, problem.message)
        case .success(let seconds):
            guard seconds > 0 else { throw fail(e, "must be longer than 0") }
            guard seconds <= max else { throw fail(e, "must be at most \(maxText), got \(Self.show(text) as String)") }
            return seconds
        }
    }

    private func absolutePath(_ e: Entry) throws(ConfigError) -> String {
        let path = try string(e)
        guard path.hasPrefix("/") else {
            throw fail(e, "must be an absolute path (starting with /), got \(Self.show(path))")
        }
        guard path.utf8.count < 4096 else { throw fail(e, "longer than PATH_MAX (4096 bytes)") }
        return path
    }

    /// A target name is a URL path segment (/v1/targets/NAME) and a journal field value.
    private func targetName(_ e: [String: Entry], node: Node, path: String,
                            names: inout [String: Entry]) throws(ConfigError) -> String {
        guard let entry = e["name"] else {
            throw missing("name", in: node, path: path, hint: "letters, digits and . - _ @ :")
        }
        let name = try string(entry)
        guard !name.isEmpty, name.count <= Self.maxNameLength,
              name.unicodeScalars.allSatisfy(Self.isNameCharacter) else {
            throw fail(entry, "\(Self.show(name)) is not a usable name: 1 to \(Self.maxNameLength) letters, digits and . - _ @ :")
        }
        // curl and most HTTP clients collapse these path segments before sending the request.
        guard name != ".", name != ".." else { throw fail(entry, "\(Self.show(name)) cannot be a name in a URL path") }
        if let first = names[name] {
            throw fail(entry, "duplicate name \(Self.show(name)): \(Self.parentPath(first.path)) already uses it (line \(Self.position(first.value).line)); names are the targets of /v1/targets/NAME")
        }
        names[name] = entry
        return name
    }

    /// "product-api" means "product-api.service", as with systemctl.
    private func unit(_ e: Entry) throws(ConfigError) -> String {
        let raw = try string(e)
        guard !raw.isEmpty, raw.utf8.count <= 255,
              raw.unicodeScalars.allSatisfy({ Self.isAlnum($0) || ":-_.\\@".unicodeScalars.contains($0) }) else {
            throw fail(e, "\(Self.show(raw)) is not a systemd unit name")
        }
        let otherTypes = ["scope", "socket", "slice", "timer", "target", "mount", "automount", "swap", "path", "device"]
        if let dot = raw.lastIndex(of: "."), otherTypes.contains(String(raw[raw.index(after: dot)...])) {
            throw fail(e, "only .service units are matched (a process belongs to the .service part of its cgroup path), got \(Self.show(raw))")
        }
        let unit = raw.hasSuffix(".service") ? raw : raw + ".service"
        guard unit != ".service" else { throw fail(e, "\(Self.show(raw)) is not a systemd unit name") }
        guard !unit.hasSuffix("@.service") else {
            throw fail(e, "\(Self.show(unit)) is a template and runs no processes; name an instance (NAME@INSTANCE.service)")
        }
        return unit
    }

    /// A user or group: a name, or a numeric id.
    private func account(_ e: Entry, what: String) throws(ConfigError) -> String {
        let text = try string(e)
        if !text.isEmpty, text.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) {
            guard let id = UInt32(text), id != UInt32.max else { throw fail(e, "\(text) is not a valid \(what) id") }
            return text
        }
        let scalars = Array(text.unicodeScalars)
        let body = scalars.last == "$" ? scalars.dropLast() : scalars[...]
        guard let first = body.first, (Self.isLetter(first) || first == "_"), body.count <= 32,
              body.allSatisfy({ Self.isAlnum($0) || "_.-".unicodeScalars.contains($0) }) else {
            throw fail(e, "expected a \(what) name or a numeric id, got \(Self.show(text))")
        }
        return text
    }

    /// `keptOnly`: nil for a service's full environment; otherwise the keys are limited to
    /// TargetEnvironment.keptKeys and the text says why.
    private func environment(_ e: Entry, keptOnly: String?) throws(ConfigError) -> [String: String] {
        guard case .mapping(let mapping, _) = e.value else {
            throw fail(e, "expected a mapping of VARIABLE: value, got \(Self.kind(e.value))")
        }
        var result: [String: String] = [:]
        for (keyNode, valueNode) in mapping {
            let (key, entry) = try variable(keyNode, valueNode, in: e, seen: result.keys)
            if let keptOnly, !TargetEnvironment.keptKeys.contains(key) {
                throw fail(keyNode, entry.path, "\(keptOnly) \(TargetEnvironment.keptKeys.joined(separator: ", "))")
            }
            result[key] = try string(entry)
        }
        return result
    }

    /// process-env-drift expectations: `""` (or no value) expects the variable unset or empty.
    private func expectedEnvironment(_ e: Entry) throws(ConfigError) -> [String: String] {
        guard case .mapping(let mapping, _) = e.value else {
            throw fail(e, "expected a mapping of VARIABLE: value, got \(Self.kind(e.value))")
        }
        var result: [String: String] = [:]
        for (keyNode, valueNode) in mapping {
            let (key, entry) = try variable(keyNode, valueNode, in: e, seen: result.keys)
            guard TargetEnvironment.keptKeys.contains(key) else {
                throw fail(keyNode, entry.path, "only \(TargetEnvironment.keptKeys.joined(separator: ", ")) are captured from a process, so \(key) cannot be checked")
            }
            if Self.tag(valueNode) == .null { result[key] = "" } else { result[key] = try string(entry) }
        }
        return result
    }

    private func variable(_ keyNode: Node, _ valueNode: Node, in e: Entry,
                          seen: Dictionary<String, String>.Keys) throws(ConfigError) -> (String, Entry) {
        guard case .scalar(let scalar) = keyNode else {
            throw fail(keyNode, e.path, "a variable name must be a plain word, got \(Self.kind(keyNode))")
        }
        let key = scalar.string
        let entry = Entry(name: key, key: keyNode, value: valueNode, path: Self.join(e.path, key))
        guard let first = key.unicodeScalars.first, Self.isLetter(first) || first == "_",
              key.unicodeScalars.allSatisfy({ Self.isAlnum($0) || $0 == "_" }) else {
            throw fail(keyNode, entry.path, "\(Self.show(key)) is not an environment variable name (letters, digits, _)")
        }
        guard !seen.contains(key) else { throw fail(keyNode, entry.path, "given twice") }
        return (key, entry)
    }

    /// A list's items as entries with their `[i]` paths; `expected` says what the list should hold.
    private func items(_ e: Entry, expected: String) throws(ConfigError) -> [Entry] {
        guard case .sequence(let sequence, _) = e.value else { throw fail(e, "expected \(expected), got \(Self.kind(e.value))") }
        return sequence.enumerated().map { i, node in Entry(name: e.name, key: e.key, value: node, path: "\(e.path)[\(i)]") }
    }

    /// A list of operation names (`crypto-sentinel post --list-operations`).
    private func operations(_ e: Entry) throws(ConfigError) -> [String] {
        var names: [String] = []
        for entry in try items(e, expected: "a list of operations such as [sha256, x509-sign-sha256]") {
            let name = try string(entry)
            guard PostOperations.names.contains(name) else {
                throw fail(entry, "\(Self.show(name)) is not an operation (crypto-sentinel post --list-operations lists them)")
            }
            names.append(name)
        }
        return names
    }

    private func command(_ e: Entry) throws(ConfigError) -> [String] {
        var argv: [String] = []
        for entry in try items(e, expected: "a list: [/path/to/program, argument, …] ([] for none)") {
            argv.append(argv.isEmpty ? try absolutePath(entry) : try string(entry))
        }
        return argv
    }

    // MARK: - Durations

    struct DurationProblem: Error { var message: String }

    /// "300", "1.5", "300s", "5m", "1h30m", "500ms", "1d": units largest first, each at most once.
    static func duration(_ raw: String) -> Result<Double, DurationProblem> {
        let text = Array(raw.unicodeScalars)
        let form = "expected a duration such as 300, 300s, 5m, 1h30m or 500ms, got \(show(raw))"
        if text.first == "-" { return .failure(DurationProblem(message: "must be positive, got \(show(raw))")) }
        guard !text.isEmpty else { return .failure(DurationProblem(message: form)) }
        let units: [(String, Double)] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1), ("ms", 0.001)]
        var total = 0.0, i = 0, lastUnit = -1
        while i < text.count {
            var digits = ""
            while i < text.count, ("0"..."9").contains(text[i]) || text[i] == "." { digits.unicodeScalars.append(text[i]); i += 1 }
            var unit = ""
            while i < text.count, isLetter(text[i]) { unit.unicodeScalars.append(text[i]); i += 1 }
            guard !digits.isEmpty, digits.first != ".", digits.last != ".", let value = Double(digits) else {
                return .failure(DurationProblem(message: form))
            }
            if unit.isEmpty {
                // A bare number is seconds, and only on its own ("1h30" is ambiguous).
                guard lastUnit == -1, i == text.count else { return .failure(DurationProblem(message: form)) }
                return .success(value)
            }
            guard let index = units.firstIndex(where: { $0.0 == unit }) else {
                return .failure(DurationProblem(message: "unknown unit \(show(unit)) in \(show(raw)); use ms, s, m, h or d"))
            }
            guard index > lastUnit else {
                return .failure(DurationProblem(message: "units must go from largest to smallest, each once, in \(show(raw))"))
            }
            lastUnit = index
            total += value * units[index].1
        }
        return .success(total)
    }

    // MARK: - Errors

    private func fail(_ node: Node, _ key: String, _ message: String) -> ConfigError {
        let mark = Self.position(node)
        return ConfigError(file: file, line: mark.line, column: mark.column, key: key, message: message)
    }

    private func fail(_ e: Entry, _ message: String) -> ConfigError { fail(e.value, e.path, message) }

    private func missing(_ key: String, in node: Node, path: String, hint: String) -> ConfigError {
        fail(node, Self.join(path, key), "missing (\(hint))")
    }

    private func translate(_ error: YAMLNode.SyntaxError) -> ConfigError {
        switch error.kind {
        case .reader:
            return ConfigError(file: file, line: error.mark.line, column: error.mark.column, key: "", message: "unreadable text: \(error.problem)")
        case .duplicateKey(let key):
            return ConfigError(file: file, line: error.mark.line, column: error.mark.column, key: key, message: error.problem)
        case .syntax:
            var message = "YAML syntax error: \(error.problem)"
            if let context = error.context { message += " (\(context.text) at line \(context.mark.line))" }
            return ConfigError(file: file, line: error.mark.line, column: error.mark.column, key: "", message: message)
        }
    }

    // MARK: - Helpers

    static func tag(_ node: Node) -> YAMLNode.Tag? { node.tag }

    static func position(_ node: Node) -> (line: Int, column: Int) { (node.mark.line, node.mark.column) }

    private static func join(_ path: String, _ key: String) -> String {
        let shown = key.unicodeScalars.allSatisfy { isAlnum($0) || "_-".unicodeScalars.contains($0) } && !key.isEmpty
            ? key : show(key)
        return path.isEmpty ? shown : "\(path).\(shown)"
    }

    /// "services[1].name" → "services[1]".
    private static func parentPath(_ path: String) -> String {
        path.lastIndex(of: ".").map { String(path[..<$0]) } ?? path
    }

    /// User text inside a message: quoted, escaped (no newline can split the one-line error), shortened.
    static func show(_ text: String) -> String {
        let short = text.count > 80 ? String(text.prefix(77)) + "..." : text
        return short.debugDescription
    }

    static func show(_ node: Node) -> String {
        if case .scalar(let scalar) = node {
            switch scalar.tag {
            case .null: return "no value"
            case .int, .float, .bool: return show(scalar.string).dropFirst().dropLast().description
            default: return show(scalar.string)
            }
        }
        return kind(node)
    }

    static func kind(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let scalar):
            switch scalar.tag {
            case .null: return "no value"
            case .bool: return "true/false"
            case .int, .float: return "the number \(scalar.string)"
            default: return "the text \(show(scalar.string))"
            }
        }
    }

    /// A likely intended key: same letters ignoring case, '-' and '_', or at most two edits away.
    static func suggestion(for key: String, among allowed: [String]) -> String? {
        func squash(_ s: String) -> String { s.lowercased().filter { $0 != "_" && $0 != "-" } }
        if let same = allowed.first(where: { squash($0) == squash(key) }) { return same }
        let best = allowed.map { ($0, editDistance(Array($0.utf8), Array(key.lowercased().utf8))) }.min { $0.1 < $1.1 }
        return best.flatMap { $0.1 <= 2 ? $0.0 : nil }
    }

    private static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        guard !a.isEmpty, !b.isEmpty, b.count < 200 else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    static func isLetter(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("A"..."Z").contains(c) }
    static func isAlnum(_ c: Unicode.Scalar) -> Bool { isLetter(c) || ("0"..."9").contains(c) }
    static func isNameCharacter(_ c: Unicode.Scalar) -> Bool { isAlnum(c) || ".-_@:".unicodeScalars.contains(c) }

    /// The byte offset of the first byte that does not decode as UTF-8, if any.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }
}
