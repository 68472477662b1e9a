/// One object of a simulated process, in glibc's link-map order.
public struct LoadedObject: Sendable, Hashable {
    public var file: LoadedFile
    /// Path of l_loader: the object whose request first loaded this one (the main program for
    /// LD_PRELOAD entries and dlopened roots); nil for the main program and the dynamic loader.
    public var loader: String?
    /// Every name it was requested by (DT_NEEDED strings, LD_PRELOAD entries, dlopen paths), first first.
    public var requestedAs: [String]

    public init(file: LoadedFile, loader: String?, requestedAs: [String]) {
        self.file = file; self.loader = loader; self.requestedAs = requestedAs
    }
}

/// What one process maps, and why.
public struct ProcessLoad: Sendable {
    /// Load order (glibc's link-map list: main, LD_PRELOAD, breadth-first dependencies, then each
    /// dlopen; the dynamic loader appears where it is first needed).
    public var objects: [LoadedObject]
    /// Every DT_NEEDED edge in the order glibc processes them, including missing ones and reuses of
    /// already-loaded objects; LD_PRELOAD requests appear as edges of the main program (via .preload).
    public var edges: [LoaderEdge]

    public init(objects: [LoadedObject], edges: [LoaderEdge]) {
        self.objects = objects; self.edges = edges
    }

    /// The edges from a root (main, preload or dlopened object) down to `path`, following first-load
    /// (l_loader) links. Empty for a root itself or a path not in the process.
    public func chain(to path: String) -> [LoaderEdge] {
        var byPath: [String: LoadedObject] = [:]
        for object in objects where byPath[object.file.path] == nil { byPath[object.file.path] = object }
        var result: [LoaderEdge] = []
        var current = path
        var visited: Set<String> = []
        while visited.insert(current).inserted, let object = byPath[current], let loader = object.loader {
            let loading = edges.first { edge in
                guard edge.consumer == loader, case .found(let file, let via, _) = edge.result else { return false }
                return file.path == current && via != .alreadyLoaded && via != .preload
            }
            guard let loading else { break }
            result.append(loading)
            current = loader
        }
        return result.reversed()
    }
}

/// glibc 2.36's library search (elf/dl-load.c `_dl_map_object`, elf/dl-deps.c), as a pure
/// simulation over a `LoaderFileSystem`.
///
/// Modelled as the loader's trace mode (`LD_TRACE_LOADED_OBJECTS`): a missing dependency is recorded
/// and loading goes on, where a real start or dlopen would fail. Candidates that exist but cannot be
/// used are skipped and recorded (see `LoaderEdge.skipped`); glibc does skip a wrong class or machine
/// and an unreadable file, but stops with an error on a file whose ELF header it rejects (truncated,
/// not ELF), which `LoaderProbe.unusable` cannot tell apart. Under secure execution, LD_PRELOAD is
/// ignored entirely (glibc only takes set-user-ID files from system folders, which we cannot see).
///
/// Not Sendable: it memoises probes, folder listings, path expansions, searches and the main
/// program's closure in plain dictionaries. Use one instance from one task at a time.
public final class LoaderResolver {
    private let host: LoaderHost
    private let environment: TargetEnvironment
    private let fileSystem: any LoaderFileSystem
    private let cwd: String
    /// Subfolders tried in every search folder, best first; "" is the folder itself.
    private let capabilityDirs: [String]
    private let defaultList: Int

    private enum Listing { case unknown, names(Set<String>) }
    private struct Segment: Hashable { var list: Int; var via: SearchSource; var owner: String? }
    private struct ABI: Hashable { var elfClass: ELFObject.ELFClass; var machine: UInt16 }
    private struct SearchKey: Hashable {
        var name: String; var segments: [Segment]; var nodeflib: Bool; var abi: ABI?
    }
    private struct ExpansionKey: Hashable {
        var raw: String; var origin: String?; var executable: Bool; var separators: String
    }
    private enum SearchOutcome {
        case found(realName: String, file: LoadedFile, via: SearchSource, owner: String?, skipped: [String])
        case missing(tried: [String], skipped: [String])
    }

