/// The product version, shared by all three binaries.
public enum SightlineVersion {
    public static let current = "0.1.0"
}
