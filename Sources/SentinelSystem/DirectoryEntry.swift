import Glibc

/// A readdir() entry's d_type (DT_REG, DT_DIR, DT_LNK, …; DT_UNKNOWN where the file system does not say).
public func directoryEntryType(_ entry: UnsafeMutablePointer<dirent>) -> UInt8 {
    let offset = MemoryLayout<dirent>.offset(of: \dirent.d_type)!
    return (UnsafeRawPointer(entry) + offset).load(as: UInt8.self)
}

/// A readdir() entry's name, read in place. `entry.pointee.d_name` would copy the whole 256-byte array,
/// but glibc's records are only d_reclen long: the copy reads past the end of the buffer (AddressSanitizer
/// caught it on a short last record).
public func directoryEntryName(_ entry: UnsafeMutablePointer<dirent>) -> UnsafePointer<CChar> {
    let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
    return UnsafePointer((UnsafeRawPointer(entry) + offset).assumingMemoryBound(to: CChar.self))
}

/// The same name as its bytes (a name is bytes: it need not be UTF-8), valid until the next readdir().
public func directoryEntryBytes(_ entry: UnsafeMutablePointer<dirent>) -> UnsafeRawBufferPointer {
    let name = directoryEntryName(entry)
    return UnsafeRawBufferPointer(start: name, count: strlen(name))
}
