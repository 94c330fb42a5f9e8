// Recognition: a photo from the camera or the album, the faces boxed on it,
// the seven-expression bars of the selected face, and a live camera mode over
// the /api/v1/live WebSocket with the bars updating in place.

import { api, newRequestId } from "../api.js";
import { scoreBars } from "../charts.js";
import { busy, errorBox, h, percent } from "../dom.js";
import { expressionOf, dominantOf } from "../expressions.js";

const MAX_UPLOAD_BYTES = 8 * 1024 * 1024;
const LIVE_FPS = 4;
const LIVE_FRAME_WIDTH = 480;

const CAREFUL_KEY = "emotion.carefulAnalysis";

function carefulPreference() {
  try {
    return localStorage.getItem(CAREFUL_KEY) === "on";
  } catch {
    return false; // storage blocked (private mode): the default
  }
}

function rememberCareful(on) {
  try {
    localStorage.setItem(CAREFUL_KEY, on ? "on" : "off");
  } catch {
    // storage blocked: the choice lasts for this page only
  }
}

export function renderRecognise(main, _params, ctx) {
  const cleanups = [];
  const status = h("div", { class: "recognise-status", "aria-live": "polite" });
  const resultBox = h("div", { class: "result", id: "result" });

  // --- photo input: file picker (album) and camera capture
  const fileInput = h("input", {
    type: "file",
    id: "photo-file",
    accept: "image/jpeg,image/png,image/webp,image/bmp,image/gif",
    class: "visually-hidden",
  });
  const chooseButton = h(
    "label",
    { for: "photo-file", class: "button", id: "choose-photo" },
    h("span", { class: "emoji", "aria-hidden": "true" }, "🖼️"),
    " Choose a photo",
  );
  // Keyboard users reach the hidden file input through its label; make the label focusable.
  chooseButton.tabIndex = 0;
  chooseButton.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      fileInput.click();
    }
  });
  fileInput.addEventListener("change", () => {
    const file = fileInput.files?.[0];
    fileInput.value = "";
    if (file) analyse(file, "SOURCE_ALBUM");
  });

  const cameraButton = h(
    "button",
    { type: "button", id: "open-camera" },
    h("span", { class: "emoji", "aria-hidden": "true" }, "📷"),
    " Take a photo",
  );
  const liveButton = h(
    "button",
    { type: "button", id: "open-live", class: "secondary" },
    h("span", { class: "emoji", "aria-hidden": "true" }, "🎥"),
    " Live mode",
  );
  const cameraPanel = h("div", { class: "camera-panel", hidden: true });
  const hasCamera = Boolean(navigator.mediaDevices?.getUserMedia);
  if (!hasCamera) {
    cameraButton.disabled = true;
    liveButton.disabled = true;
    cameraButton.title = liveButton.title = "This browser cannot use the camera here (it needs HTTPS).";
  }

  // Opt-in test_time_augmentation for photos: 10 mirrored and shifted views of each face, a point or two
  // more accurate but several times the inference work (docs/WEBAPP.md), so off unless the user asks.
  // The choice is remembered on this device.
  const careful = h("input", { type: "checkbox", id: "careful-analysis", checked: carefulPreference() });
  careful.addEventListener("change", () => rememberCareful(careful.checked));
  const carefulOption = h(
    "span",
    { class: "field-check inline" },
    careful,
    h("label", { for: "careful-analysis" }, "Careful analysis of photos (a little slower)"),
  );

  cameraButton.addEventListener("click", () => openCamera("photo"));
  liveButton.addEventListener("click", () => openCamera("live"));

  main.append(
    h(
      "section",
      {},
      h("h1", { tabindex: "-1" }, "Recognise"),
      h(
        "p",
        { class: "lead" },
        "Take or choose a photo to see the apparent facial expression of each face. " +
          "This is an estimate of how a face looks, not a diagnosis of how anyone feels.",
      ),
      h("div", { class: "toolbar" }, chooseButton, fileInput, cameraButton, liveButton),
      h("div", { class: "toolbar" }, carefulOption),
      hasCamera ? null : h("p", { class: "hint" }, "Camera capture needs HTTPS (or localhost)."),
      cameraPanel,
      status,
      resultBox,
    ),
  );

  // --- still photo analysis

  async function analyse(blob, source) {
    if (blob.size > MAX_UPLOAD_BYTES) {
      resultBox.replaceChildren(errorBox(new Error("That photo is larger than 8 MB; please choose a smaller one.")));
      return;
    }
    let bitmap;
    try {
      bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
    } catch {
      resultBox.replaceChildren(errorBox(new Error("That file is not an image this browser can read.")));
      return;
    }
    const form = new FormData();
    form.append("image", blob, blob.name || "photo.jpg");
    form.append("source", source);
    form.append("request_id", newRequestId());
    form.append("captured_at", new Date(blob.lastModified || Date.now()).toISOString());
    form.append("test_time_augmentation", careful.checked ? "true" : "false");
    resultBox.replaceChildren(h("p", { class: "loading", role: "status" }, "Analysing the photo…"));
    resultBox.setAttribute("aria-busy", "true");
    try {
      const reply = await api.upload("/api/v1/analyses", form);
      showResult(reply, bitmap);
      ctx.announce(
        reply.faces?.length
          ? `Found ${reply.faces.length} face(s). Saved to your emotion centre.`
          : "No face found in this photo.",
        "success",
        { quiet: true },
      );
    } catch (error) {
      resultBox.replaceChildren(errorBox(error, () => analyse(blob, source)));
    } finally {
      resultBox.removeAttribute("aria-busy");
    }
  }

  function showResult(reply, bitmap) {
    const faces = reply.faces || [];
    const canvas = h("canvas", {
      class: "photo",
      role: "img",
      "aria-label": faces.length ? `The photo with ${faces.length} face(s) boxed` : "The photo",
    });
    // One face: the summary line above already names the expression, so the bars skip their headline.
    const bars = scoreBars({
      caption: "Apparent expression scores of the selected face",
      headline: faces.length > 1,
    });
    const picker = h("div", { class: "face-picker", role: "radiogroup", "aria-label": "Faces" });
    let selected = 0;
    const draw = () => drawPhoto(canvas, bitmap, faces, selected);
    const select = (index, focus = false) => {
      selected = index;
      for (const [i, button] of [...picker.children].entries()) {
        button.setAttribute("aria-checked", String(i === index));
        button.tabIndex = i === index ? 0 : -1;
        if (i === index && focus) button.focus();
      }
      bars.update(faces[index].scores);
      draw();
    };
    faces.forEach((face, i) => {
      const expression = expressionOf(face.dominant) || dominantOf(face.scores);
      picker.append(
        h(
          "button",
          {
            type: "button",
            role: "radio",
            class: "face-chip",
            "aria-checked": "false",
            onclick: () => select(i),
          },
          h("span", { class: "emoji", "aria-hidden": "true" }, face.emoji || expression.emoji),
          ` Face ${i + 1}: ${expression.label}`,
        ),
      );
    });
    // Arrow keys move between faces (radio group pattern).
    picker.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
      if (!step || !faces.length) return;
      event.preventDefault();
      select((selected + step + faces.length) % faces.length, true);
    });
    canvas.addEventListener("click", (event) => {
      const rect = canvas.getBoundingClientRect();
      const x = ((event.clientX - rect.left) / rect.width) * canvas.width;
      const y = ((event.clientY - rect.top) / rect.height) * canvas.height;
      const hit = faces.findIndex(
        (f) => x >= f.box.x && x <= f.box.x + f.box.width && y >= f.box.y && y <= f.box.y + f.box.height,
      );
      if (hit >= 0) select(hit);
    });

    const details = [];
    if (faces.length) {
      const overall = expressionOf(reply.dominant);
      details.push(
        h(
          "p",
          { class: "summary-line" },
          h("span", { class: "big-emoji", "aria-hidden": "true", id: "result-emoji" }, reply.emoji || overall?.emoji || ""),
          h(
            "span",
            {},
            faces.length > 1 ? "Overall apparent expression: " : "Apparent expression: ",
            h("strong", {}, overall?.label || "—"),
            faces.length > 1
              ? ` (mean of ${faces.length} faces)`
              : overall
                ? ` (${percent(faces[0].scores?.[overall.key])})`
                : "",
          ),
        ),
      );
      if (faces.length > 1) details.push(h("p", { class: "hint" }, "Select a face to see its scores."), picker);
      details.push(bars.el);
    } else {
      details.push(
        h(
          "p",
          { class: "notice" },
          "No face was found. Try a brighter, front-facing photo where the face fills more of the picture.",
        ),
      );
    }
    details.push(
      h(
        "p",
        { class: "hint" },
        reply.recorded === false
          ? "Saved; it will appear in your emotion centre in a moment."
          : "Saved to your emotion centre. ",
        reply.analysis_id ? h("a", { href: `#/history/${reply.analysis_id}` }, "Open it") : null,
      ),
    );
    resultBox.replaceChildren(
      h("div", { class: "result-grid" }, h("div", { class: "photo-wrap" }, canvas), h("div", { class: "card" }, details)),
    );
    if (faces.length) select(0);
    else draw();
  }

  // --- camera: still capture and live streaming

  let stream = null;
  function stopCamera() {
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
    cameraPanel.hidden = true;
    cameraPanel.replaceChildren();
    cameraButton.disabled = liveButton.disabled = !hasCamera;
  }
  cleanups.push(stopCamera);

  async function openCamera(mode) {
    stopCamera();
    resultBox.replaceChildren();
    cameraButton.disabled = liveButton.disabled = true;
    cameraPanel.hidden = false;
    cameraPanel.replaceChildren(h("p", { class: "loading", role: "status" }, "Opening the camera…"));
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "user", width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: false,
      });
    } catch (error) {
      const denied = error?.name === "NotAllowedError";
      cameraPanel.replaceChildren(
        errorBox(
          new Error(
            denied
              ? "Camera permission was denied. Allow the camera in your browser settings, or choose a photo instead."
              : "No camera could be opened. Choose a photo instead.",
          ),
        ),
      );
      cameraButton.disabled = liveButton.disabled = false;
      return;
    }
    const video = h("video", { autoplay: true, muted: true, playsInline: true, class: "camera-video" });
    video.setAttribute("playsinline", "");
    video.srcObject = stream;
    await video.play().catch(() => {});
    if (mode === "photo") stillCapture(video);
    else liveSession(video);
  }

  function stillCapture(video) {
    const shoot = h("button", { type: "button", id: "capture" }, "Capture");
    const cancel = h("button", { type: "button", class: "secondary", onclick: stopCamera }, "Cancel");
    cameraPanel.replaceChildren(
      h("div", { class: "video-wrap" }, video),
      h("div", { class: "toolbar" }, shoot, cancel),
    );
    shoot.focus();
    shoot.addEventListener("click", async () => {
      const canvas = h("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
      stopCamera();
      if (blob) analyse(blob, "SOURCE_CAMERA");
    });
  }

  function liveSession(video) {
    const overlay = h("canvas", { class: "live-overlay", "aria-hidden": "true" });
    const bars = scoreBars({ caption: "Live apparent expression scores" });
    const info = h("p", { class: "hint", "aria-live": "off" }, "Choose whether to save a summary, then start.");
    const start = h("button", { type: "button", id: "start-live" }, "Start live mode");
    const stop = h("button", { type: "button", id: "stop-live", class: "danger", hidden: true }, "Stop");
    const cancel = h("button", { type: "button", class: "secondary", onclick: stopCamera }, "Cancel");
    const record = h("input", { type: "checkbox", id: "live-record", checked: true });
    cameraPanel.replaceChildren(
      h("div", { class: "result-grid" }, h("div", { class: "video-wrap" }, video, overlay), h("div", { class: "card" }, bars.el, info)),
      h(
        "div",
        { class: "toolbar" },
        h("span", { class: "field-check inline" }, record, h("label", { for: "live-record" }, "Save a summary when I stop")),
        start,
        stop,
        cancel,
      ),
    );
    start.focus();

    const grab = h("canvas");
    const requestId = newRequestId();
    let socket = null;
    let frameId = 0; // frames sent; the server numbers binary frames the same way
    let answeredId = 0; // newest frame answered (older unanswered ones were dropped as stale)
    let lastSentAt = 0;
    let timer = 0;
    let ending = false;
    let savedId = "";

    // Whether to record is fixed when the session starts (the server records on close when asked).
    const connect = () => {
      socket = new WebSocket(api.liveUrl({ record: record.checked ? 1 : 0, request_id: requestId }));
      socket.binaryType = "arraybuffer";
      record.disabled = true;
      start.hidden = cancel.hidden = true;
      stop.hidden = false;
      stop.textContent = record.checked ? "Stop and save" : "Stop";
      stop.focus();
      info.textContent = "Connecting…";
      socket.addEventListener("open", () => {
        info.textContent = "Live: the bars follow the largest face.";
        ctx.announce("Live mode started.", "info");
        timer = setInterval(sendFrame, 1000 / LIVE_FPS);
      });
      socket.addEventListener("message", (event) => onMessage(event.data));
      socket.addEventListener("close", (event) => {
        clearInterval(timer);
        if (!ending) {
          info.textContent =
            event.code === 4401
              ? "Live mode stopped: please log in again."
              : `Live mode disconnected${event.reason ? `: ${event.reason}` : ""}.`;
          ctx.announce(info.textContent, "error");
        }
      });
      socket.addEventListener("error", () => {
        info.textContent = "Live connection failed.";
      });
    };

    const sendFrame = () => {
      // At most two frames in flight: a slow server gets fewer frames, not a queue. The server keeps
      // only the newest waiting frame, so after a quiet second we stop waiting for dropped ones.
      if (!socket || socket.readyState !== WebSocket.OPEN || !video.videoWidth) return;
      if (frameId - answeredId >= 2 && performance.now() - lastSentAt < 1000) return;
      const scale = Math.min(1, LIVE_FRAME_WIDTH / video.videoWidth);
      grab.width = Math.round(video.videoWidth * scale);
      grab.height = Math.round(video.videoHeight * scale);
      grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
      grab.toBlob(
        async (blob) => {
          if (!blob || socket.readyState !== WebSocket.OPEN || ending) return;
          const bytes = await blob.arrayBuffer();
          frameId += 1;
          lastSentAt = performance.now();
          socket.send(bytes);
        },
        "image/jpeg",
        0.8,
      );
    };

    const onMessage = (data) => {
      let reply;
      try {
        reply = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
      } catch {
        return;
      }
      if (reply.error && reply.error.message && !reply.faces) {
        // A rejected frame (ImageError), or an API error before closing.
        info.textContent = reply.error.message;
      }
      if (reply.analysis_id) {
        savedId = reply.analysis_id;
        return;
      }
      answeredId = Math.max(answeredId, Number(reply.frame_id) || 0);
      const faces = reply.faces || [];
      drawOverlay(overlay, video, faces, LIVE_FRAME_WIDTH);
      if (faces.length) {
        bars.update(faces[0].scores);
        const top = expressionOf(faces[0].dominant) || dominantOf(faces[0].scores);
        info.textContent = `${faces.length} face(s) · apparent expression ${top.label} ${percent(
          faces[0].scores?.[top.key],
        )}`;
      } else if (!reply.error) {
        info.textContent = "No face in view.";
      }
    };

    stop.addEventListener("click", () =>
      busy(stop, "Saving…", async () => {
        clearInterval(timer);
        if (socket && socket.readyState === WebSocket.OPEN && record.checked) {
          ending = true;
          socket.send("end");
          // The server answers with the summary's analysis_id, then closes.
          await new Promise((resolve) => {
            socket.addEventListener("close", resolve, { once: true });
            setTimeout(resolve, 5000);
          });
        }
        ending = true;
        if (socket && socket.readyState <= WebSocket.OPEN) socket.close();
        stopCamera();
        if (savedId) {
          ctx.announce("Live session saved to your emotion centre.", "success");
          resultBox.replaceChildren(
            h(
              "p",
              { class: "notice", id: "live-saved" },
              "Live session saved. ",
              h("a", { href: `#/history/${savedId}` }, "Open it in the emotion centre"),
            ),
          );
        } else if (record.checked) {
          resultBox.replaceChildren(
            h("p", { class: "notice" }, "Nothing was saved: no face was seen during the session."),
          );
        }
      }),
    );
    cleanups.push(() => {
      ending = true;
      clearInterval(timer);
      if (socket && socket.readyState <= WebSocket.OPEN) socket.close();
    });
    start.addEventListener("click", connect);
  }

  return () => cleanups.forEach((fn) => fn());
}

