import Foundation
import Glibc
import SentinelCore
import SentinelTestSupport
import Testing

/// The fleet paths end to end with the engines operators already run, all on loopback, every process
/// started and stopped (by pid) by the test: the daemon next to the real split service, Debian's
/// prometheus-node-exporter, two Debian prometheus servers, systemd-journal-upload and
/// systemd-journal-remote. The engines run as nobody, as their packaged units run them unprivileged.
@Suite(.serialized) struct FleetTests {
    static let rules = FixtureScripts.packageRoot + "/contrib/prometheus/crypto-sentinel.rules.yml"

    /// textfile → node_exporter → Prometheus with the shipped rules (unchanged) → a second Prometheus
    /// federating the first. The split alert has no `for:`, so it must fire; the target rule's
    /// `for: 15m` keeps it pending, which is asserted as such rather than shortened.
    @Test func theSplitAlertFiresThroughNodeExporterAndFederationThenResolvesAfterTheFix() throws {
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let textfiles = dir + "/textfile"
        try FileManager.default.createDirectory(atPath: textfiles, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        let service = try SplitService()
        defer { service.remove() }
        let d = try DaemonUnderTest(config: service.daemonConfig("textfile: \(textfiles)/crypto-sentinel.prom"))
        defer { d.remove() }

        let nodeExporter = try LoopbackServer.start(logPath: dir + "/node-exporter.log", as: "65534") { port in
            ["/usr/bin/prometheus-node-exporter", "--web.listen-address=127.0.0.1:\(port)",
             "--collector.disable-defaults", "--collector.textfile", "--collector.textfile.directory=" + textfiles]
        }
        defer { nodeExporter.stop() }
        let appliance = try PrometheusServer(dir: dir, name: "appliance", ruleFiles: [Self.rules],
                                             scrape: "{job_name: node, static_configs: [{targets: ['\(nodeExporter.address)']}]}")
        defer { appliance.stop() }
        // The fleet's server: /federate of the appliance's server, its labels kept (honor_labels).
        // Federated samples carry their timestamps, so this server writes no staleness marker when a
        // series ends: it drops out after the lookback delta, 5 min by default, 10 s here.
        let central = try PrometheusServer(dir: dir, name: "central", flags: ["--query.lookback-delta=10s"], scrape: """
            {job_name: federate, honor_labels: true, metrics_path: /federate, \
            params: {'match[]': ['{__name__=~"crypto_sentinel_.*"}', '{__name__="ALERTS"}']}, \
            static_configs: [{targets: ['\(appliance.address)']}]}
            """)
        defer { central.stop() }

        func isSplitAlert(_ a: [String: String]) -> Bool {
            a["alertname"] == "CryptoSentinelCriticalFinding" && a["target"] == "product-api" && a["code"] == "process-split-libcrypto"
        }
        let fired = poll(seconds: 180) { (try? appliance.alerts())?.first { isSplitAlert($0) && $0["alertstate"] == "firing" } }
        let alert = try #require(fired, """
            no firing split alert; alerts: \((try? appliance.alerts()) ?? []); textfile: \
            \((try? String(contentsOfFile: textfiles + "/crypto-sentinel.prom", encoding: .utf8)) ?? "absent"); \
            daemon: \(d.stderr); node_exporter: \(nodeExporter.log); prometheus: \(appliance.log)
            """)
        let firingAfter = Date().timeIntervalSince(d.started)
        #expect(alert["severity"] == "critical")
        #expect(alert["instance"] == nodeExporter.address && alert["job"] == "node", "\(alert)")
        let unhealthy = poll(seconds: 30) { (try? appliance.alerts())?.first { $0["alertname"] == "CryptoSentinelTargetUnhealthy" && $0["target"] == "product-api" } }
        #expect(unhealthy?["alertstate"] == "pending" && unhealthy?["state"] == "failed", "for: 15m keeps it pending: \(String(describing: unhealthy))")

        // The fleet path: the finding series and the firing alert on the central server, with the
        // appliance's instance label.
        let finding = #"crypto_sentinel_finding{target="product-api",code="process-split-libcrypto"}"#
        let federated = poll(seconds: 60) { (try? central.series(finding))?.first }
        #expect(federated?["severity"] == "critical" && federated?["instance"] == nodeExporter.address && federated?["job"] == "node",
                "\(String(describing: federated)); central: \(central.log)")
        let federatedAlert = poll(seconds: 60) {
            (try? central.series(#"ALERTS{alertname="CryptoSentinelCriticalFinding",alertstate="firing",target="product-api"}"#))?.first
        }
        #expect(federatedAlert?["code"] == "process-split-libcrypto" && federatedAlert?["instance"] == nodeExporter.address,
                "\(String(describing: federatedAlert))")
        let federatedAfter = Date().timeIntervalSince(d.started)

        // The fix: a restart on the canonical bundle. Resolved means the fix was scraped (the target's
        // `failed` gauge at 0, not merely gone) and no critical or failed-target alert is left for it.
        // (It stays degraded: the canonical bundle's own libcrypto finds no CA certificates, a warning.)
        let healing = Date()
        try service.heal()
        let notFailed = #"crypto_sentinel_target_state{target="product-api",state="failed"} == 0"#
        let leftovers = #"{__name__=~"ALERTS|crypto_sentinel_finding",target="product-api",severity="critical"} or ALERTS{target="product-api",state="failed"}"#
        func resolved(on server: PrometheusServer) -> Bool? {
            guard let fixed = try? server.series(notFailed), !fixed.isEmpty, let left = try? server.series(leftovers) else { return nil }
            return left.isEmpty ? true : nil
        }
        #expect(poll(seconds: 180) { resolved(on: appliance) } != nil,
                "left: \((try? appliance.series(leftovers)) ?? []); alerts: \((try? appliance.alerts()) ?? []); daemon: \(d.stderr)")
        let resolvedAfter = Date().timeIntervalSince(healing)
        #expect(poll(seconds: 120) { resolved(on: central) } != nil, "left on the central server: \((try? central.series(leftovers)) ?? [])")
        print(String(format: "fleet: split alert firing %.1f s after the daemon started, federated by %.1f s; resolved %.1f s after the restart, on the central server by %.1f s",
                     firingAfter, federatedAfter, resolvedAfter, Date().timeIntervalSince(healing)))
    }

    /// systemd-journal-upload → systemd-journal-remote (plain HTTP on loopback): the daemon's entries
    /// arrive with every field, and `journalctl -x --file` explains them from the catalog. A first
    /// upload with --follow=no from a cursor taken before the daemon started, then the uploader as its
    /// unit runs it (following, resuming from --save-state) carries the resolution.
    @Test func journalUploadCarriesTheAlertsToJournalRemoteWithEveryFieldAndTheCatalog() throws {
        let journald = try JournaldLease()
        defer { journald.release() }
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The local journal's last entry now: the upload starts there (a hand-started journald writes
        // /run/log/journal/MACHINE-ID; the uploader reads the local journals as journalctl does).
        let (_, last) = try JournaldLease.runTool(JournaldLease.journalctl, ["--no-pager", "-o", "json", "-n", "1"])
        let cursor = ((try? JSONSerialization.jsonObject(with: Data(last.utf8))) as? [String: Any])?["__CURSOR"] as? String

        let service = try SplitService()
        defer { service.remove() }
        let d = try DaemonUnderTest(config: service.daemonConfig())
        defer { d.remove() }
        let ours = ["_PID=\(d.pid)", "SENTINEL_CODE=process-split-libcrypto", "SENTINEL_TARGET=product-api"]
        let localNew = try JournaldLease.entries(matching: ours + ["SENTINEL_STATE=new"], since: d.started, timeout: 90)
        try #require(!localNew.isEmpty, "no local journal entry; daemon: \(d.stderr)")

        let received = dir + "/remote"
        try FileManager.default.createDirectory(atPath: received, withIntermediateDirectories: false)
        chown(received, 65534, 65534)
        let remoteFile = received + "/remote.journal"
        let remote = try LoopbackServer.start(logPath: dir + "/journal-remote.log", as: "65534") { port in
            ["/lib/systemd/systemd-journal-remote", "--listen-http=127.0.0.1:\(port)", "--split-mode=none", "--output=" + remoteFile]
        }
        defer { remote.stop() }
        let state = dir + "/upload.state"
        let upload = ["/lib/systemd/systemd-journal-upload", "--url=http://\(remote.address)", "--save-state=" + state]

        let started = Date()
        let once = try Subprocess.run(upload + ["--follow=no"] + (cursor.map { ["--after-cursor=" + $0] } ?? []))
        #expect(once.status == 0, "\(once.stderr)")
        #expect(((try? String(contentsOfFile: state, encoding: .utf8)) ?? "").contains("LAST_CURSOR="), "no cursor saved")
        func remoteEntries(_ matches: [String], count: Int) -> [[String: Any]] {
            poll(seconds: 60) { () -> [[String: Any]]? in
                guard let r = try? Subprocess.run(["journalctl", "--no-pager", "-o", "json", "--file", remoteFile] + matches) else { return nil }
                let entries = r.text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
                return entries.count >= count ? entries : nil
            } ?? []
        }
        let remoteNew = remoteEntries(ours + ["SENTINEL_STATE=new"], count: localNew.count)
        let shippedAfter = Date().timeIntervalSince(started)
        try #require(remoteNew.count >= localNew.count, "\(remoteNew.count) of \(localNew.count) entries arrived; journal-remote: \(remote.log)")
        Self.expectSameFields(localNew, remoteNew)
        for e in remoteNew {
            #expect(e["MESSAGE_ID"] as? String == FindingCode.processSplitLibcrypto.messageID)
            #expect(e["PRIORITY"] as? String == "2")
            #expect(e["SENTINEL_STATE"] as? String == "new")
            let copies = e.keys.filter { $0.hasPrefix("SENTINEL_EV_COPIES_") && $0.hasSuffix("_PATH") }.compactMap { e[$0] as? String }
            #expect(copies.count == 2 && copies.contains { $0.hasPrefix(service.work + "/lib/") }, "evidence: \(copies)")
        }

        // The catalog explains the received entry: its Subject is filled from the fields that travelled.
        let catalog = try CatalogRoot()
        defer { catalog.remove() }
        let (xStatus, explained) = try catalog.explain(["--file", remoteFile] + ours)
        #expect(xStatus == 0, "\(explained)")
        #expect(explained.contains("Subject: process-split-libcrypto (critical) on product-api: new"), "\(explained)")
        #expect(explained.contains("Why it matters:") && explained.contains("How to fix it:"), "\(explained)")

        // The uploader as its unit runs it: following the journal, resuming from the saved state.
        let follower = Process()
        follower.executableURL = URL(fileURLWithPath: upload[0])
        follower.arguments = Array(upload.dropFirst())
        follower.standardOutput = FileHandle.nullDevice
        follower.standardError = FileHandle.nullDevice
        try follower.run()
        defer { follower.stop() }
        let healing = Date()
        try service.heal()
        let localResolved = try JournaldLease.entries(matching: ours + ["SENTINEL_STATE=resolved"], since: d.started, count: localNew.count, timeout: 90)
        try #require(localResolved.count >= localNew.count, "the split never resolved locally; daemon: \(d.stderr)")
        let remoteResolved = remoteEntries(ours + ["SENTINEL_STATE=resolved"], count: localResolved.count)
        let resolvedAfter = Date().timeIntervalSince(healing)
        try #require(remoteResolved.count >= localResolved.count, "\(remoteResolved.count) of \(localResolved.count) resolutions arrived; journal-remote: \(remote.log)")
        Self.expectSameFields(localResolved, remoteResolved)
        #expect(remoteResolved.allSatisfy { $0["PRIORITY"] as? String == "5" && $0["MESSAGE_ID"] as? String == FindingCode.processSplitLibcrypto.messageID })
        // systemd 252's uploader sends the entry at its start cursor too (--after-cursor or the saved
        // state alike), so resuming may repeat the first upload's last entry: at most one extra.
        let newOnce = remoteEntries(ours + ["SENTINEL_STATE=new"], count: 0).count
        #expect((localNew.count...localNew.count + 1).contains(newOnce), "\(newOnce) new entries for \(localNew.count)")
        print(String(format: "fleet: journal upload of the split alerts %.1f s; the resolution on journal-remote %.1f s after the restart",
                     shippedAfter, resolvedAfter))
    }

    /// Every field of each local entry (cursors and the receiver's own `__` fields aside) is in one
    /// received entry with the same value.
    static func expectSameFields(_ local: [[String: Any]], _ remote: [[String: Any]]) {
        for entry in local {
            let fields = entry.filter { !$0.key.hasPrefix("__") }.mapValues { "\($0)" }
            #expect(fields.keys.contains { $0.hasPrefix("SENTINEL_EV_") })
            #expect(remote.contains { r in fields.allSatisfy { r[$0.key].map { "\($0)" } == $0.value } },
                    "not received intact: \(fields.sorted { $0.key < $1.key })")
        }
    }
}

/// Debian's prometheus as nobody, with its own storage, on loopback: 1 s scrape and evaluation
/// intervals, one scrape job (a YAML flow mapping). Queried over its HTTP API with curl.
struct PrometheusServer {
    let server: LoopbackServer
    var address: String { server.address }
    var log: String { server.log }

    init(dir: String, name: String, ruleFiles: [String] = [], flags: [String] = [], scrape job: String) throws {
        let storage = dir + "/" + name
        try FileManager.default.createDirectory(atPath: storage, withIntermediateDirectories: false)
        chown(storage, 65534, 65534)
        let config = dir + "/\(name).yml"
        try """
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            rule_files: [\(ruleFiles.map { "'\($0)'" }.joined(separator: ", "))]
            scrape_configs: [\(job)]

            """.write(toFile: config, atomically: true, encoding: .utf8)
        server = try LoopbackServer.start(logPath: dir + "/\(name).log", as: "65534") { port in
            ["/usr/bin/prometheus", "--config.file=" + config, "--storage.tsdb.path=" + storage, "--web.listen-address=127.0.0.1:\(port)"] + flags
        }
    }

    func stop() { server.stop() }

    /// GET /api/v1/PATH: the answer's `data`.
    func api(_ path: String, _ query: [String] = []) throws -> Any? {
        let r = try Subprocess.run(["curl", "-s", "-S", "--fail", "--max-time", "10", "-G"] + query.flatMap { ["--data-urlencode", $0] }
                                   + ["http://\(address)/api/v1/" + path])
        guard r.status == 0, let json = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any],
              json["status"] as? String == "success" else { throw FixtureError(message: "GET /api/v1/\(path): \(r.text)\(r.stderr)") }
        return json["data"]
    }

    /// The labels of each series `promql` selects now.
    func series(_ promql: String) throws -> [[String: String]] {
        let data = try api("query", ["query=" + promql]) as? [String: Any]
        return (data?["result"] as? [[String: Any]] ?? []).compactMap { $0["metric"] as? [String: String] }
    }

    /// Active (pending or firing) alerts: their labels, and `alertstate`.
    func alerts() throws -> [[String: String]] {
        let data = try api("alerts") as? [String: Any]
        return (data?["alerts"] as? [[String: Any]] ?? []).compactMap { a in
            (a["labels"] as? [String: String]).map { $0.merging(["alertstate": a["state"] as? String ?? ""]) { old, _ in old } }
        }
    }
}