    private var probes: [String: LoaderProbe] = [:]
    private var listings: [String: Listing] = [:]
    private var realPaths: [String: String] = [:]
    private var cacheAnswers: [String: String?] = [:]
    private var lists: [[String]] = []
    private var listIDs: [[String]: Int] = [:]
    private var expansions: [ExpansionKey: Int] = [:]
    private var searches: [SearchKey: SearchOutcome] = [:]
    private var mainStates: [String: ProcessState] = [:]

    public init(host: LoaderHost, environment: TargetEnvironment, fileSystem: any LoaderFileSystem, cwd: String = "/") {
        self.host = host
        self.environment = environment
        self.fileSystem = fileSystem
        self.cwd = cwd.isEmpty ? "/" : cwd
        capabilityDirs = host.hwcapsSubdirs.map { "glibc-hwcaps/\($0)/" } + host.legacyHwcapsSubdirs.map { $0 + "/" } + [""]
        defaultList = 0
        lists = [host.defaultDirs.map { Self.asSearchDir($0) }]
        listIDs[lists[0]] = 0
    }

    /// One process: LD_PRELOAD, then `main`'s closure (breadth-first as _dl_map_object_deps), then
    /// each of `dlopen` in order, each with `main` as the caller.
    public func loadProcess(main: LoadedFile?, dlopen: [LoadedFile]) -> ProcessLoad {
        var state = mainState(main)
        for root in dlopen { open(root, in: &state) }
        return state.result()
    }

    /// `loadProcess(main:dlopen:).edges`, without building the object list (the bundle audit reads
    /// only the edges, of one process per shared object of the tree).
    public func loadEdges(main: LoadedFile?, dlopen: [LoadedFile]) -> [LoaderEdge] {
        var state = mainState(main)
        for root in dlopen { open(root, in: &state) }
        return state.edges
    }

    // MARK: process state

    private struct Object {
        var file: LoadedFile
        /// l_name as glibc built it ("" for the main program); may be relative to the cwd.
        var realName: String
        var names: [String]
        var loader: Int?
        /// $ORIGIN; nil when unknown (elements using it are dropped).
        var origin: String?
        var isExecutable: Bool
        /// Own effective RPATH, then the loader's chain (RPATH is inherited; RUNPATH is not).
        var rpathChain: [Segment]
        var ownRPath: Segment?
        var runpath: Segment?
        var listed: Bool
        var depsDone: Bool
    }

    private struct ProcessState {
        var objects: [Object] = []
        var order: [Int] = []
        var byName: [String: Int] = [:]
        var bySoname: [String: Int] = [:]
        var byIdentity: [FileIdentity: Int] = [:]
        var edges: [LoaderEdge] = []
        var main: Int?

        /// `_dl_name_match_p` or SONAME, first object in list order.
        func match(_ name: String) -> Int? {
            switch (byName[name], bySoname[name]) {
            case let (a?, b?): return min(a, b)
            case let (a?, nil): return a
            case let (nil, b?): return b
            default: return nil
            }
        }

        mutating func add(_ object: Object) -> Int {
            let index = objects.count
            objects.append(object)
            if object.listed { order.append(index) }
            if !object.realName.isEmpty { Self.keepFirst(&byName, object.realName, index) }
            for name in object.names { Self.keepFirst(&byName, name, index) }
            if let soname = object.file.object.soname { Self.keepFirst(&bySoname, soname, index) }
            Self.keepFirst(&byIdentity, object.file.identity, index)
            return index
        }

        /// `dict[key] = value` unless the key is there: one hash lookup (through the default
        /// subscript's in-place access) instead of a lookup and an insert, thousands of times per audit.
        static func keepFirst<Key: Hashable>(_ dict: inout [Key: Int], _ key: Key, _ value: Int) {
            dict[key, default: value] += 0
        }

