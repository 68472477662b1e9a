/// File names (and other names the system hands over) are bytes, not text. They are carried as
/// Strings that keep every byte: valid UTF-8 as it is, a backslash as `\\`, and each byte that is not
/// part of valid UTF-8 as `\xHH`. `bytes(_:)` undoes it exactly, so a path shown escaped is still
/// opened by its real bytes.
public enum EscapedBytes {
    public static func string<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        // Most names need nothing: no backslash, valid UTF-8.
        if !bytes.contains(UInt8(ascii: "\\")), let plain = String(validating: bytes, as: UTF8.self) { return plain }
        let bytes = Array(bytes)
        var out = ""
        var position = 0
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded):
                let scalar = Unicode.UTF8.decode(encoded)
                out += scalar == "\\" ? "\\\\" : String(Character(scalar))
                position += encoded.count
            case .error(let length):
                for byte in bytes[position..<position + length] { out += "\\x" + hex(byte) }
                position += length
            case .emptyInput:
                return out
            }
        }
    }

    /// The bytes `string(_:)` was made from. A backslash not followed by `\` or `x` and two hex
    /// digits is taken as it is (a String made elsewhere, e.g. by the user).
    public static func bytes(_ string: String) -> [UInt8] {
        let utf8 = Array(string.utf8)
        guard utf8.contains(UInt8(ascii: "\\")) else { return utf8 }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 1 < utf8.count {
                if utf8[i + 1] == UInt8(ascii: "\\") { out.append(utf8[i]); i += 2; continue }
                if utf8[i + 1] == UInt8(ascii: "x"), i + 3 < utf8.count,
                   let high = hexValue(utf8[i + 2]), let low = hexValue(utf8[i + 3]) {
                    out.append(high << 4 | low); i += 4; continue
                }
            }
            out.append(utf8[i])
            i += 1
        }
        return out
    }

    /// `bytes(_:)` NUL-terminated, for a system call.
    public static func cString(_ string: String) -> [CChar] {
        bytes(string).map { CChar(bitPattern: $0) } + [0]
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
