import SentinelCore
import Testing

/// /proc parsers on text captured from real processes on the build machine (Debian 12, kernel 6.x).
@Suite struct MapsParserTests {
    // Captured from a python3 that dlopen()ed "/tmp/cap dir/lib crypto.so.3", a file it then unlinked
    // (gone.so), a real file named "real.so (deleted)", and mapped a memfd.
    static let captured = """
    564670447000-564670448000 r--p 00000000 fe:00 20504                      /root/.pyenv/versions/3.11.7/bin/python3.11
    56468d679000-56468d808000 rw-p 00000000 00:00 0                          [heap]
    7f05d0266000-7f05d0267000 r--p 00000000 fe:00 16433552                   /tmp/cap dir/real.so (deleted)
    7f05d0267000-7f05d0268000 r-xp 00001000 fe:00 16433552                   /tmp/cap dir/real.so (deleted)
    7f05d026b000-7f05d026c000 r--p 00000000 fe:00 16433551                   /tmp/cap dir/gone.so (deleted)
    7f05d0280000-7f05d0281000 r--p 00000000 fe:00 16433550                   /tmp/cap dir/lib crypto.so.3
    7f05d0281000-7f05d0282000 r-xp 00001000 fe:00 16433550                   /tmp/cap dir/lib crypto.so.3
    7f05d02a6000-7f05d03d9000 rw-p 00000000 00:00 0 
    7f05d10eb000-7f05d10ec000 rw-s 00000000 00:01 1046                       /memfd:cffi-closure (deleted)
    7f05d10ec000-7f05d10f3000 r--s 00000000 fe:00 332619                     /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache
    7f05d10f5000-7f05d10f9000 r--p 00000000 00:00 0                          [vvar]
    7f05d10fb000-7f05d10fd000 r-xp 00000000 00:00 0                          [vdso]
    7fff02a71000-7fff02a92000 rw-p 00000000 00:00 0                          [stack]
    ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]

    """

    @Test func everyFieldOfEveryLine() throws {
        let maps = MapsParser.parse(Array(Self.captured.utf8))
        #expect(maps.count == 14)
        let exe = maps[0]
        #expect(exe.start == 0x5646_7044_7000 && exe.end == 0x5646_7044_8000)
        #expect(exe.permissions.text == "r--p" && exe.offset == 0)
        #expect(exe.deviceMajor == 0xfe && exe.deviceMinor == 0 && exe.inode == 20504)
        #expect(exe.kind == .file && exe.pathname == "/root/.pyenv/versions/3.11.7/bin/python3.11")
        #expect(exe.identity.description == "254:0 ino 20504")
        #expect(maps[1].kind == .heap && maps[1].pathname == "[heap]")
        #expect(maps[7].kind == .anonymous && maps[7].pathname == "")  // trailing space, no pathname
        #expect(maps[3].offset == 0x1000 && maps[3].permissions.execute && !maps[3].permissions.write)
        #expect(maps[8].kind == .memfd && maps[8].permissions.shared && maps[8].deletedMarker)
        #expect(maps[9].kind == .file && maps[9].permissions.text == "r--s")
        #expect(maps[10].kind == .pseudo && maps[11].kind == .vdso && maps[12].kind == .stack && maps[13].kind == .pseudo)
        #expect(maps[13].start == 0xffff_ffff_ff60_0000)
    }

    @Test func spacesAndTheDeletedMarker() {
        let maps = MapsParser.parse(Array(Self.captured.utf8))
        let spaced = maps[5]
        #expect(spaced.pathname == "/tmp/cap dir/lib crypto.so.3" && !spaced.deletedMarker)
        let gone = maps[4]
        #expect(gone.deletedMarker && gone.pathname == "/tmp/cap dir/gone.so (deleted)")
        #expect(gone.pathWithoutMarker == "/tmp/cap dir/gone.so")
        #expect(gone.mapFilesName == "7f05d026b000-7f05d026c000")
    }