        mutating func reuse(_ index: Int, as name: String) {
            if !objects[index].names.contains(name) { objects[index].names.append(name) }
            Self.keepFirst(&byName, name, index)
            list(index)
        }

        mutating func list(_ index: Int) {
            if !objects[index].listed { objects[index].listed = true; order.append(index) }
        }

        func result() -> ProcessLoad {
            ProcessLoad(
                objects: order.map { i in
                    LoadedObject(file: objects[i].file, loader: objects[i].loader.map { objects[$0].file.path },
                                 requestedAs: objects[i].names)
                },
                edges: edges)
        }
    }

    private func mainState(_ main: LoadedFile?) -> ProcessState {
        let key = main.map { "\($0.identity.device):\($0.identity.inode):\($0.path)" } ?? ""
        if let cached = mainStates[key] { return cached }
        var state = ProcessState()
        // Every dlopen of a root starts from a copy of this state, and a copy keeps the capacity:
        // room for a typical closure spares each process the regrowth of its indexes (~1,000 resizes
        // under /usr/lib).
        state.objects.reserveCapacity(16)
        state.order.reserveCapacity(16)
        state.byName.reserveCapacity(32)
        state.bySoname.reserveCapacity(16)
        state.byIdentity.reserveCapacity(16)
        var roots: [Int] = []
        if let main {
            let real = absolute(realPath(main.path) ?? main.path)
            let index = state.add(makeObject(file: main, realName: "", names: [], loader: nil, origin: Self.dirname(real),
                                             isExecutable: true, state: state))
            state.main = index
            roots.append(index)
        }
        // The dynamic loader is mapped before anything else; a DT_NEEDED on its name or SONAME reuses it.
        if let interp = main?.object.interpreter ?? host.rtldPath, case .object(let rtld) = probe(absolute(interp)),
           state.byIdentity[rtld.identity] == nil {
            var object = makeObject(file: rtld, realName: interp, names: [interp], loader: nil,
                                    origin: Self.dirname(absolute(interp)), isExecutable: false, state: state)
            object.listed = false
            _ = state.add(object)
        }
        if !environment.secureExecution {
            for name in environment.preload {
                let consumer = main?.path ?? ""
                let (result, skipped, index) = request(name, from: state.main, in: &state)
                var edgeResult = result
                if case .found(let file, let via, _) = result, via != .alreadyLoaded {
                    edgeResult = .found(file, via: .preload, rpathOwner: nil)
                }
                state.edges.append(LoaderEdge(consumer: consumer, name: name, result: edgeResult, skipped: skipped))
                if let index { roots.append(index) }
            }
        }
        // The dynamic loader stays off the list until something needs it, as in glibc's link map.
        loadDependencies(of: roots, in: &state)
        mainStates[key] = state
        return state
    }

    /// `dlopen(root->path)` called from the main program.
    private func open(_ root: LoadedFile, in state: inout ProcessState) {
        let index: Int
        if let existing = state.match(root.path) ?? state.byIdentity[root.identity] {
            state.reuse(existing, as: root.path)
            index = existing
        } else {
            index = state.add(makeObject(file: root, realName: root.path, names: [root.path], loader: state.main,
                                         origin: Self.dirname(absolute(root.path)), isExecutable: false, state: state))
        }
        loadDependencies(of: [index], in: &state)
    }

    /// Breadth-first over DT_NEEDED, as `_dl_map_object_deps`; each object's list is walked once.
    private func loadDependencies(of roots: [Int], in state: inout ProcessState) {
        var queue = roots
        var next = 0
        while next < queue.count {
            let index = queue[next]
            next += 1
            if state.objects[index].depsDone { continue }
            state.objects[index].depsDone = true
            let consumer = state.objects[index].file.path
            for needed in state.objects[index].file.object.needed {
                let (result, skipped, found) = requestNeeded(needed, from: index, in: &state)
                state.edges.append(LoaderEdge(consumer: consumer, name: needed, result: result, skipped: skipped))
                if let found, !state.objects[found].depsDone { queue.append(found) }
            }
        }
    }

