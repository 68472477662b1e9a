import SentinelCore
import Testing

@Suite struct HostFIPSStateTests {
    @Test func theKernelsFilesAsTheyAre() {
        let on = HostFIPSState.parse(fipsEnabled: "1\n", fipsName: "Linux Kernel Cryptographic API\n", fipsVersion: "6.6.0\n",
                                     cryptoPoliciesConfig: "# comment\n\n  FIPS  \n")
        #expect(on == HostFIPSState(enabled: true, name: "Linux Kernel Cryptographic API", version: "6.6.0", cryptoPolicy: "FIPS"))
        #expect(on.finding(target: "t", expectFIPS: true) == nil)
        let off = HostFIPSState.parse(fipsEnabled: "0\n", fipsName: nil, fipsVersion: nil, cryptoPoliciesConfig: nil)
        #expect(off.enabled == false && off.summary == "host FIPS mode: off")
        #expect(off.finding(target: "t", expectFIPS: true)?.code == .hostFIPSDisabled)
        #expect(off.finding(target: "t", expectFIPS: false) == nil)
        // No file, or anything but 0/1: unknown, and unknown is not reported as disabled.
        for text in [nil, "", "2\n", "yes"] as [String?] {
            let s = HostFIPSState.parse(fipsEnabled: text, fipsName: nil, fipsVersion: nil, cryptoPoliciesConfig: nil)
            #expect(s.enabled == nil && s.finding(target: "t", expectFIPS: true) == nil, "\(String(describing: text))")
        }
        #expect(HostFIPSState(json: on.json) == on)
    }
}