    @Test func fileGroupsFoldByDeviceAndInode() {
        let groups = MapsParser.fileGroups(Array(Self.captured.utf8))
        #expect(groups.map(\.identity.inode) == [20504, 16433552, 16433551, 16433550, 1046, 332619])
        #expect(groups.map(\.mappings) == [1, 2, 1, 2, 1, 1])
        #expect(groups[3].pathname == "/tmp/cap dir/lib crypto.so.3")
        #expect(groups[4].kind == .memfd)
    }

    @Test func malformedAndTruncatedLinesAreSkipped() {
        let text = "garbage\n7f00-7f01 r-xp 00000000 fe:00\n7f05d0280000-7f05d0281000 r--p 00000000 fe:00 12 /lib/x.so\n7f05d0281000-7f05d0282"
        let maps = MapsParser.parse(Array(text.utf8))
        #expect(maps.count == 1 && maps[0].pathname == "/lib/x.so")
    }

    @Test func escapedNewlineInAPathname() {
        let maps = MapsParser.parse(Array("7f00-7f01 r--p 00000000 fe:00 12 /tmp/a\\012b.so\n".utf8))
        #expect(maps.first?.pathname == "/tmp/a\nb.so")
    }

    @Test func devicesBeyondEightBitsMatchStat() {
        // makedev(259, 65536) as glibc encodes it (NVMe partitions have majors above 255).
        #expect(MapsParser.makedev(259, 65536) == 0x0000_0000_1001_0300)
        #expect(FileIdentity(device: MapsParser.makedev(259, 65536), inode: 1).description == "259:65536 ino 1")
    }
}

@Suite struct DiskStateTests {
    let mapped = FileIdentity(device: 0xfe00, inode: 10)
    let other = FileIdentity(device: 0xfe00, inode: 11)

    @Test func realFileNamedDeletedIsCurrent() {
        let r = DiskState.judge(identity: mapped, pathname: "/opt/x.so (deleted)", deletedMarker: true) {
            $0 == "/opt/x.so (deleted)" ? .file(mapped) : .missing
        }
        #expect(r.path == "/opt/x.so (deleted)" && r.state == .current)
    }

    @Test func unlinkedFileIsDeleted() {
        let r = DiskState.judge(identity: mapped, pathname: "/opt/x.so (deleted)", deletedMarker: true) { _ in .missing }
        #expect(r.path == "/opt/x.so" && r.state == .deleted(now: nil))
    }

    @Test func renamedOverIsDeletedWithTheNewInode() {
        let r = DiskState.judge(identity: mapped, pathname: "/opt/x.so (deleted)", deletedMarker: true) {
            $0 == "/opt/x.so" ? .file(other) : .missing
        }
        #expect(r.state == .deleted(now: other))
    }

    @Test func strippedPathStillTheMappedInodeIsCurrent() {
        let r = DiskState.judge(identity: mapped, pathname: "/opt/x.so (deleted)", deletedMarker: true) {
            $0 == "/opt/x.so" ? .file(mapped) : .missing
        }
        #expect(r.path == "/opt/x.so" && r.state == .current)
    }

    @Test func deletedFileThatWasNamedDeleted() {
        // "x.so (deleted)" unlinked: the kernel prints the marker twice; strip exactly one.
        let r = DiskState.judge(identity: mapped, pathname: "/opt/x.so (deleted) (deleted)", deletedMarker: true) { _ in .missing }
        #expect(r.path == "/opt/x.so (deleted)" && r.state == .deleted(now: nil))
    }

    @Test func unmarkedPathNamingAnotherFileIsReplaced() {
        let r = DiskState.judge(identity: mapped, pathname: "/opt/x.so", deletedMarker: false) { _ in .file(other) }
        #expect(r.state == .replaced(now: other))
        let unknown = DiskState.judge(identity: mapped, pathname: "/opt/x.so", deletedMarker: false) { _ in .failed("Permission denied") }
        #expect(unknown.state == .unverified("Permission denied"))
    }
}

@Suite struct ProcTextTests {
    // Captured: /proc/<pid>/cgroup of a process moved into /sys/fs/cgroup/unified/sentinel-test.slice/
    // product-api.service on this hybrid (v1 + v2) machine.
    static let hybrid = """
    9:name=systemd:/
    8:pids:/
    4:memory:/process_api/e7e9ffd17ad51729f57376e6ee5a49e9
    1:cpu:/
    0::/sentinel-test.slice/product-api.service

    """