    /// A DT_NEEDED string: its DSTs are expanded with the needing object first (dl-deps.c expand_dst).
    private func requestNeeded(_ needed: String, from index: Int, in state: inout ProcessState)
        -> (EdgeResult, [String], Int?) {
        var name = needed
        if Self.hasDST(needed) {
            if environment.secureExecution {
                return (.missing(tried: []), ["\(needed) (DST not allowed in SUID/SGID programs)"], nil)
            }
            let object = state.objects[index]
            guard let expanded = substitute(needed, origin: object.origin, executable: object.isExecutable),
                  !expanded.isEmpty else {
                return (.missing(tried: []), ["\(needed) (empty dynamic string token substitution)"], nil)
            }
            name = expanded
        }
        return request(name, from: index, in: &state)
    }

    /// `_dl_map_object(loader, name)`: reuse by name or SONAME, else a path or a search, then reuse
    /// by file identity, else a new object.
    private func request(_ name: String, from loader: Int?, in state: inout ProcessState) -> (EdgeResult, [String], Int?) {
        if let existing = state.match(name) {
            state.reuse(existing, as: name)
            return (.found(state.objects[existing].file, via: .alreadyLoaded, rpathOwner: nil), [], existing)
        }
        let realName: String, file: LoadedFile, via: SearchSource, owner: String?, skipped: [String]
        if name.utf8.contains(UInt8(ascii: "/")) {  // bytes: Foundation's contains(_:) would be picked here
            var path = name
            if let loader {
                let object = state.objects[loader]
                path = substitute(name, origin: object.origin, executable: object.isExecutable) ?? ""
            }
            let candidate = absolute(path)
            guard !path.isEmpty else { return (.missing(tried: [name]), [], nil) }
            switch probe(candidate) {
            case .missing:
                return (.missing(tried: [candidate]), [], nil)
            case .unusable(let reason):
                let note = "\(candidate) (\(reason))"
                return (.missing(tried: [note]), [note], nil)
            case .object(let found):
                if let reason = incompatibility(found, abi: abi(of: loader, in: state)) {
                    let note = "\(candidate) (\(reason))"
                    return (.missing(tried: [note]), [note], nil)
                }
                (realName, file, via, owner, skipped) = (path, found, .path, nil, [])
            }
        } else {
            switch search(name, from: loader, in: state) {
            case .missing(let tried, let skipped):
                return (.missing(tried: tried), skipped, nil)
            case .found(let r, let f, let v, let o, let s):
                (realName, file, via, owner, skipped) = (r, f, v, o, s)
            }
        }
        if let existing = state.byIdentity[file.identity] {
            state.reuse(existing, as: name)
            return (.found(state.objects[existing].file, via: .alreadyLoaded, rpathOwner: nil), skipped, existing)
        }
        let index = state.add(makeObject(file: file, realName: realName, names: [name], loader: loader,
                                         origin: Self.dirname(file.path), isExecutable: false, state: state))
        return (.found(file, via: via, rpathOwner: owner), skipped, index)
    }

    private func makeObject(file: LoadedFile, realName: String, names: [String], loader: Int?, origin: String?,
                            isExecutable: Bool, state: ProcessState) -> Object {
        let elf = file.object
        var own: Segment?, runpath: Segment?
        if let raw = elf.runpath {
            let list = expand(raw, separators: ":", origin: origin, executable: isExecutable)
            if !lists[list].isEmpty { runpath = Segment(list: list, via: .runpath, owner: file.path) }
        } else if let raw = elf.rpath {
            let list = expand(raw, separators: ":", origin: origin, executable: isExecutable)
            if !lists[list].isEmpty { own = Segment(list: list, via: .rpath, owner: file.path) }
        }
        let inherited = loader.map { state.objects[$0].rpathChain } ?? []
        return Object(file: file, realName: realName, names: names, loader: loader, origin: origin,
                      isExecutable: isExecutable, rpathChain: (own.map { [$0] } ?? []) + inherited, ownRPath: own,
                      runpath: runpath, listed: true, depsDone: false)
    }

