import SentinelCore
import Testing

@Suite struct EscapedBytesTests {
    @Test func validUTF8StaysAndInvalidBytesAreHex() {
        #expect(EscapedBytes.string(Array("lib/é.so".utf8)) == "lib/é.so")
        #expect(EscapedBytes.string([0x6c, 0x69, 0x62, 0xff]) == "lib\\xff")
        #expect(EscapedBytes.string([0xc3]) == "\\xc3")  // a cut two-byte sequence
        #expect(EscapedBytes.string(Array("a\\b".utf8)) == "a\\\\b")
        #expect(EscapedBytes.string(Array("\u{1b}[31m".utf8)) == "\u{1b}[31m")  // text; the renderers escape it
    }

    @Test func bytesAreRecoveredExactly() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...24, using: &rng)).map { _ in
                [UInt8(ascii: "\\"), UInt8(ascii: "x"), UInt8(ascii: "f"), 0xff, 0xc3, 0xa9, 0x80, 0x41].randomElement(using: &rng)!
            }
            #expect(EscapedBytes.bytes(EscapedBytes.string(bytes)) == bytes, "\(bytes)")
        }
        #expect(EscapedBytes.cString("lib\\xff") == [0x6c, 0x69, 0x62, -1, 0])
    }

    @Test func textRendererEscapesControlCharacters() {
        #expect(TextRenderer.shown("a\u{1b}[31m\nb\r\u{202e}c\u{85}") == "a\\u{1b}[31m\\u{a}b\\u{d}\\u{202e}c\\u{85}")
        #expect(TextRenderer.shown("plain é") == "plain é")
    }
}