    @Test func unitFromTheUnifiedLine() {
        #expect(CgroupUnit.unit(cgroupFile: Self.hybrid) == "product-api.service")
    }

    @Test func unitFromNameSystemdOnV1() {
        let v1 = "11:cpuset:/\n1:name=systemd:/system.slice/product-api.service\n"
        #expect(CgroupUnit.unit(cgroupFile: v1) == "product-api.service")
        // On a hybrid host whose unified line says nothing, v1's name=systemd line decides.
        #expect(CgroupUnit.unit(cgroupFile: "1:name=systemd:/system.slice/a.service\n0::/\n") == "a.service")
    }

    @Test func bytesAndTextAgree() {
        for text in [Self.hybrid, "1:name=systemd:/system.slice/a.service\n0::/\n", "0::/system.slice/p.service/worker-3\n",
                     "0::/user.slice/session-4.scope\n", "12:cpu,name=systemd:/x.service\n", "", "0::/.service\n"] {
            let fromBytes = Array(text.utf8).withUnsafeBytes { CgroupUnit.unit(cgroupFile: $0) }
            #expect(fromBytes == CgroupUnit.unit(cgroupFile: text), "\(text)")
        }
    }

    @Test func workersInASubgroupBelongToTheUnit() {
        #expect(CgroupUnit.unit(cgroupFile: "0::/system.slice/product-api.service/worker-3\n") == "product-api.service")
        #expect(CgroupUnit.unit(cgroupFile: "0::/user.slice/user-0.slice/session-4.scope\n") == nil)
        #expect(CgroupUnit.unit(cgroupFile: "0::/\n") == nil)
        #expect(CgroupUnit.normalise("product-api") == "product-api.service")
        #expect(CgroupUnit.normalise("x.scope") == "x.scope")
    }

    @Test func statusCredentials() {
        let text = "Name:\tapp\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t42\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nFDSize:\t64\nGroups:\t4 27 \n"
        let s = ProcStatus.parse(Array(text.utf8))
        #expect(s.name == "app" && s.state == "S")
        #expect(s.credentials == ProcessCredentials(uid: 65534, effectiveUID: 65534, gid: 65534, effectiveGID: 65534, groups: [4, 27]))
        #expect(ProcStatus.parse(Array("Name:\tkthreadd\nState:\tZ (zombie)\nGroups:\t\n".utf8)).state == "Z")
    }
}

@Suite struct ProcessAuditTests {
    static func lib(_ path: String, ino: UInt64, soname: String, needed: [String] = [], version: String? = nil,
                    exports: OpenSSLExports = [], disk: DiskState = .current) -> MappedObject {
        let object = ELFObject(elfClass: .elf64, machine: 62, type: .sharedObject, soname: soname, needed: needed, exports: exports,
                               embeddedOpenSSL: version.map { EmbeddedOpenSSL(versionText: "OpenSSL \($0) 1 Jan 2026", openSSLDir: "/usr/lib/ssl") })
        return MappedObject(identity: FileIdentity(device: 0xfe00, inode: ino), path: path, mapsPathname: path, disk: disk, object: object)
    }

