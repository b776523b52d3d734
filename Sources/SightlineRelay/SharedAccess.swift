import SightlineServerAccess

/// The token file format is shared with the archive server; the relay's users keep the name.
public typealias DeviceTokens = SightlineServerAccess.DeviceTokens
