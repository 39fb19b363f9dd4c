// The browser front's viewer page: HTML, CSS and JavaScript built into the
// plugin, so gst-launch-1.0 serves it with no installed file. The page opens
// a WebSocket to /watch/NAME on the same origin, gets the caps as a text
// message and each buffer as a binary message (the protocol v2 BUFFER
// message: header, 48-byte metadata, data; docs/PROTOCOL.md), decodes H.264
// with WebCodecs (VideoDecoder; avcC description from codec_data or from
// the SPS/PPS of the first keyframe) and JPEG with createImageBitmap, and
// keeps window.tlsframeStats current. On a stream with renditions the
// server's RENDITION notices (binary, docs/PROTOCOL.md 8.13) name the
// rendition and list them; a <select> (auto + each) sends RENDITION_REQUEST. The response's Content-Security-Policy
// allows exactly this script and style (by their SHA-256, core/http_front.cpp).
#pragma once

namespace tlsframe::http::page {

inline constexpr const char *kStyle = R"CSS(
body{margin:0;background:#111;color:#ddd;font:14px system-ui,sans-serif}
header{padding:6px 10px;display:flex;gap:16px;flex-wrap:wrap}
#name{font-weight:bold;color:#fff}
canvas{display:block;max-width:100%;height:auto;background:#000;margin:0 auto}
a{color:#8cf}
select{background:#222;color:#ddd;border:1px solid #555;font:inherit}
li{margin:4px 0}
)CSS";

inline constexpr const char *kScript = R"JS(
"use strict";
(() => {
  const stream = document.body.dataset.stream || "";
  const canvas = document.getElementById("video");
  const ctx2d = canvas.getContext("2d");
  const info = document.getElementById("info");
  document.getElementById("name").textContent = stream === "" ? "(default stream)" : stream;
  const choice = document.getElementById("rendition");
  const stats = {frames: 0, width: 0, height: 0, codec: "", latencyMs: null, errors: 0,
                 fps: 0, caps: "", state: "connecting", rendition: "", renditionReason: "",
                 renditions: []};
  window.tlsframeStats = stats;
  const KEYFRAME_REQUEST = new Uint8Array([0x54, 0x4C, 0x53, 0x46, 2, 7, 0, 0, 0, 0, 0, 0]);
  const HEADER = 12, META = 48, TYPE_BUFFER = 2, TYPE_EOS = 3, TYPE_ERROR = 4, FLAG_DELTA = 1;
  const TYPE_RENDITION = 11, TYPE_RENDITION_REQUEST = 10;
  let ws = null, kind = "", decoder = null, config = null, needKey = true, lastAsk = 0;
  let sendTimes = new Map(), drawTimes = [], retry = 1000;
  let jpegBusy = false, jpegNext = null;
  let wanted = "auto", told = false;  // the viewer's rendition choice; a notice since connecting

  function wallMs() { return performance.timeOrigin + performance.now(); }
  function askKeyframe() {
    const now = performance.now();
    if (!ws || ws.readyState !== 1 || now - lastAsk < 500) return;
    lastAsk = now;
    ws.send(KEYFRAME_REQUEST);
  }
  function fail(what) { stats.errors++; console.warn("tlsframe:", what); }
  function sized(w, h) {
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    stats.width = w; stats.height = h;
  }
  function drawn(sendMs) {
    stats.frames++;
    if (sendMs > 0) stats.latencyMs = Math.round((wallMs() - sendMs) * 10) / 10;
    const now = performance.now();
    drawTimes.push(now);
    while (drawTimes.length && drawTimes[0] < now - 1000) drawTimes.shift();
    stats.fps = drawTimes.length;
  }
  setInterval(() => {
    info.textContent = stats.state + " · " + (stats.codec || "-") + " · " + stats.width + "x" +
        stats.height + " · " + stats.fps + " fps · latency " +
        (stats.latencyMs === null ? "-" : stats.latencyMs + " ms") + " · " + stats.frames +
        " frames" + (stats.rendition ? " · rendition " + stats.rendition +
        (stats.renditionReason ? " (" + stats.renditionReason + ")" : "") : "") +
        (stats.errors ? " · " + stats.errors + " errors" : "");
  }, 250);

  // ---- caps
  function capsField(caps, name) {
    const m = caps.match(new RegExp("[,;]\\s*" + name + "=(?:\\([a-z0-9]+\\))?\"?([^,;\"]*)"));
    return m ? m[1] : null;
  }
  function hexBytes(hex) {
    const out = new Uint8Array(hex.length >> 1);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
    return out;
  }
  function hex2(b) { return b.toString(16).padStart(2, "0"); }
  function onCaps(caps) {
    if (caps === stats.caps && (kind !== "h264" || config)) return;  // unchanged
    stats.caps = caps;
    closeDecoder();
    config = null;
    needKey = true;
    if (caps.startsWith("image/jpeg")) {
      kind = "jpeg"; stats.codec = "jpeg";
    } else if (caps.startsWith("video/x-h264")) {
      kind = "h264"; stats.codec = "h264";
      const format = capsField(caps, "stream-format") || "byte-stream";
      const cd = capsField(caps, "codec_data");
      if (format === "avc" && cd) configure(hexBytes(cd), false);
      else if (format === "avc") fail("avc caps without codec_data");
    } else {
      kind = ""; stats.codec = "unsupported: " + caps.split(",")[0];
      stats.state = "cannot show " + caps.split(",")[0];
    }
  }

  // ---- H.264 (WebCodecs)
  // Annex B (byte-stream) -> NAL units (without start codes).
  function nals(data) {
    const out = [];
    let i = 0, start = -1;
    while (i + 2 < data.length) {
      if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
        if (start >= 0) out.push(trimZeros(data.subarray(start, i)));
        i += 3; start = i;
      } else i++;
    }
    if (start >= 0) out.push(data.subarray(start));
    return out;
  }
  function trimZeros(n) { let e = n.length; while (e > 0 && n[e - 1] === 0) e--; return n.subarray(0, e); }
  // avcC (ISO 14496-15) from one SPS and one PPS.
  function avcC(sps, pps) {
    const out = new Uint8Array(11 + sps.length + pps.length);
    out.set([1, sps[1], sps[2], sps[3], 0xFF, 0xE1, sps.length >> 8, sps.length & 255]);
    out.set(sps, 8);
    let p = 8 + sps.length;
    out.set([1, pps.length >> 8, pps.length & 255], p);
    out.set(pps, p + 3);
    return out;
  }
  // Annex B -> 4-byte length prefixes, as a decoder given an avcC description reads.
  function toAvc(units) {
    let size = 0;
    for (const n of units) size += 4 + n.length;
    const out = new Uint8Array(size);
    let p = 0;
    for (const n of units) {
      out[p] = n.length >>> 24; out[p + 1] = (n.length >> 16) & 255;
      out[p + 2] = (n.length >> 8) & 255; out[p + 3] = n.length & 255;
      out.set(n, p + 4); p += 4 + n.length;
    }
    return out;
  }
  function configure(description, annexB) {
    const codec = "avc1." + hex2(description[1]) + hex2(description[2]) + hex2(description[3]);
    config = {codec, description, annexB};
    stats.codec = codec;
    openDecoder();
  }
  function openDecoder() {
    closeDecoder();
    decoder = new VideoDecoder({
      output: (frame) => {
        sized(frame.displayWidth, frame.displayHeight);
        ctx2d.drawImage(frame, 0, 0, canvas.width, canvas.height);
        const t = frame.timestamp;
        frame.close();
        const s = sendTimes.get(t);
        sendTimes.delete(t);
        drawn(s || 0);
        stats.state = "playing";
      },
      error: (e) => { fail("decoder: " + e.message); decoder = null; needKey = true;
                      if (config) openDecoder(); askKeyframe(); },
    });
    decoder.configure({codec: config.codec, description: config.description,
                       optimizeForLatency: true});
    needKey = true;
    askKeyframe();
  }
  function closeDecoder() {
    if (decoder && decoder.state !== "closed") { try { decoder.close(); } catch (e) {} }
    decoder = null;
    sendTimes.clear();
  }
  function onH264(data, key, seq, sendMs) {
    let units = null;
    if (!config || config.annexB) units = nals(data);
    if (!config) {
      if (!key) { askKeyframe(); return; }
      const sps = units.find((n) => (n[0] & 31) === 7), pps = units.find((n) => (n[0] & 31) === 8);
      if (!sps || !pps) { fail("keyframe without SPS/PPS"); askKeyframe(); return; }
      configure(avcC(sps, pps), true);
    }
    if (!decoder || decoder.state !== "configured") return;
    if (needKey && !key) { askKeyframe(); return; }
    if (decoder.decodeQueueSize > 8) { needKey = true; askKeyframe(); return; }  // stay live
    needKey = false;
    const body = config.annexB ? toAvc(units.filter((n) => n.length > 0)) : data;
    sendTimes.set(seq, sendMs);
    try {
      decoder.decode(new EncodedVideoChunk({type: key ? "key" : "delta", timestamp: seq, data: body}));
    } catch (e) { fail("decode: " + e.message); needKey = true; askKeyframe(); }
  }

  // ---- JPEG
  function onJpeg(data, sendMs) {
    if (jpegBusy) { jpegNext = [data, sendMs]; return; }  // keep only the latest: stay live
    jpegBusy = true;
    createImageBitmap(new Blob([data], {type: "image/jpeg"})).then((bmp) => {
      sized(bmp.width, bmp.height);
      ctx2d.drawImage(bmp, 0, 0);
      bmp.close();
      drawn(sendMs);
      stats.state = "playing";
    }, (e) => fail("jpeg: " + e)).finally(() => {
      jpegBusy = false;
      if (jpegNext) { const n = jpegNext; jpegNext = null; onJpeg(n[0], n[1]); }
    });
  }

  // ---- renditions (docs/PROTOCOL.md 8.12, 8.13)
  const NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;
  function validName(n) { return typeof n === "string" && NAME.test(n) && n !== "auto"; }
  // A v2 field block -> Map, or null unless every rule of 8.4 holds.
  function fieldBlock(b) {
    if (b.length < 1 || b.length > 4096) return null;
    const text = new TextDecoder("utf-8", {fatal: true, ignoreBOM: true});
    const out = new Map();
    let p = 0;
    while (p < b.length) {
      const kl = b[p];
      if (kl < 1 || kl > 32 || p + 1 + kl + 2 > b.length || out.size === 64) return null;
      const key = String.fromCharCode(...b.subarray(p + 1, p + 1 + kl));
      if (!/^[a-z0-9-]+$/.test(key) || out.has(key)) return null;
      p += 1 + kl;
      const vl = (b[p] << 8) | b[p + 1];
      p += 2;
      if (p + vl > b.length) return null;
      let value;
      try { value = text.decode(b.subarray(p, p + vl)); } catch (e) { return null; }
      if (/[\x00-\x1f\x7f]/.test(value)) return null;
      out.set(key, value);
      p += vl;
    }
    return out;
  }
  function renditionRequest(name) {
    const v = new TextEncoder().encode(name);
    const m = new Uint8Array(HEADER + 12 + v.length);
    m.set([0x54, 0x4C, 0x53, 0x46, 2, TYPE_RENDITION_REQUEST, 0, 0]);
    new DataView(m.buffer).setUint32(8, 12 + v.length);
    m.set([9, ...new TextEncoder().encode("rendition"), v.length >> 8, v.length & 255], HEADER);
    m.set(v, HEADER + 12);
    return m;
  }
  function ask(name) {
    if (ws && ws.readyState === 1) ws.send(renditionRequest(name));
  }
  function showChoices(names) {
    if (names.join(",") !== stats.renditions.join(",")) {
      stats.renditions = names;
      choice.replaceChildren(...["auto"].concat(names).map((n) => {
        const o = document.createElement("option");
        o.value = n; o.textContent = n;
        return o;
      }));
    }
    if (wanted !== "auto" && !names.includes(wanted)) wanted = "auto";
    choice.value = wanted;
    choice.hidden = false;
  }
  choice.addEventListener("change", () => { wanted = choice.value; ask(wanted); });
  // RENDITION: the rendition sent from the next caps on; its reason; the list.
  function onRendition(buf) {
    const f = buf.byteLength - HEADER === new DataView(buf).getUint32(8) ?
        fieldBlock(new Uint8Array(buf, HEADER)) : null;
    const name = f ? f.get("rendition") : undefined, reason = f ? f.get("reason") || "" : "";
    const list = f && f.has("renditions") ? f.get("renditions").split(",") : null;
    if (!validName(name) || new TextEncoder().encode(reason).length > 256 || (list && !list.every(validName))) {
      return fail("malformed RENDITION");
    }
    stats.rendition = name;
    stats.renditionReason = reason;
    if (list) showChoices(list);
    if (!told && wanted !== "auto" && wanted !== name) ask(wanted);  // after a reconnect
    told = true;
  }

  // ---- transport
  function onBinary(buf) {
    const v = new DataView(buf);
    if (buf.byteLength < HEADER) return fail("short message");
    const type = v.getUint8(5);
    if (type === TYPE_EOS) { stats.state = "end of stream"; return; }
    if (type === TYPE_RENDITION) return onRendition(buf);
    if (type === TYPE_ERROR) {
      stats.state = "error: " + new TextDecoder().decode(new Uint8Array(buf, HEADER + 2)); return;
    }
    if (type !== TYPE_BUFFER || buf.byteLength < HEADER + META) return;
    const flags = v.getUint32(HEADER + 24);
    const seq = Number(v.getBigUint64(HEADER + 32));
    const sendMs = Number(v.getBigUint64(HEADER + 40)) / 1e6;
    const data = new Uint8Array(buf, HEADER + META);
    if (kind === "h264") onH264(data, !(flags & FLAG_DELTA), seq, sendMs);
    else if (kind === "jpeg") onJpeg(data, sendMs);
  }
  function connect() {
    const path = "/watch/" + encodeURIComponent(stream);
    ws = new WebSocket("wss://" + location.host + path);
    ws.binaryType = "arraybuffer";
    told = false;
    ws.onopen = () => { stats.state = "waiting for a frame"; retry = 1000; };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") onCaps(ev.data);
      else onBinary(ev.data);
    };
    ws.onclose = (ev) => {
      if (!stats.state.startsWith("end") && !stats.state.startsWith("error")) {
        stats.state = "closed" + (ev.reason ? ": " + ev.reason : "") + ", reconnecting";
      }
      closeDecoder(); config = null; ws = null;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }
  connect();
})();
)JS";

}  // namespace tlsframe::http::page