    // MARK: search

    private func abi(of index: Int?, in state: ProcessState) -> ABI? {
        guard let object = (index ?? state.main).map({ state.objects[$0].file.object }) else { return nil }
        return ABI(elfClass: object.elfClass, machine: object.machine)
    }

    private func search(_ name: String, from loader: Int?, in state: ProcessState) -> SearchOutcome {
        let object = loader.map { state.objects[$0] }
        var segments: [Segment] = []
        if object?.file.object.runpath == nil {
            segments = object?.rpathChain ?? []
            if let main = state.main, let mainRPath = state.objects[main].ownRPath, !segments.contains(mainRPath) {
                segments.append(mainRPath)
            }
        }
        // The raw value, split as glibc does (an empty element is the cwd itself, not "./").
        if !environment.libraryPath.isEmpty, let raw = environment["LD_LIBRARY_PATH"] {
            let origin = state.main.flatMap { state.objects[$0].origin }
            let list = expand(raw, separators: ":;", origin: origin, executable: true)
            if !lists[list].isEmpty { segments.append(Segment(list: list, via: .ldLibraryPath, owner: nil)) }
        }
        if let runpath = object?.runpath { segments.append(runpath) }
        let flagsOwner = (loader ?? state.main).map { state.objects[$0].file.object }
        let key = SearchKey(name: name, segments: segments, nodeflib: flagsOwner?.noDefaultLib ?? false,
                            abi: abi(of: loader, in: state))
        if let known = searches[key] { return known }
        let outcome = performSearch(key)
        searches[key] = outcome
        return outcome
    }

    private func performSearch(_ key: SearchKey) -> SearchOutcome {
        var tried: [String] = []
        var skipped: [String] = []

        func tryCandidate(_ candidate: String, listing folder: String?) -> LoadedFile? {
            let path = absolute(candidate)
            tried.append(path)
            if let folder, case .names(let names) = listing(absolute(folder)), !names.contains(key.name) { return nil }
            switch probe(path) {
            case .missing:
                return nil
            case .unusable(let reason):
                let note = "\(path) (\(reason))"
                tried[tried.count - 1] = note
                skipped.append(note)
                return nil
            case .object(let file):
                if let reason = incompatibility(file, abi: key.abi) {
                    let note = "\(path) (\(reason))"
                    tried[tried.count - 1] = note
                    skipped.append(note)
                    return nil
                }
                return file
            }
        }

        func walk(_ list: Int) -> (String, LoadedFile)? {
            for dir in lists[list] {
                for capability in capabilityDirs {
                    let folder = dir + capability
                    let candidate = folder + key.name
                    if let file = tryCandidate(candidate, listing: folder) { return (candidate, file) }
                }
            }
            return nil
        }

        for segment in key.segments {
            if let (realName, file) = walk(segment.list) {
                return .found(realName: realName, file: file, via: segment.via, owner: segment.owner, skipped: skipped)
            }
        }
        // The cache is consulted even under DF_1_NODEFLIB; only its answers inside a system folder are refused.
        let flags = key.abi.map { LdSoCache.expectedFlags(elfClass: $0.elfClass, machine: $0.machine) }
            ?? LdSoCache.defaultX8664Flags
        if let cached = cacheLookup(key.name, flags: flags) {
            if key.nodeflib, lists[defaultList].contains(where: { cached.hasPrefix($0) }) {
                tried.append("\(cached) (ld.so.cache entry in a system folder, loader has DF_1_NODEFLIB)")
            } else if let file = tryCandidate(cached, listing: nil) {
                return .found(realName: cached, file: file, via: .ldCache, owner: nil, skipped: skipped)
            }
        }
        if !key.nodeflib {
            if let (realName, file) = walk(defaultList) {
                return .found(realName: realName, file: file, via: .defaultPath, owner: nil, skipped: skipped)
            }
        }
        return .missing(tried: tried, skipped: skipped)
    }