// --- drawing

function drawPhoto(canvas, bitmap, faces, selected) {
  // Limit the backing store so huge photos stay cheap; boxes scale with it.
  const scale = Math.min(1, 1600 / Math.max(bitmap.width, bitmap.height));
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const g = canvas.getContext("2d");
  g.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const line = Math.max(2, Math.round(canvas.width / 160));
  faces.forEach((face, i) => {
    const b = face.box || {};
    const [x, y, w, hgt] = [b.x * scale, b.y * scale, b.width * scale, b.height * scale];
    const isSelected = i === selected;
    g.lineWidth = isSelected ? line * 1.8 : line;
    g.strokeStyle = "#ffffff";
    g.strokeRect(x - line / 2, y - line / 2, w + line, hgt + line);
    g.strokeStyle = isSelected ? "#ffb300" : "#1f5f8b";
    g.strokeRect(x, y, w, hgt);
    const label = `${i + 1}`;
    const size = Math.max(14, Math.round(canvas.width / 40));
    g.font = `bold ${size}px system-ui, sans-serif`;
    const pad = size * 0.3;
    g.fillStyle = isSelected ? "#ffb300" : "#1f5f8b";
    g.fillRect(x, Math.max(0, y - size - pad * 2), g.measureText(label).width + pad * 2, size + pad * 2);
    g.fillStyle = isSelected ? "#000000" : "#ffffff";
    g.fillText(label, x + pad, Math.max(size + pad * 0.5, y - pad * 1.2));
  });
}

function drawOverlay(overlay, video, faces, frameWidth) {
  overlay.width = video.videoWidth;
  overlay.height = video.videoHeight;
  const g = overlay.getContext("2d");
  g.clearRect(0, 0, overlay.width, overlay.height);
  // Boxes come in the coordinates of the downscaled frame we sent.
  const scale = video.videoWidth / Math.min(frameWidth, video.videoWidth);
  g.lineWidth = Math.max(2, overlay.width / 200);
  faces.forEach((face, i) => {
    const b = face.box || {};
    g.strokeStyle = i === 0 ? "#ffb300" : "#ffffff";
    g.strokeRect(b.x * scale, b.y * scale, b.width * scale, b.height * scale);
  });
}
