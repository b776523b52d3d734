import CPulse
import Foundation
import SightlineCore

/// One short conversation with a Pulse server on the calling thread: a private `pa_mainloop`
/// and a context, connected in `init` and dropped in `deinit`. For questions asked now and
/// then (is a server there, which sources does it have); streams have their own threads.
final class PulseQuery {
    private let mainloop: OpaquePointer
    private let context: OpaquePointer
    private let deadline: ContinuousClock.Instant

    /// Connects within `timeout`, or throws why not.
    init(server: String?, timeout: Duration) throws(AudioError) {
        deadline = .now + timeout
        guard let mainloop = pa_mainloop_new() else { throw .pulse(operation: "pa_mainloop_new", code: Int32(PA_ERR_INTERNAL.rawValue)) }
        guard let context = pa_context_new(pa_mainloop_get_api(mainloop), "sightline query") else {
            pa_mainloop_free(mainloop)
            throw .pulse(operation: "pa_context_new", code: Int32(PA_ERR_INTERNAL.rawValue))
        }
        self.mainloop = mainloop
        self.context = context
        guard pa_context_connect(context, server, PA_CONTEXT_NOAUTOSPAWN, nil) >= 0 else {
            throw .pulseUnavailable(server: server, reason: AudioError.pulseMessage(pa_context_errno(context)))
        }
        let ready = iterate {
            switch pa_context_get_state(context) {
            case PA_CONTEXT_READY, PA_CONTEXT_FAILED, PA_CONTEXT_TERMINATED: true
            default: false
            }
        }
        guard ready else { throw .pulseUnavailable(server: server, reason: "no answer within \(timeout)") }
        guard pa_context_get_state(context) == PA_CONTEXT_READY else {
            throw .pulseUnavailable(server: server, reason: AudioError.pulseMessage(pa_context_errno(context)))
        }
    }

    deinit {
        pa_context_disconnect(context)
        pa_context_unref(context)
        pa_mainloop_free(mainloop)
    }

    /// Runs the mainloop until `done` or the deadline; returns whether `done` became true.
    private func iterate(until done: () -> Bool) -> Bool {
        while !done() {
            guard ContinuousClock.now < deadline else { return false }
            // Block at most 10 ms per iteration so the deadline holds.
            pa_mainloop_prepare(mainloop, 10_000)
            pa_mainloop_poll(mainloop)
            pa_mainloop_dispatch(mainloop)
        }
        return true
    }

    /// The sources (capture) or sinks (playback) with their property lists.
    func devices(_ direction: SoundDeviceAddress.Direction) throws(AudioError) -> [SoundServerDevice] {
        let found = DeviceList()
        let userdata = Unmanaged.passUnretained(found).toOpaque()
        let operation: OpaquePointer?
        switch direction {
        case .capture:
            operation = pa_context_get_source_info_list(context, { _, info, last, userdata in
                guard let userdata else { return }
                let list = Unmanaged<DeviceList>.fromOpaque(userdata).takeUnretainedValue()
                guard last == 0, let info else {
                    list.finished = true
                    return
                }
                list.devices.append(SoundServerDevice(name: String(cString: info.pointee.name), properties: PulseQuery.properties(info.pointee.proplist),
                                                      isMonitor: info.pointee.monitor_of_sink != UInt32.max))
            }, userdata)
        case .playback:
            operation = pa_context_get_sink_info_list(context, { _, info, last, userdata in
                guard let userdata else { return }
                let list = Unmanaged<DeviceList>.fromOpaque(userdata).takeUnretainedValue()
                guard last == 0, let info else {
                    list.finished = true
                    return
                }
                list.devices.append(SoundServerDevice(name: String(cString: info.pointee.name), properties: PulseQuery.properties(info.pointee.proplist)))
            }, userdata)
        }
        guard let operation else {
            throw .pulse(operation: direction == .capture ? "pa_context_get_source_info_list" : "pa_context_get_sink_info_list",
                         code: pa_context_errno(context))
        }
        // The callbacks run inside `iterate`, on this thread, while `found` is alive.
        let answered = withExtendedLifetime(found) { iterate { found.finished } }
        if !answered { pa_operation_cancel(operation) }
        pa_operation_unref(operation)
        guard answered else {
            throw .pulse(operation: direction == .capture ? "listing sources" : "listing sinks", code: Int32(PA_ERR_TIMEOUT.rawValue))
        }
        return found.devices
    }

    /// A property list (borrowed) as strings (`pa_proplist_iterate`, `pa_proplist_gets`);
    /// binary values are left out.
    static func properties(_ list: OpaquePointer?) -> [String: String] {
        guard let list else { return [:] }
        var state: UnsafeMutableRawPointer?
        var properties: [String: String] = [:]
        while let key = pa_proplist_iterate(list, &state) {
            if let value = pa_proplist_gets(list, key) { properties[String(cString: key)] = String(cString: value) }
        }
        return properties
    }

    /// Where the introspection callbacks collect; only the query's thread touches it.
    private final class DeviceList {
        var devices: [SoundServerDevice] = []
        var finished = false
    }
}
