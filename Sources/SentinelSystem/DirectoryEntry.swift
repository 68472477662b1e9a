import Glibc

/// A readdir() entry's name, read in place. `entry.pointee.d_name` would copy the whole 256-byte array,
/// but glibc's records are only d_reclen long: the copy reads past the end of the buffer (AddressSanitizer
/// caught it on a short last record).
public func directoryEntryName(_ entry: UnsafeMutablePointer<dirent>) -> UnsafePointer<CChar> {
    let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
    return UnsafePointer((UnsafeRawPointer(entry) + offset).assumingMemoryBound(to: CChar.self))
}
