import Foundation
import Testing
@testable import SentinelCore

/// The validation data: the copy built in is the shipped file, errors name file:line, verdicts by date.
@Suite struct FIPSValidationsTests {
    static let dataFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("data/fips-validations.json").path

    @Test func theBuiltInCopyIsTheShippedFile() throws {
        let shipped = try String(contentsOfFile: Self.dataFile, encoding: .utf8)
        #expect(FIPSValidations.embeddedText == shipped.trimmingCharacters(in: .newlines),
                "edit data/fips-validations.json, then copy it into FIPSValidations+Embedded.swift")
        let data = FIPSValidations.embedded
        #expect(data.origin == "embedded" && !data.entries.isEmpty)
        #expect(data.entries.allSatisfy { !$0.source.isEmpty }, "every entry says where it comes from")
    }

    @Test func verdictsFollowStatusAndSunset() {
        let data = FIPSValidations.embedded
        let name = "OpenSSL FIPS Provider"
        #expect(data.verdict(name: name, version: "3.1.2", today: "2026-12-07") == .validated(data.entries[1]))
        // #4985's sunset is 2030-03-10: afterwards it counts as historical without a new data file.
        #expect(data.verdict(name: name, version: "3.1.2", today: "2030-03-11") == .historical(data.entries[1]))
        #expect(data.verdict(name: name, version: "3.0.9", today: "2026-12-07") == .historical(data.entries[0]))
        #expect(data.verdict(name: name, version: "3.5.4", today: "2026-12-07") == .unvalidated(pending: data.entries[2]))
        #expect(data.verdict(name: name, version: "3.5.9", today: "2026-12-07") == .unvalidated(pending: nil))
        #expect(data.verdict(name: "Red Hat Enterprise Linux 9 - OpenSSL FIPS Provider", version: "3.1.2", today: "2026-12-07")
                == .unvalidated(pending: nil), "the name must match too")
    }

    @Test func errorsNameTheFileAndLine() {
        func error(_ text: String) -> String? {
            do { _ = try FIPSValidations.parse(Array(text.utf8), origin: "v.json"); return nil } catch { return error.description }
        }
        #expect(error("{\n  \"schema_version\": 1,\n  \"checked\": \"2026-12-07\",\n  oops\n}") == "v.json:4: not valid JSON (column 3)")
        #expect(error(#"{"schema_version": 2, "checked": "2026-12-07", "modules": []}"#) == "v.json:1: schema_version must be 1")
        let twoModules = """
        {"schema_version": 1, "checked": "2026-12-07", "modules": [
          {"name": "A {not a brace}", "versions": ["1"], "status": "active", "certificate": 1, "source": "s"},
          {"name": "B", "versions": ["1"], "status": "active", "certificate": null, "source": "s"}
        ]}
        """
        #expect(error(twoModules) == "v.json:3: module 2: an entry with status active needs its certificate number")
        #expect(error(#"{"schema_version": 1, "checked": "12/07/2026", "modules": []}"#) == "v.json:1: \"checked\" must be a date (YYYY-MM-DD)")
    }
}
