import SightlineCore

/// Chooses the encoder for a camera format and the codec the stream wants.
public enum VideoEncoders {
    /// Passthrough when the camera already delivers the wanted codec, software otherwise.
    ///
    /// A V4L2 memory-to-memory hardware encoder (`/dev/video*` with `V4L2_CAP_VIDEO_M2M_MPLANE`
    /// and an H264 capture format, as on a Raspberry Pi or Rockchip board) would be probed here,
    /// between the passthrough and the OpenH264 case, and returned as one more `VideoEncoder`.
    public static func make(for inputFormat: VideoFormat, preferred: VideoCodec, settings: EncoderSettings) throws(EncoderError) -> any VideoEncoder {
        switch (preferred, inputFormat) {
        case (.h264, .h264):
            return PassthroughEncoder(settings: settings)
        case (.h264, .mjpeg), (.h264, .yuyv), (.h264, .nv12):
            return try OpenH264Encoder(settings: settings)
        case (.jpeg, .mjpeg), (.jpeg, .yuyv), (.jpeg, .nv12):
            return try JPEGVideoEncoder(settings: settings)
        case (.jpeg, .h264):
            // Decoding the camera's H.264 to re-encode it as JPEG would cost more than it saves.
            throw .unsupportedInput(.h264, codec: .jpeg)
        }
    }
}