    @Test func splitNamesEachCopyAndItsConsumers() throws {
        let s = ProcessSnapshot(pid: 42, command: "app", executable: "/opt/product/app", files: [
            Self.lib("/usr/lib/x86_64-linux-gnu/libcrypto.so.3", ino: 1, soname: "libcrypto.so.3", version: "3.0.22", exports: .libcrypto),
            Self.lib("/opt/product/lib/libcrypto-27e744a7.so.3", ino: 2, soname: "libcrypto-27e744a7.so.3", version: "3.5.9", exports: .libcrypto),
            Self.lib("/opt/product/lib/_ssl.so", ino: 3, soname: "_ssl.so", needed: ["libcrypto-27e744a7.so.3"]),
            Self.lib("/usr/lib/python3/dist-packages/_openssl.abi3.so", ino: 4, soname: "_openssl.abi3.so", needed: ["libcrypto.so.3"]),
        ])
        let r = ProcessAudit.audit(s)
        #expect(r.name == "pid 42 (app)" && r.kind == "process" && r.state == .failed)
        let f = try #require(r.findings.first)
        #expect(f.code == .processSplitLibcrypto && f.severity == .critical)
        let copies = f.evidence["copies"]?.arrayValue ?? []
        #expect(copies.compactMap { $0["version"]?.stringValue } == ["3.0.22", "3.5.9"])
        #expect(copies[0]["needed_by"] == ["/usr/lib/python3/dist-packages/_openssl.abi3.so needs libcrypto.so.3"])
        #expect(copies[1]["needed_by"] == ["/opt/product/lib/_ssl.so needs libcrypto-27e744a7.so.3"])
        #expect(copies[1]["device_inode"]?.stringValue == "254:0 ino 2")
        #expect(f.fix.contains("crypto-sentinel scan /opt/product   # the bundle's linkage"))
        #expect(f.fix.contains("crypto-sentinel repair /opt/product --in-place   # the canonical-soname fix, verified; --rollback undoes it"))
    }

    @Test func sameSonameTwiceIsAmbiguous() throws {
        let s = ProcessSnapshot(pid: 7, files: [
            Self.lib("/a/libcrypto.so.3", ino: 1, soname: "libcrypto.so.3", exports: .libcrypto),
            Self.lib("/b/libcrypto.so.3", ino: 2, soname: "libcrypto.so.3", exports: .libcrypto),
            Self.lib("/a/libssl.so.3", ino: 3, soname: "libssl.so.3", needed: ["libcrypto.so.3"], exports: .libssl),
        ])
        let f = try #require(ProcessAudit.audit(s).findings.first { $0.code == .processSplitLibcrypto })
        let consumers = (f.evidence["copies"]?.arrayValue ?? []).compactMap { $0["needed_by"]?.arrayValue?.first?.stringValue }
        #expect(consumers.count == 2 && consumers.allSatisfy { $0.hasSuffix("(ambiguous: more than one mapped copy answers to this name)") })
    }

    @Test func deletedLibraryWithNameOnlyFallback() throws {
        let gone = MappedObject(identity: FileIdentity(device: 0xfe00, inode: 9), path: "/opt/lib/libssl.so.3",
                                mapsPathname: "/opt/lib/libssl.so.3 (deleted)", disk: .deleted(now: nil), object: nil,
                                identification: .name, readError: "Operation not permitted")
        let r = ProcessAudit.audit(ProcessSnapshot(pid: 5, unit: "product-api.service", files: [gone]))
        #expect(r.name == "product-api.service pid 5")
        let f = try #require(r.findings.first)
        #expect(f.code == .processDeletedLibrary && f.evidence["now_at_path"] == "nothing" && f.evidence["deleted_marker"] == true)
        #expect(f.fix == ["systemctl restart product-api.service   # it keeps running the old code until restarted"])
        #expect(r.warnings.count == 1)
    }

    @Test func fipsEnvDriftAndUnreadable() {
        let s = ProcessSnapshot(pid: 3, environment: TargetEnvironment(["OPENSSL_CONF": "/etc/ssl/other.cnf"]),
                                files: [Self.lib("/a/libcrypto.so.3", ino: 1, soname: "libcrypto.so.3", exports: .libcrypto)],
                                failures: [ReadFailure(file: "cwd", reason: .exited)])
        let r = ProcessAudit.audit(s, expectations: ProcessExpectations(
            expectFIPS: true, environment: ["OPENSSL_CONF": "/opt/p/fips.cnf", "OPENSSL_MODULES": ""]))
        #expect(r.findings.map(\.code.rawValue).sorted() == ["process-env-drift", "process-fips-not-loaded", "process-unreadable"])
        let drift = r.findings.first { $0.code == .processEnvDrift }
        #expect(drift?.evidence["differences"] == [["variable": "OPENSSL_CONF", "expected": "/opt/p/fips.cnf", "actual": "/etc/ssl/other.cnf"]])
        #expect(r.findings.first { $0.code == .processUnreadable }?.summary == "pid 3: cwd could not be read: process exited")
    }
}
