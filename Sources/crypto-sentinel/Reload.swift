import ArgumentParser
import FoundationEssentials
import Glibc
import SentinelSystem

/// The unit's ExecReload: SIGHUP from the program itself, so `systemctl reload` needs no kill(1)
/// (procps), which a minimal appliance image does not have.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Ask a running daemon to re-read its configuration (SIGHUP).",
        discussion: """
        Sends SIGHUP to the daemon whose pid is given (--pid, else $MAINPID, which systemd sets for \
        ExecReload=), after checking that the process is a crypto-sentinel. The daemon then validates \
        its file and swaps it in, or keeps the running configuration and says why: in the Status: line \
        of systemctl status, a config-rejected journal entry, and "reload_error" in GET /v1/health. \
        This command returns once the signal is sent; it does not wait for the outcome.

        Exit status: 0 signalled; 2 no such process, not a crypto-sentinel, or not permitted.

        Examples:
          systemctl reload crypto-sentinel    # ExecReload= runs this with $MAINPID
          crypto-sentinel reload --pid "$(systemctl show -P MainPID crypto-sentinel)"
          crypto-sentinel daemon --check && crypto-sentinel reload --pid 1234
        """)

    @Option(help: ArgumentHelp("The daemon's process id.", discussion: "Default: $MAINPID (set by systemd for ExecReload=)."))
    var pid: Int32?

    func run() throws {
        let given = pid ?? ProcessInfo.processInfo.environment["MAINPID"].flatMap { Int32($0) }
        guard let target = given, target > 0 else {
            warn("reload: no daemon pid: pass --pid PID (systemd sets $MAINPID for ExecReload=)")
            throw ExitCode(2)
        }
        // comm is the executable's name at exec (15 bytes at most) and survives an upgrade of the file.
        let name: String
        switch ProcReader.readWhole("/proc/\(target)/comm", limit: 64) {
        case .success(let comm): name = String(decoding: comm.prefix { $0 != 0x0a }, as: UTF8.self)
        case .failure(let e):
            warn("reload: no process \(target): \(String(cString: strerror(e.code)))")
            throw ExitCode(2)
        }
        guard name == "crypto-sentinel" else {
            warn("reload: process \(target) is \(name), not crypto-sentinel: not signalled")
            throw ExitCode(2)
        }
        guard kill(target, SIGHUP) == 0 else {
            warn("reload: cannot signal \(target): \(String(cString: strerror(errno)))")
            throw ExitCode(2)
        }
    }
}
