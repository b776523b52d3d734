/// Who may talk to the control socket: root, and members of the configured group. The socket's
/// file mode is the first gate; this check on the kernel-reported peer credentials
/// (SO_PEERCRED) is the one that cannot be loosened by a wrong `chmod`.
public struct ControlAccessPolicy: Sendable, Equatable {
    /// The allowed group's id, or nil when the group does not exist on this system (then only
    /// root is allowed).
    public let allowedGroup: UInt32?

    public init(allowedGroup: UInt32?) {
        self.allowedGroup = allowedGroup
    }

    /// - Parameters:
    ///   - uid: the peer's user id as reported by the kernel.
    ///   - groups: the peer's primary and supplementary group ids.
    public func permits(uid: UInt32, groups: [UInt32]) -> Bool {
        if uid == 0 { return true }
        guard let allowedGroup else { return false }
        return groups.contains(allowedGroup)
    }
}
