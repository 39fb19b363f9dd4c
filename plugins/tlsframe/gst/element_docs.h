// Long descriptions of the elements, for gst_element_class_set_static_metadata()
// and so for gst-inspect-1.0. Plain text with newlines, each at most 1,600
// characters; the full reference (every property, signal, statistic and bus
// message) is docs/ELEMENTS.md.
#pragma once

/**
 * SECTION:element-tlsframesink
 * @title: tlsframesink
 * @see_also: #tlsframesrc, #tcpserversink
 *
 * A TLS server that sends every buffer it receives, with the stream's caps,
 * to any number of tlsframesrc clients. Each buffer is encoded once and shared
 * by every client; each client has its own queue, bounded by buffers-max and
 * bytes-max, and a slow client skips to the next keyframe on its own
 * connection only. TLS 1.3 by default; with ca-file and require-client-cert,
 * only clients with a certificate signed by that CA are served.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! jpegenc ! tlsframesink cert-file=server.pem key-file=server.key
 * gst-launch-1.0 tlsframesrc host=localhost ca-file=ca.pem ! jpegdec ! videoconvert ! autovideosink
 * ]| JPEG from a test pattern to a viewer on port 9999.
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency key-int-max=60 ! tlsframesink cert-file=server.pem key-file=server.key
 * gst-launch-1.0 tlsframesrc host=localhost ca-file=ca.pem ! h264parse ! avdec_h264 ! videoconvert ! autovideosink
 * ]| H.264; a client that joins gets a keyframe the sink asks the encoder for.
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! qtdemux ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! tlsframesink sync-method=latest-keyframe cert-file=server.pem key-file=server.key
 * ]| A source that cannot make a keyframe on demand: a joiner starts at once on
 * the cached GOP (from the latest keyframe on, at most gop-cache-bytes-max).
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! jpegenc ! tlsframesink cert-file=server.pem key-file=server.key ca-file=ca.pem require-client-cert=true
 * gst-launch-1.0 tlsframesrc host=localhost ca-file=ca.pem cert-file=client.pem key-file=client.key ! jpegdec ! videoconvert ! autovideosink
 * ]| Mutual TLS: the server serves only clients with a certificate signed by ca.pem.
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! jpegenc ! tlsframesink cert-file=server.pem key-file=server.key ca-file=ca.pem require-client-cert=true crl-file=crl.pem authorized-clients="<\"CN=alice\", \"DNS:door.lan\">"
 * ]| Who may watch: certificates signed by ca.pem, not revoked by crl.pem, naming alice or door.lan.
 * |[
 * gst-launch-1.0 tlsframesrc host=cam1.lan ca-file=ca.pem ! queue ! tlsframesink port=10000 cert-file=server.pem key-file=server.key
 * ]| A relay: receives a stream and serves it again without decoding it.
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,format=I420,width=1280,height=720 ! tee name=t t. ! queue ! x264enc tune=zerolatency bitrate=2500 ! tlsframesink rendition=720p cert-file=server.pem key-file=server.key t. ! queue ! videoscale ! video/x-raw,width=640,height=360 ! x264enc tune=zerolatency bitrate=500 ! tlsframesink rendition=360p cert-file=server.pem key-file=server.key
 * ]| Renditions: one capture, two encodings, one stream on one port. Each
 * viewer gets one rendition, the server's choice for its link (steps down
 * when frames back up, up cautiously; docs/PROTOCOL.md 8.12) or the one its
 * tlsframesrc names; client-rendition-changed reports each switch.
 */

