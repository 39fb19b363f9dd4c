"""The inputs every figure shares, made once and kept in --work: development
certificates, 90 JPEG frames, a 70 s Matroska file; and the snapshot of the build
(plugin + loadgen copied into OUT/bin) that a run uses."""

import hashlib
import os
import shutil

from .common import ROOT, BenchError, log
from .procs import run_quiet

MKV_FRAMES = 2100  # 70 s at 30/1
FAST_FRAMES = 90


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def ensure_certs(certs):
    """Makes development certificates in CERTS (certs/make-dev-certs.sh) unless there."""
    if not os.path.exists(os.path.join(certs, "server.key")):
        log("making certificates in " + certs)
        run_quiet(["bash", os.path.join(ROOT, "certs", "make-dev-certs.sh"), certs], 60)


class Inputs:
    """Paths of the build and of the inputs; prepare() makes what is missing."""

    def __init__(self, work, build):
        self.work = work
        self.build = build
        self.loadgen = os.path.join(build, "bench", "tlsframe-loadgen")
        self.plugin_dir = os.path.join(build, "plugins", "tlsframe")
        self.certs = os.path.join(work, "certs")
        self.frames = os.path.join(work, "frames")
        self.mkv = os.path.join(work, "stream30.mkv")

    def prepare(self):
        for f, what in ((self.loadgen, "loadgen"),
                        (os.path.join(self.plugin_dir, "libgsttlsframe.so"), "plugin")):
            if not os.path.exists(f):
                raise BenchError(f"{what} not built: {f} (run: meson compile -C {self.build})")
        for tool in ("gst-launch-1.0", "stunnel4"):
            if not shutil.which(tool):
                raise BenchError(f"{tool} not found (scripts/install-deps.sh bench)")
        os.makedirs(self.work, exist_ok=True)
        ensure_certs(self.certs)
        jpgs = self._jpgs()
        if len(jpgs) != FAST_FRAMES:
            log(f"encoding {FAST_FRAMES} 720p JPEG frames into {self.frames}")
            shutil.rmtree(self.frames, ignore_errors=True)
            os.makedirs(self.frames)
            run_quiet(["gst-launch-1.0", "-q", "videotestsrc", f"num-buffers={FAST_FRAMES}",
                       "pattern=smpte", "horizontal-speed=4", "!",
                       "video/x-raw,width=1280,height=720,framerate=30/1", "!",
                       "jpegenc", "quality=85", "!", "multifilesink",
                       f"location={self.frames}/%05d.jpg"], 120)
            jpgs = self._jpgs()
        if not os.path.exists(self.mkv):
            log(f"encoding {MKV_FRAMES} frames ({MKV_FRAMES / 30:.0f} s at 30 fps) into {self.mkv}")
            tmp = self.mkv + ".tmp"
            run_quiet(["gst-launch-1.0", "-q", "videotestsrc", f"num-buffers={MKV_FRAMES}",
                       "pattern=smpte", "horizontal-speed=4", "!",
                       "video/x-raw,width=1280,height=720,framerate=30/1", "!",
                       "jpegenc", "quality=85", "!", "matroskamux", "!", "filesink",
                       f"location={tmp}"], 600)
            os.replace(tmp, self.mkv)
        self.fast_frame_bytes = sum(os.path.getsize(j) for j in jpgs) // len(jpgs)
        # Container overhead is a few bytes per block: the mean is within 0.1 %.
        self.mkv_frame_bytes = os.path.getsize(self.mkv) // MKV_FRAMES
        self.mkv_seconds = MKV_FRAMES / 30.0

    def snapshot(self, out):
        """Copies the plugin and the loadgen into OUT/bin and uses those copies, so
        that a rebuild during the run cannot mix two builds; checks both load."""
        bindir = os.path.join(out, "bin")
        plugdir = os.path.join(bindir, "plugin")
        os.makedirs(plugdir, exist_ok=True)
        so = os.path.join(plugdir, "libgsttlsframe.so")
        lg = os.path.join(bindir, "tlsframe-loadgen")
        shutil.copy2(os.path.join(self.plugin_dir, "libgsttlsframe.so"), so)
        shutil.copy2(self.loadgen, lg)
        self.plugin_dir, self.loadgen = plugdir, lg
        # A private registry: other GStreamer users on the machine do not rescan it.
        self.gst_env = dict(os.environ, GST_PLUGIN_PATH=plugdir,
                            GST_REGISTRY=os.path.join(bindir, "registry.bin"))
        run_quiet([lg, "--help"], 30)
        txt = run_quiet(["gst-inspect-1.0", "tlsframesink"], 60, env=self.gst_env)
        if "tlsframesink" not in txt:
            raise BenchError("gst-inspect-1.0 does not find tlsframesink in the snapshot")
        return {os.path.basename(f): sha256(f) for f in (so, lg)}

    def _jpgs(self):
        if not os.path.isdir(self.frames):
            return []
        return sorted(os.path.join(self.frames, f) for f in os.listdir(self.frames)
                      if f.endswith(".jpg"))