    private func incompatibility(_ file: LoadedFile, abi: ABI?) -> String? {
        let elf = file.object
        switch elf.type {
        case .sharedObject, .executable: break
        default: return "ELF type \(elf.type.rawValue) cannot be loaded"
        }
        guard let abi else { return nil }
        if elf.elfClass != abi.elfClass { return "wrong ELF class \(elf.elfClass.rawValue), loader is \(abi.elfClass.rawValue)" }
        if elf.machine != abi.machine { return "wrong machine \(elf.machine), loader is \(abi.machine)" }
        return nil
    }

    // MARK: memoised file system

    private func probe(_ path: String) -> LoaderProbe {
        if let known = probes[path] { return known }
        let result = fileSystem.probe(path)
        probes[path] = result
        return result
    }

    private func listing(_ folder: String) -> Listing {
        if let known = listings[folder] { return known }
        let result = fileSystem.directoryEntries(folder).map(Listing.names) ?? .unknown
        listings[folder] = result
        return result
    }

    private func realPath(_ path: String) -> String? {
        if let known = realPaths[path] { return known }
        guard let real = fileSystem.realPath(path) else { return nil }
        realPaths[path] = real
        return real
    }

    private func cacheLookup(_ name: String, flags: Int32) -> String? {
        guard let cache = host.cache else { return nil }
        let key = "\(flags)/\(name)"
        if let known = cacheAnswers[key] { return known }
        let answer = cache.lookup(name, flags: flags, hwcapsSubdirs: host.hwcapsSubdirs)
        cacheAnswers[key] = answer
        return answer
    }

    // MARK: paths and DSTs

