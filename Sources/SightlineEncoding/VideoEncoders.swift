import SightlineCore

/// Chooses the encoder for a camera format and the codec the stream wants.
public enum VideoEncoders {
    /// The V4L2 memory-to-memory H.264 encoder found at start, or why there is none. Probed
    /// once per process: the scan opens every /dev/videoN, which is not free, and hardware does
    /// not come and go.
    public static let hardwareProbe: M2MProbeResult = M2MProbe.choose(from: M2MDevices.scan(), coded: .h264)

    /// An encoder and, in words for the log and the status, why it was chosen.
    public struct Choice {
        public let encoder: any VideoEncoder
        public let explanation: String
    }

    /// Passthrough when the camera already delivers the wanted codec; for H.264 from raw or
    /// MJPEG frames the hardware encoder when `hardware` found one, OpenH264 otherwise or when
    /// the hardware refuses these settings.
    public static func choose(for inputFormat: VideoFormat, preferred: VideoCodec, settings: EncoderSettings,
                              hardware: M2MProbeResult = hardwareProbe) throws(EncoderError) -> Choice {
        switch (preferred, inputFormat) {
        case (.h264, .h264):
            return Choice(encoder: PassthroughEncoder(settings: settings), explanation: "passthrough of the camera's H.264")
        case (.h264, .mjpeg), (.h264, .yuyv), (.h264, .nv12):
            var fallback = hardware.description
            if case .found(let device, let rawFormat) = hardware {
                do {
                    let encoder = try M2MH264Encoder(device: device.path, rawFormat: rawFormat, settings: settings)
                    return Choice(encoder: encoder, explanation: "hardware H.264: \(hardware)")
                } catch {
                    fallback = "the V4L2 M2M encoder \(device.path) (\(device.driver)) refused: \(error)"
                }
            }
            return Choice(encoder: try OpenH264Encoder(settings: settings), explanation: "software H.264 (OpenH264): \(fallback)")
        case (.jpeg, .mjpeg), (.jpeg, .yuyv), (.jpeg, .nv12):
            return Choice(encoder: try JPEGVideoEncoder(settings: settings), explanation: "JPEG (libturbojpeg)")
        case (.jpeg, .h264):
            // Decoding the camera's H.264 to re-encode it as JPEG would cost more than it saves.
            throw .unsupportedInput(.h264, codec: .jpeg)
        }
    }

    /// `choose(…).encoder`, for callers that do not report the choice.
    public static func make(for inputFormat: VideoFormat, preferred: VideoCodec, settings: EncoderSettings,
                            hardware: M2MProbeResult = hardwareProbe) throws(EncoderError) -> any VideoEncoder {
        try choose(for: inputFormat, preferred: preferred, settings: settings, hardware: hardware).encoder
    }
}
