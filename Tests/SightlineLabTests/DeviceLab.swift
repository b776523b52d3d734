import SightlineTesting
import Testing

/// Every device test shares the guest's drivers (unbinding vivid affects all), so they run one
/// after another, never in parallel.
@Suite("Devices in the kernel lab", .serialized, .enabled(if: KernelLab.insideGuest, Comment(rawValue: KernelLab.notInGuest)))
struct DeviceLab {}