    /// Relative names are opened relative to the process's cwd (and glibc's $ORIGIN is built the same way).
    private func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return cwd.hasSuffix("/") ? cwd + path : cwd + "/" + path
    }

    /// The folder of a path, as `_dl_new_object` computes l_origin ("/" for "/foo").
    /// On the contiguous UTF-8 bytes: a Character-wise backward search cost 5,000 instructions per
    /// path (the UTF-8 view's ~600), and every object of every simulated process needs its folder.
    public static func dirname(_ path: String) -> String {
        var path = path
        return path.withUTF8 { bytes in
            guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return "." }
            return slash == 0 ? "/" : String(decoding: UnsafeBufferPointer(rebasing: bytes[..<slash]), as: UTF8.self)
        }
    }

    /// A search folder as fillin_rpath stores it: trailing slashes collapsed to one.
    static func asSearchDir(_ dir: String) -> String {
        var d = Substring(dir)
        while d.count > 1, d.hasSuffix("/") { d = d.dropLast() }
        return d.hasSuffix("/") ? String(d) : d + "/"
    }

    /// fillin_rpath: split, expand DSTs (dropping elements that cannot be expanded), normalise the
    /// trailing slash, drop repeats. An empty element means the cwd; an empty string means no path.
    private func expand(_ raw: String, separators: String, origin: String?, executable: Bool) -> Int {
        let key = ExpansionKey(raw: raw, origin: origin, executable: executable, separators: separators)
        if let known = expansions[key] { return known }
        var dirs: [String] = []
        if !raw.isEmpty {
            for element in raw.split(omittingEmptySubsequences: false, whereSeparator: { separators.contains($0) }) {
                var dir = ""
                if !element.isEmpty {
                    guard let expanded = substitute(String(element), origin: origin, executable: executable),
                          !expanded.isEmpty else { continue }
                    dir = Self.asSearchDir(expanded)
                }
                if !dirs.contains(dir) { dirs.append(dir) }
            }
        }
        let id: Int
        if let existing = listIDs[dirs] {
            id = existing
        } else {
            id = lists.count
            lists.append(dirs)
            listIDs[dirs] = id
        }
        expansions[key] = id
        return id
    }

    static func hasDST(_ s: String) -> Bool {
        // Asked of every DT_NEEDED string, which almost never holds a `$`: look for one on the bytes first.
        if let dollar = s.utf8.withContiguousStorageIfAvailable({ $0.contains(UInt8(ascii: "$")) }), !dollar { return false }
        let bytes = Array(s.utf8)
        for i in bytes.indices where bytes[i] == UInt8(ascii: "$") {
            for ref in ["ORIGIN", "PLATFORM", "LIB"] where dstLength(bytes, at: i + 1, ref) > 0 { return true }
        }
        return false
    }

    /// glibc's is_dst: `NAME` or `{NAME}` at `at`, not followed by an identifier character.
    static func dstLength(_ bytes: [UInt8], at start: Int, _ ref: String) -> Int {
        var p = start
        let curly = p < bytes.count && bytes[p] == UInt8(ascii: "{")
        if curly { p += 1 }
        let r = Array(ref.utf8)
        guard p + r.count <= bytes.count, bytes[p..<(p + r.count)].elementsEqual(r) else { return 0 }
        let next: UInt8 = p + r.count < bytes.count ? bytes[p + r.count] : 0
        if curly { return next == UInt8(ascii: "}") ? r.count + 2 : 0 }
        let isIdent = (next >= 65 && next <= 90) || (next >= 97 && next <= 122) || (next >= 48 && next <= 57) || next == 95
        return isIdent ? 0 : r.count
    }

    /// `_dl_dst_substitute`; nil when a known token has no value (the element is then dropped).
    private func substitute(_ input: String, origin: String?, executable: Bool) -> String? {
        let bytes = Array(input.utf8)
        let secure = environment.secureExecution
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 64)
        var checkTrusted = false
        var i = 0
        while i < bytes.count {
            guard bytes[i] == UInt8(ascii: "$") else { out.append(bytes[i]); i += 1; continue }
            let rest = i + 1
            var length = Self.dstLength(bytes, at: rest, "ORIGIN")
            var replacement: String?
            if length > 0 {
                // Secure mode: $ORIGIN only as the whole first element or its leading folder.
                if secure, !(rest == 1 && (rest + length == bytes.count || bytes[rest + length] == UInt8(ascii: "/"))) {
                    return nil
                }
                replacement = origin
                checkTrusted = secure && executable
            } else if case let l = Self.dstLength(bytes, at: rest, "PLATFORM"), l > 0 {
                length = l
                replacement = host.platform.isEmpty ? nil : host.platform
            } else if case let l = Self.dstLength(bytes, at: rest, "LIB"), l > 0 {
                length = l
                replacement = host.libToken
            }
            if length > 0 {
                guard let replacement else { return nil }
                out.append(contentsOf: replacement.utf8)
                i = rest + length
            } else {
                out.append(bytes[i])
                i = rest
            }
        }
        if checkTrusted, !isTrusted(out) { return nil }
        return String(decoding: out, as: UTF8.self)
    }

    /// is_trusted_path_normalize: after lexical normalisation, under one of the system folders.
    private func isTrusted(_ path: [UInt8]) -> Bool {
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        var n: [UInt8] = []
        var i = 0
        func at(_ k: Int) -> UInt8 { k < path.count ? path[k] : 0 }
        while i < path.count {
            if path[i] == slash {
                if at(i + 1) == dot {
                    if at(i + 2) == dot, at(i + 3) == slash || at(i + 3) == 0 {
                        while let last = n.popLast(), last != slash {}
                        i += 3
                        continue
                    } else if at(i + 2) == slash || at(i + 2) == 0 {
                        i += 2
                        continue
                    }
                }
                if n.last == slash { i += 1; continue }
            }
            n.append(path[i])
            i += 1
        }
        if n.last != slash { n.append(slash) }
        return lists[defaultList].contains { n.starts(with: Array($0.utf8)) }
    }
}