/**
 * SECTION:element-tlsframesrc
 * @title: tlsframesrc
 * @see_also: #tlsframesink, #tcpclientsrc
 *
 * A live TLS client for tlsframesink. It always verifies the server's
 * certificate chain (ca-file, else the system's CAs) and name (server-name,
 * else host), then outputs the server's buffers with the server's caps.
 * stream-name picks a named stream of a server that has them (protocol
 * version 2); empty is the default stream, the only one of a version 1
 * server. The element is a URI handler for tlsframe://HOST[:PORT][/NAME]
 * (the uri property sets host, port and stream-name). With reconnect=true a
 * lost connection is reported with a tlsframesrc-disconnected element message
 * and retried with backoff. server-fingerprint pins the server's certificate
 * (SHA-256 of the leaf, as tlsframe serve prints it) instead of a CA: the pin
 * is then the trust and the name is not checked; with ca-file too, both must
 * hold. See also the tlsframesink examples.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 tlsframesrc host=localhost stream-name=cam1 ca-file=ca.pem ! queue ! jpegdec ! videoconvert ! autovideosink
 * ]| The stream "cam1" of a server with named streams.
 * |[
 * gst-launch-1.0 tlsframesrc host=192.168.1.20 server-fingerprint=AB:CD:...:EF ! queue ! jpegdec ! videoconvert ! autovideosink
 * ]| A server trusted by its certificate's fingerprint, without a CA file.
 * |[
 * gst-launch-1.0 tlsframesrc host=localhost ca-file=ca.pem rendition=360p ! queue ! h264parse ! avdec_h264 ! videoconvert ! autovideosink
 * ]| The rendition "360p" of a stream with several (default auto: the
 * server's choice); changeable while playing, each switch posts a
 * tlsframesrc-rendition element message.
 * |[
 * gst-launch-1.0 playbin uri=tlsframe://localhost:9999/cam1 uridecodebin0::source::ca-file=ca.pem
 * ]| playbin: a URI carries no trust settings, so the server's certificate must
 * be trusted by the system, or ca-file set on the source (from an application,
 * in playbin's source-setup signal).
 */

/**
 * SECTION:element-cvcamsrc
 * @title: cvcamsrc
 *
 * A live BGR video source around OpenCV's cv::VideoCapture: a camera
 * (device-index) or a regular video file (location, read with the FFmpeg
 * backend only, with loop).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 cvcamsrc device-index=0 ! video/x-raw,width=320,height=240 ! videoconvert ! autovideosink
 * ]|
 */
constexpr const char *TLSFRAME_SINK_LONG_DESCRIPTION =
    "TLS server that sends every buffer it receives, with the stream's caps, to any\n"
    "number of tlsframesrc clients. Each buffer is encoded once and shared; each\n"
    "client has its own queue (buffers-max, bytes-max, and time-max: no buffer is\n"
    "sent more than 250 ms after its render by default) and a slow one skips to the\n"
    "next keyframe on its own connection only, asking upstream for one on a\n"
    "delta-unit stream, as a joining client does; with sync-method=latest-keyframe a\n"
    "joiner gets the cached GOP at once instead (for sources that cannot make\n"
    "keyframes on demand). TLS 1.3 by default (min-tls-version); cert-file and\n"
    "key-file are required (reloaded when set while running). ca-file with\n"
    "require-client-cert=true: mutual TLS; crl-file, authorized-clients (per stream)\n"
    "and the accept-client signal decide who may watch. port=0 picks a free port\n"
    "(current-port). stream-name names the stream for version 2 clients (empty: the\n"
    "default stream, the one version 1 clients get); sinks in one process on one\n"
    "host and fixed port share one listener (one name each) and must agree on its\n"
    "settings. Signals come from the element's signal thread.\n"
    "Renditions: sinks with one stream-name (and port) and different rendition names\n"
    "are one stream with several encodings; each viewer gets one rendition, the\n"
    "server's choice for its link (down quickly when frames back up, up cautiously;\n"
    "docs/PROTOCOL.md 8.12) or the one its tlsframesrc names. Switches happen at a\n"
    "keyframe of the target and emit client-rendition-changed (id, from, to,\n"
    "reason) on the sink the client joined through; client-stats has rendition,\n"
    "rendition-auto, switches-up, switches-down, last-reason, estimated-rate; each\n"
    "sink's num-clients counts the viewers on its rendition.\n"
    "\n"
    "JPEG:\n"
    "  gst-launch-1.0 videotestsrc is-live=true ! jpegenc !\n"
    "    tlsframesink cert-file=server.pem key-file=server.key\n"
    "  gst-launch-1.0 tlsframesrc host=localhost ca-file=ca.pem ! jpegdec !\n"
    "    videoconvert ! autovideosink\n"
    "Two named streams on one port (viewers set stream-name=cam1 or cam2):\n"
    "  gst-launch-1.0 videotestsrc is-live=true ! jpegenc ! tlsframesink\n"
    "    stream-name=cam1 cert-file=server.pem key-file=server.key\n"
    "    videotestsrc is-live=true pattern=ball ! jpegenc ! tlsframesink\n"
    "    stream-name=cam2 cert-file=server.pem key-file=server.key\n"
    "Two renditions of one capture (viewers set rendition=360p, or auto):\n"
    "  gst-launch-1.0 videotestsrc is-live=true !\n"
    "    video/x-raw,format=I420,width=1280,height=720 ! tee name=t\n"
    "    t. ! queue ! x264enc tune=zerolatency bitrate=2500 ! tlsframesink\n"
    "    rendition=720p cert-file=server.pem key-file=server.key\n"
    "    t. ! queue ! videoscale ! video/x-raw,width=640,height=360 !\n"
    "    x264enc tune=zerolatency bitrate=500 ! tlsframesink\n"
    "    rendition=360p cert-file=server.pem key-file=server.key";

