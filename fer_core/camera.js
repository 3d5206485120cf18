// The live camera view of the Video page (a Streamlit v2 component, see fer_core/ui.py live_camera).
//
// The browser's camera runs in a hidden <video>; a frame is grabbed to a canvas, sent to Python as a
// JPEG data URL (trigger value "frame"), and the next one only once Python's annotated answer has come
// back as this component's data: one frame in flight, so a slow server lowers the frame rate instead of
// building a queue. No WebRTC, so nothing to negotiate and no STUN server: it works on localhost offline.
//
// Streamlit calls this function again whenever `data` changes; what lives across calls is kept on
// parentElement.

const WIDTH = 640;
const HEIGHT = 480;

function sendFrame(live) {
  if (live.stopped || !live.video.videoWidth) return;
  const context = live.canvas.getContext("2d");
  live.canvas.width = Math.min(WIDTH, live.video.videoWidth);
  live.canvas.height = Math.round((live.canvas.width * live.video.videoHeight) / live.video.videoWidth);
  context.drawImage(live.video, 0, 0, live.canvas.width, live.canvas.height);
  live.sent += 1;
  live.sentAt = performance.now();
  const t0 = performance.now();
  const url = live.canvas.toDataURL("image/jpeg", live.quality);
  (window.__ferStats ||= []).push(['send', t0, performance.now() - t0]);
  live.setTriggerValue("frame", { seq: live.sent, image: live.canvas.toDataURL("image/jpeg", live.quality) });
}

function scheduleNext(live) {
  const wait = Math.max(0, live.minIntervalMs - (performance.now() - live.sentAt));
  clearTimeout(live.timer);
  live.timer = setTimeout(() => sendFrame(live), wait);
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let live = parentElement.__ferLive;
  if (!live) {
    const root = document.createElement("div");
    root.className = "fer-live";
    root.innerHTML =
      '<img class="fer-live-frame" alt="annotated camera frame">' +
      '<div class="fer-live-status" data-testid="fer-live-status">Starting the camera …</div>' +
      '<video playsinline muted style="display:none"></video><canvas style="display:none"></canvas>';
    parentElement.appendChild(root);
    live = {
      image: root.querySelector("img"),
      status: root.querySelector(".fer-live-status"),
      video: root.querySelector("video"),
      canvas: root.querySelector("canvas"),
      sent: 0,
      shown: 0,
      sentAt: 0,
      timer: null,
      stopped: false,
      stream: null,
    };
    parentElement.__ferLive = live;
    // An answer can be lost (a rerun of the whole page replaces the one on its way): send again
    // rather than stall.
    live.watchdog = setInterval(() => {
      if (live.sent > live.shown && performance.now() - live.sentAt > 4000) sendFrame(live);
    }, 1000);
    navigator.mediaDevices
      .getUserMedia({ video: { width: { ideal: WIDTH }, height: { ideal: HEIGHT } }, audio: false })
      .then((stream) => {
        live.stream = stream;
        live.video.srcObject = stream;
        return live.video.play();
      })
      .then(() => {
        live.status.textContent = "Camera on: waiting for the first annotated frame …";
        sendFrame(live);
      })
      .catch((error) => {
        live.status.textContent =
          "The camera cannot be used here (" + error.name + ": " + error.message + "). " +
          "Allow the camera for this page, or take snapshots on the Predict page.";
      });
  }
  live.setTriggerValue = setTriggerValue;
  live.minIntervalMs = 1000 / ((data && data.max_fps) || 8);
  live.quality = (data && data.quality) || 0.75;
  (window.__ferStats ||= []).push(['call', performance.now(), data && data.seq]);
  if (data && data.seq && data.seq !== live.shown) {
    live.shown = data.seq;
    live.image.src = data.image;
    live.image.dataset.seq = String(data.seq);
    live.status.textContent = data.caption;
    if (data.seq >= live.sent) scheduleNext(live);
  }
  return () => {
    live.stopped = true;
    clearTimeout(live.timer);
    clearInterval(live.watchdog);
    if (live.stream) live.stream.getTracks().forEach((track) => track.stop());
  };
}
