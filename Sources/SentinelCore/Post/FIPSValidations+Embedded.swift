// data/fips-validations.json as built in (FIPSValidationsTests keeps the two identical: edit the data file,
// then copy it here between the delimiters).
extension FIPSValidations {
    static let embeddedText = #"""
    {
      "schema_version": 1,
      "checked": "2026-12-07",
      "note": "OpenSSL FIPS provider versions and their CMVP certificates. NIST's CMVP pages (csrc.nist.gov/projects/cryptographic-module-validation-program) are the authority; these entries were cross-checked against public records that cite them, not read from NIST's site, which was out of reach. Copy this file to /etc/crypto-sentinel/fips-validations.json and edit it there to update it without a new build.",
      "modules": [
        {
          "name": "OpenSSL FIPS Provider",
          "versions": ["3.0.0", "3.0.8", "3.0.9"],
          "standard": "FIPS 140-2",
          "certificate": 4282,
          "status": "historical",
          "sunset": "2026-09-21",
          "source": "CMVP certificate #4282; FIPS 140-2 certificates moved to the historical list on 2026-09-22"
        },
        {
          "name": "OpenSSL FIPS Provider",
          "versions": ["3.1.2"],
          "standard": "FIPS 140-3",
          "certificate": 4985,
          "status": "active",
          "sunset": "2030-03-10",
          "source": "CMVP certificate #4985 (FIPS 140-3, security level 1)"
        },
        {
          "name": "OpenSSL FIPS Provider",
          "versions": ["3.5.4"],
          "standard": "FIPS 140-3",
          "certificate": null,
          "status": "in-review",
          "sunset": null,
          "source": "submitted to the CMVP in 2025-10 (modules in process list)"
        }
      ]
    }
    """#
}