constexpr const char *TLSFRAME_SRC_LONG_DESCRIPTION =
    "Live TLS client for tlsframesink: outputs the server's buffers with the\n"
    "server's caps, flags and durations, timestamps re-based onto the running time.\n"
    "The server is always verified: its chain against ca-file (unset: the system's\n"
    "CAs) and its name against server-name (unset: host); no property turns this\n"
    "off. server-fingerprint pins the server's certificate instead (SHA-256, as\n"
    "tlsframe serve prints it): without ca-file the pin alone is the trust, with\n"
    "ca-file both must hold. cert-file and key-file present a client certificate\n"
    "to a server that requires one. stream-name picks a named stream of a server\n"
    "that has them\n"
    "(protocol version 2; empty: the default stream, the only one of a version 1\n"
    "server). uri sets host, port and stream-name from tlsframe://HOST[:PORT][/NAME].\n"
    "With reconnect=true a lost connection posts tlsframesrc-disconnected and is\n"
    "retried with backoff; certificate and settings errors always fail.\n"
    "rendition (default auto) picks one encoding of a stream with several: auto =\n"
    "the server's choice for this link, or a name. Changeable while playing; the\n"
    "switch comes at the new rendition's keyframe (new caps, DISCONT) and posts\n"
    "tlsframesrc-rendition (rendition, previous, reason, automatic);\n"
    "tlsframesrc-connected's rendition is the one a connection starts on, its\n"
    "renditions every rendition of the stream (comma-separated, highest rate\n"
    "first; \"\" = a single encoding).\n"
    "\n"
    "JPEG:\n"
    "  gst-launch-1.0 tlsframesrc host=localhost port=9999 ca-file=ca.pem ! queue !\n"
    "    jpegdec ! videoconvert ! autovideosink\n"
    "H.264, stream cam1:\n"
    "  gst-launch-1.0 tlsframesrc host=localhost stream-name=cam1 ca-file=ca.pem !\n"
    "    queue ! h264parse ! avdec_h264 ! videoconvert ! autovideosink\n"
    "playbin (a URI has no CA: a system-trusted server, or ca-file set in\n"
    "source-setup, or as here):\n"
    "  gst-launch-1.0 playbin uri=tlsframe://localhost:9999/cam1\n"
    "    uridecodebin0::source::ca-file=ca.pem\n"
    "The 360p rendition of a stream with several:\n"
    "  gst-launch-1.0 tlsframesrc host=localhost ca-file=ca.pem rendition=360p !\n"
    "    queue ! h264parse ! avdec_h264 ! videoconvert ! autovideosink\n"
    "Mutual TLS: add cert-file=client.pem key-file=client.key.\n"
    "Pinned server, no CA file (the fingerprint tlsframe serve printed):\n"
    "  gst-launch-1.0 tlsframesrc host=192.168.1.20 server-fingerprint=AB:CD:...:EF !\n"
    "    queue ! jpegdec ! videoconvert ! autovideosink\n"
    "Relay (serves the stream again without decoding):\n"
    "  gst-launch-1.0 tlsframesrc host=cam1.lan ca-file=ca.pem ! queue !\n"
    "    tlsframesink port=10000 cert-file=server.pem key-file=server.key";

constexpr const char *CVCAMSRC_LONG_DESCRIPTION =
    "Live BGR video from a camera (device-index) or a video file (location: a\n"
    "regular file, read with OpenCV's FFmpeg backend only, never run as a pipeline;\n"
    "loop) through OpenCV's cv::VideoCapture. Offers the source's own size and\n"
    "rate first and scales to any size downstream asks for; frames are paced on the\n"
    "pipeline clock and stamped with the running time at capture. The end of a file\n"
    "is EOS unless loop=true.\n"
    "\n"
    "  gst-launch-1.0 cvcamsrc device-index=0 ! video/x-raw,width=320,height=240 !\n"
    "    videoconvert ! autovideosink\n"
    "  gst-launch-1.0 cvcamsrc location=clip.mp4 loop=true ! videoconvert ! jpegenc !\n"
    "    tlsframesink cert-file=server.pem key-file=server.key";
