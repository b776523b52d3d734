import Foundation

/// Users and groups from the system's databases (NSS), for the control socket's access check.
public enum SystemAccounts {
    /// The id of group `name`, or nil when no such group exists (`getgrnam_r(3)`).
    public static func groupID(named name: String) -> UInt32? {
        var group = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getgrnam_r(name, &group, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return group.gr_gid
    }

    /// The primary and supplementary groups of `uid` (`getpwuid_r(3)` + `getgrouplist(3)`),
    /// always including `primaryGroup` as reported for the peer.
    public static func groups(ofUser uid: UInt32, primaryGroup: UInt32) -> [UInt32] {
        var passwd = Glibc.passwd()
        var result: UnsafeMutablePointer<Glibc.passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwuid_r(uid, &passwd, &buffer, buffer.count, &result) == 0, result != nil, let name = passwd.pw_name else {
            return [primaryGroup]
        }
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, primaryGroup, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, primaryGroup, &groups, &count) >= 0 else { return [primaryGroup] }
        }
        return Array(groups.prefix(Int(count)))
    }
}
