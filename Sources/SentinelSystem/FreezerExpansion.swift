import Glibc
import SentinelCore

/// The files of PyInstaller onefile archives as the loader will find them once extracted: each
/// member at its path below `<executable>!` (normalised), with what is needed to read it again.
public final class ArchivedFiles: Sendable {
    struct Source: Sendable {
        var executable: String
        var range: FileRange
        var entry: CArchive.Entry
        var archiveLength: UInt32
    }

    let files: [String: (file: LoadedFile, source: Source)]
    /// The extraction folders: a path below one that names no member is missing (nothing on disk
    /// is looked at for it).
    let folders: [String]

    init(files: [String: (file: LoadedFile, source: Source)] = [:], folders: [String] = []) {
        self.files = files
        self.folders = folders
    }

    public static let none = ArchivedFiles()

    /// nil: not below an extraction folder (the disk answers).
    func probe(_ path: String) -> LoaderProbe? {
        guard let folder = folders.first(where: { path.hasPrefix($0 + "/") }) else { return nil }
        let name = String(path.dropFirst(folder.count + 1))
        guard let normal = CArchive.normalizedMemberName(name), let hit = files[folder + "/" + normal] else { return .missing }
        return .object(hit.file)
    }

    /// Byte comparison of two members (inflated again: duplicates of one size are rare).
    func contentsEqual(_ a: String, _ b: String) -> Bool? {
        guard let x = files[a]?.source, let y = files[b]?.source else { return nil }
        guard x.entry.uncompressedLength == y.entry.uncompressedLength else { return false }
        let bytes = { (s: Source) -> [UInt8]? in
            let fd = open(EscapedBytes.cString(s.executable), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            let start = s.range.offset + s.range.size - UInt64(s.archiveLength)
            return try? PyInstallerArchive.withContents(fd, start: start, entry: s.entry, onlyELF: false, scratch: .init()) { Array($0) }
        }
        guard let first = bytes(x), let second = bytes(y) else { return false }
        return first == second
    }
}

/// What the freezer-aware part of a scan adds to a walk's inventory.
struct FreezerExpansion {
    var inventory: BundleInventory
    var layout: BundleLayout
    var archived: ArchivedFiles
    /// Files outside the tree the inventory now holds, with their stamps (a cached audit checks them).
    var outsideStamps: [(path: String, stamp: ProbeStamp)]

    /// `members`: add a onefile archive's ELF members (false: its layout only).
    static func expand(_ base: BundleInventory, catalog: ELFCatalog, members: Bool = true) -> FreezerExpansion {
        var inventory = base
        var programs: [BundleLayout.PyInstallerProgram] = []
        var files: [String: (file: LoadedFile, source: ArchivedFiles.Source)] = [:]
        var folders: [String] = []
        for f in base.elfFiles.sorted(by: { $0.relativePath < $1.relativePath }) {
            guard let range = f.file.object.pyinstallerArchive else { continue }
            let archive: PyInstallerArchive
            switch catalog.archive(path: f.file.path, identity: f.file.identity, range: range) {
            case .success(let read): archive = read
            case .failure(let error):
                inventory.warnings.append("\(f.relativePath): \(error)")
                continue
            }
            programs.append(.init(path: f.file.path, onefile: archive.isOnefile, contentsDirectory: archive.contentsDirectory))
            guard archive.isOnefile, members else { continue }
            let folder = BundleLayout.extractionFolder(of: f.file.path)
            folders.append(folder)
            var added: [String: Int] = [:]
            for member in archive.members {
                let path = folder + "/" + member.name
                let file = LoadedFile(path: path, identity: FileIdentity(device: f.file.identity.device, inode: f.file.identity.inode,
                                                                         member: member.index), object: member.object)
                files[path] = (file, .init(executable: f.file.path, range: range, entry: archive.entries[member.index],
                                           archiveLength: archive.cookie.archiveLength))
                added[member.name] = inventory.elfFiles.count
                inventory.elfFiles.append(BundleFile(file: file, relativePath: f.relativePath + "!/" + member.name, size: member.size))
            }
            for link in archive.symlinks {
                guard let i = added[link.target] else { continue }
                inventory.elfFiles[i].aliases.append(f.relativePath + "!/" + link.name)
                files[folder + "/" + link.name] = files[folder + "/" + link.target]
            }
            inventory.warnings += archive.warnings.map { "\(f.relativePath)!/\($0)" }
            inventory.fileCount += archive.entries.count
        }
        var config: String?
        if base.otherFiles.contains("pyvenv.cfg"), case .success(let bytes) = ProcReader.readWhole(join(base.root, "pyvenv.cfg"), limit: 64 << 10) {
            config = String(decoding: bytes, as: UTF8.self)
        }
        let layout = BundleLayout.detect(inventory: inventory, pyinstaller: programs, pyvenvConfig: config)
        var stamps: [(path: String, stamp: ProbeStamp)] = []
        for folder in layout.outside {
            stamps.append((folder, ProbeStamp.stamp(folder)))
            for (path, stamp) in regularFiles(in: folder) {
                stamps.append((path, .present(stamp)))
                switch catalog.entry(path: path, stamp: stamp) {
                case .elf(let object):
                    inventory.elfFiles.append(BundleFile(file: LoadedFile(path: path, identity: stamp.identity, object: object),
                                                         relativePath: path, size: stamp.size))
                case .notELF: break
                case .unreadable(let reason): inventory.warnings.append("\(path): \(reason)")
                }
            }
        }
        return FreezerExpansion(inventory: inventory, layout: layout, archived: ArchivedFiles(files: files, folders: folders),
                                outsideStamps: stamps)
    }

    /// The regular files directly in `folder` (a venv's lib-dynload), by name.
    static func regularFiles(in folder: String) -> [(String, FileStamp)] {
        guard let dir = opendir(EscapedBytes.cString(folder)) else { return [] }
        defer { closedir(dir) }
        var out: [(String, FileStamp)] = []
        while let entry = readdir(dir) {
            let name = EscapedBytes.string(directoryEntryBytes(entry))
            guard name != ".", name != ".." else { continue }
            let path = folder + "/" + name
            var st = stat()
            guard stat(EscapedBytes.cString(path), &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            out.append((path, FileStamp(st)))
        }
        return out.sorted { $0.0 < $1.0 }
    }
}
