// A live session in the browser: WebRTC to the hub's Janus through the hub's JSON API
// (/api/live/LID/...), every frame end-to-end encrypted in live-e2ee-worker.js with the session
// key (Janus never holds it), each remote feed through its own GainNode into one output.
//
// What the page gives this script: an element #live-media (its data-live-id, else the id in
// /live/LID; data-role "listener" or "interpreter" and data-language for an interpreter), the
// hub's CSRF token in any input[name=csrf_token] (else asked from /api/csrf), and the quick-exit
// link #quick-exit. Everything else is drawn inside #live-media.
(function () {
  "use strict";
  var root = document.getElementById("live-media");
  if (!root || !window.RTCPeerConnection) return;
  var match = location.pathname.match(/^\/live\/([^/]+)/);
  var liveId = root.dataset.liveId || (match && match[1]);
  if (!liveId) return;
  var api = "/api/live/" + encodeURIComponent(liveId);
  var FLOOR_UNDER_INTERPRETATION = 0.1;
  var ICE_GATHERING_LIMIT_MS = 5000;
  var QUALITY_EVERY_MS = 2000;

  var live = {
    joined: null, // the join answer
    version: 0,
    state: null,
    publisher: null,
    subscriber: null,
    subscribed: [], // the feeds our subscriber handle carries
    hubNamesStreams: false,
    feedByMid: {},
    feeds: {}, // feed_id -> {audio element, gain node}
    listening: "", // "" the floor, or a language
    audio: null,
    output: null,
    worker: null,
    local: null,
    left: false,
    quality: "",
  };
  window.crosslineLive = live; // read by the browser tests, and handy when debugging

  root.innerHTML =
    '<div id="live-lobby" class="stack">' +
    '<label class="check"><input type="checkbox" id="live-video"> Also send video</label>' +
    '<button type="button" id="live-join">Join with your microphone</button></div>' +
    '<div id="live-in" class="stack" hidden>' +
    '<p id="live-status" role="status"></p>' +
    '<label>Listen to <select id="live-language"><option value="">the floor</option></select></label>' +
    '<div><button type="button" id="live-hand">Raise hand</button> ' +
    '<button type="button" id="live-leave">Leave</button></div>' +
    '<p>Connection: <span id="live-quality">checking…</span> ' +
    '<button type="button" id="live-drop-video" hidden>Turn off video</button></p>' +
    '<h3>Speaking order</h3><ol id="live-hands"></ol>' +
    '<h3>In the session</h3><ul id="live-people"></ul>' +
    '<div id="live-facilitator" hidden><h3>Facilitation</h3><div>' +
    '<button type="button" data-action="next_speaker">Next speaker</button> ' +
    '<button type="button" data-action="mute_all">Mute all</button> ' +
    '<button type="button" data-action="unmute_all">Unmute all</button> ' +
    '<button type="button" data-action="lock">Lock</button> ' +
    '<button type="button" data-action="unlock">Unlock</button> ' +
    '<button type="button" data-action="end">End the session</button></div>' +
    '<table><thead><tr><th>Side</th><th>Speaking time</th></tr></thead><tbody id="live-speaking"></tbody></table></div>' +
    '<div id="live-videos"></div></div>';
  var $ = function (id) { return document.getElementById(id); };

  // --- the hub's API ---------------------------------------------------------------------------
  var csrf = null;
  async function csrfToken() {
    if (csrf) return csrf;
    var field = document.querySelector("input[name=csrf_token]");
    if (field && field.value) return (csrf = field.value);
    var response = await fetch("/api/csrf", { credentials: "same-origin" });
    return (csrf = (await response.json()).csrf_token);
  }

  async function call(method, path, body, options) {
    var init = Object.assign({ method: method, credentials: "same-origin", headers: {} }, options || {});
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = await csrfToken();
      init.body = JSON.stringify(body);
    }
    var response = await fetch(api + path, init);
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error(data.error || "The hub refused (" + response.status + ").");
    return data;
  }

  function say(text) { $("live-status").textContent = text; }

  // --- WebRTC ----------------------------------------------------------------------------------
  function gathered(pc) {
    // No trickle: the SDP we send carries our candidates. Bounded, so a slow interface cannot hang us.
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(function (resolve) {
      var timer = setTimeout(resolve, ICE_GATHERING_LIMIT_MS);
      pc.addEventListener("icegatheringstatechange", function () {
        if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  }

  function newConnection() {
    return new RTCPeerConnection({ iceServers: live.joined.ice_servers || [], encodedInsertableStreams: true });
  }

  function sendKeys(state) {
    var keys = [state.key].concat(state.previous_keys || []);
    live.worker.postMessage({ type: "keys", epoch: state.key.epoch, keys: keys });
  }

  function encrypt(sender, kind) {
    var streams = sender.createEncodedStreams();
    live.worker.postMessage({ type: "encrypt", kind: kind, readable: streams.readable, writable: streams.writable },
      [streams.readable, streams.writable]);
  }

  async function publish(video) {
    live.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: video });
    var pc = (live.publisher = newConnection());
    live.local.getTracks().forEach(function (track) {
      var init = { direction: "sendonly", streams: [live.local] };
      if (track.kind === "audio") init.sendEncodings = [{ maxBitrate: live.joined.audio_bitrate }];
      var transceiver = pc.addTransceiver(track, init);
      onlyCodec(transceiver, track.kind === "audio" ? "audio/opus" : "video/vp8");
      encrypt(transceiver.sender, track.kind);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    var answer = await call("POST", "/publish", { sdp: capOpus(pc.localDescription.sdp), video: video });
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  }

  function onlyCodec(transceiver, mimeType) {
    // Opus and VP8 only: the clear header sizes of the frame format are VP8's, and a short offer
    // fits in one message of Janus's UNIX-socket API (it drops anything over 8 KiB).
    if (!transceiver.setCodecPreferences || !RTCRtpSender.getCapabilities) return;
    var codecs = RTCRtpSender.getCapabilities(mimeType.split("/")[0]).codecs.filter(function (codec) {
      return codec.mimeType.toLowerCase() === mimeType;
    });
    if (codecs.length) transceiver.setCodecPreferences(codecs);
  }

  function capOpus(sdp) {
    // Ask for the low bitrate in the SDP too (the sender's own cap is set on its encoding).
    var payload = (sdp.match(/a=rtpmap:(\d+) opus\/48000/i) || [])[1];
    if (!payload) return sdp;
    return sdp.replace(new RegExp("(a=fmtp:" + payload + " [^\\r\\n]*)"), function (line) {
      return /maxaveragebitrate/.test(line) ? line : line + ";maxaveragebitrate=" + live.joined.audio_bitrate;
    });
  }

  // Which track is whose: the hub names each stream's feed ("streams": {mid: feed_id}) when it
  // can. Without that, feeds are added one per offer and the newly active m-line is the new feed's.
  var wanted = [];
  var syncing = null;

  function resubscribe(feedIds) {
    wanted = feedIds;
    if (syncing) return;
    syncing = sync().then(function () { syncing = null; showStatus(); }, function (error) {
      // A feed may not be ready yet, or the link dropped: try again shortly with what is wanted then.
      say(error.message);
      setTimeout(function () { syncing = null; if (!live.left) resubscribe(wanted); }, 2000);
    });
  }

  function same(a, b) { return a.slice().sort().join() === b.slice().sort().join(); }

  async function sync() {
    while (!live.left && !same(wanted, live.subscribed)) {
      var target = wanted.slice();
      var kept = live.subscribed.filter(function (id) { return target.indexOf(id) >= 0; });
      var added = target.filter(function (id) { return live.subscribed.indexOf(id) < 0; });
      if (!live.hubNamesStreams && added.length) target = kept.concat(added.slice(0, 1));
      if (target.length) await subscribeTo(target, added);
      live.subscribed = target;
    }
  }

  function activeMids(sdp) {
    var mids = [];
    sdp.split(/\r?\n(?=m=)/).forEach(function (section) {
      var mid = (section.match(/a=mid:(\S+)/) || [])[1];
      if (mid && !/^m=\S+ 0 /.test(section) && !/a=inactive/.test(section)) mids.push(mid);
    });
    return mids;
  }

  async function subscribeTo(feedIds, added) {
    var offer = await call("POST", "/subscribe", { feeds: feedIds });
    if (!offer.sdp) throw new Error("The hub sent no offer for the voices in this session.");
    if (!live.subscriber) {
      live.subscriber = newConnection();
      live.subscriber.addEventListener("track", received);
    }
    var pc = live.subscriber;
    var before = pc.remoteDescription ? activeMids(pc.remoteDescription.sdp) : [];
    if (offer.streams) {
      // {mid: feed_id} for every m-line of this offer.
      live.hubNamesStreams = true;
      Object.keys(offer.streams).forEach(function (mid) { live.feedByMid[mid] = offer.streams[mid]; });
    }
    var fresh = activeMids(offer.sdp).filter(function (mid) { return before.indexOf(mid) < 0; });
    if (!offer.streams) fresh.forEach(function (mid) { live.feedByMid[mid] = added[0]; });
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    await call("POST", "/subscribe/answer", { sdp: pc.localDescription.sdp });
    setGains();
    if (!offer.streams && added.length && !fresh.length) throw new Error("Waiting for a voice to be ready…");
  }

  var decrypting = new WeakSet();
  function received(event) {
    if (!decrypting.has(event.receiver)) {
      decrypting.add(event.receiver);
      var streams = event.receiver.createEncodedStreams();
      live.worker.postMessage({ type: "decrypt", kind: event.track.kind, readable: streams.readable, writable: streams.writable },
        [streams.readable, streams.writable]);
    }
    var feedId = live.feedByMid[event.transceiver.mid];
    var stream = new MediaStream([event.track]);
    if (event.track.kind === "video") {
      var video = document.createElement("video");
      video.autoplay = true; video.playsInline = true; video.muted = true; video.srcObject = stream;
      video.dataset.feed = feedId;
      $("live-videos").appendChild(video);
      event.track.addEventListener("ended", function () { video.remove(); });
      return;
    }
    // Chromium gives Web Audio a remote track's samples only while a media element plays it.
    var element = new Audio();
    element.muted = true;
    element.srcObject = stream;
    element.play().catch(function () {});
    var gain = live.audio.createGain();
    live.audio.createMediaStreamSource(stream).connect(gain);
    gain.connect(live.output);
    var previous = live.feeds[feedId];
    if (previous) previous.gain.disconnect();
    live.feeds[feedId] = { element: element, gain: gain, track: event.track };
    setGains();
  }

  // --- mixing: the floor, or an interpretation over a quieter floor -------------------------------
  function setGains() {
    var interpreter = live.joined && live.joined.role === "interpreter";
    (live.state ? live.state.feeds : []).forEach(function (feed) {
      var entry = live.feeds[feed.feed_id];
      if (!entry) return;
      var level;
      if (!feed.language) level = live.listening && !interpreter ? FLOOR_UNDER_INTERPRETATION : 1;
      else level = !interpreter && feed.language === live.listening ? 1 : 0;
      entry.gain.gain.setTargetAtTime(level, live.audio.currentTime, 0.05);
    });
  }

  // --- the session's state, long-polled -------------------------------------------------------
  async function follow() {
    var pause = 1000;
    while (!live.left) {
      try {
        var state = await call("GET", "/state?since=" + live.version);
        pause = 1000;
        if (state.version > live.version) apply(state);
      } catch (error) {
        if (live.left) return;
        say(error.message);
        await new Promise(function (resolve) { setTimeout(resolve, pause); });
        pause = Math.min(pause * 2, 15000);
      }
    }
  }

  function apply(state) {
    live.version = state.version;
    live.state = state;
    if (state.key) sendKeys(state);
    if (state.you && state.you.removed) return stop("The facilitator removed you from this session.");
    if (state.status === "ended") return stop("The session has ended.");
    showStatus();
    var mine = live.joined.feed_id;
    resubscribe(state.feeds.map(function (f) { return f.feed_id; }).filter(function (id) { return id !== mine; }));
    setGains();
    $("live-hand").textContent = state.you && state.you.hand_raised ? "Lower hand" : "Raise hand";
    fill($("live-hands"), state.hands || [], function (name) { return text("li", name); });
    fill($("live-people"), state.participants || state.feeds, person);
    if (state.speaking_seconds_by_side) {
      fill($("live-speaking"), Object.keys(state.speaking_seconds_by_side), function (side) {
        var row = document.createElement("tr");
        row.appendChild(text("td", side));
        row.appendChild(text("td", minutes(state.speaking_seconds_by_side[side])));
        return row;
      });
    }
  }

  function showStatus() {
    var state = live.state;
    if (!state || live.left) return;
    say(state.status === "locked" ? "The session is locked: nobody new can join." :
      state.you && state.you.muted ? "The facilitator muted you." : "You are in the session.");
  }

  function stop(message) {
    close();
    say(message);
    Array.prototype.forEach.call($("live-in").querySelectorAll("button, select"), function (el) { el.disabled = true; });
  }

  function close() {
    live.left = true;
    [live.publisher, live.subscriber].forEach(function (pc) { if (pc) pc.close(); });
    if (live.local) live.local.getTracks().forEach(function (track) { track.stop(); });
    if (live.audio) live.audio.close();
    if (live.worker) { live.worker.postMessage({ type: "forget" }); live.worker.terminate(); }
  }

  // --- what she sees -----------------------------------------------------------------------------
  function text(tag, value) {
    var el = document.createElement(tag);
    el.textContent = value;
    el.dir = "auto";
    return el;
  }

  function fill(list, items, make) {
    list.replaceChildren.apply(list, items.map(make));
  }

  function minutes(seconds) {
    var s = Math.round(seconds);
    return Math.floor(s / 60) + " min " + (s % 60) + " s";
  }

  function person(someone) {
    // A feed, or for facilitators a participant (who may not be sending yet) with her id.
    var item = text("li", someone.display + (someone.side ? " (" + someone.side + ")" : "") +
      (someone.language ? " — interpreting into " + someone.language : "") + (someone.muted ? " — muted" : ""));
    if (someone.participant_id && someone.participant_id !== live.joined.participant_id) {
      [[someone.muted ? "unmute" : "mute", someone.muted ? "Unmute" : "Mute"], ["remove", "Remove"]].forEach(function (pair) {
        var button = text("button", pair[1]);
        button.type = "button";
        button.dataset.action = pair[0];
        button.dataset.participant = someone.participant_id;
        item.append(" ", button);
      });
    }
    return item;
  }

  // --- connection quality from getStats -----------------------------------------------------------
  var lastCounts = null;
  async function measure() {
    if (live.left) return;
    var lost = 0, received = 0, rtt = null, jitter = 0;
    for (var pc of [live.subscriber, live.publisher]) {
      if (!pc) continue;
      (await pc.getStats()).forEach(function (report) {
        if (report.type === "inbound-rtp") {
          lost += report.packetsLost || 0;
          received += report.packetsReceived || 0;
          jitter = Math.max(jitter, report.jitter || 0);
        } else if (report.type === "candidate-pair" && report.nominated && report.currentRoundTripTime !== undefined) {
          rtt = Math.max(rtt || 0, report.currentRoundTripTime);
        }
      });
    }
    var loss = 0;
    if (lastCounts) {
      var sent = received - lastCounts.received + lost - lastCounts.lost;
      loss = sent > 0 ? (lost - lastCounts.lost) / sent : 0;
    }
    lastCounts = { lost: lost, received: received };
    var words = loss > 0.08 || (rtt || 0) > 0.8 || jitter > 0.1 ? "poor" :
      loss > 0.02 || (rtt || 0) > 0.3 || jitter > 0.03 ? "fair" : "good";
    live.quality = words;
    $("live-quality").textContent = words + " (" + Math.round(loss * 100) + " % lost" +
      (rtt === null ? "" : ", " + Math.round(rtt * 1000) + " ms round trip") + ", " + Math.round(jitter * 1000) + " ms jitter)";
    var sendingVideo = live.local && live.local.getVideoTracks().some(function (t) { return t.readyState === "live"; });
    $("live-drop-video").hidden = !(words === "poor" && sendingVideo);
  }

  // --- buttons -----------------------------------------------------------------------------------
  async function join() {
    $("live-join").disabled = true;
    var video = $("live-video").checked;
    try {
      live.joined = await call("POST", "/join", {
        video: video, role: root.dataset.role || "listener", language: root.dataset.language || null,
      });
      live.joined.role = root.dataset.role || "listener";
      live.audio = new AudioContext();
      live.output = live.audio.createGain();
      live.output.connect(live.audio.destination);
      live.worker = new Worker("/static/live-e2ee-worker.js");
      sendKeys({ key: live.joined.key, previous_keys: [] });
      (live.joined.languages || []).forEach(function (language) {
        var option = text("option", language);
        option.value = language;
        $("live-language").appendChild(option);
      });
      $("live-language").parentElement.hidden = live.joined.role === "interpreter" || !live.joined.languages.length;
      $("live-facilitator").hidden = !live.joined.facilitator;
      $("live-lobby").hidden = true;
      $("live-in").hidden = false;
      say("Connecting…");
      await publish(video);
      follow();
      setInterval(measure, QUALITY_EVERY_MS);
    } catch (error) {
      say(error.message);
      $("live-in").hidden = false;
      $("live-join").disabled = false;
    }
  }

  function leave() {
    // At once: the hub is told with a request that survives the page going away.
    if (live.left || !live.joined) { close(); return; }
    fetch(api + "/leave", {
      method: "POST", keepalive: true, credentials: "same-origin", body: "{}",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf || "" },
    }).catch(function () {});
    close();
  }

  $("live-join").addEventListener("click", join);
  $("live-leave").addEventListener("click", function () { leave(); stop("You left the session."); });
  $("live-hand").addEventListener("click", function () {
    call("POST", "/hand", { raised: !(live.state && live.state.you && live.state.you.hand_raised) })
      .catch(function (error) { say(error.message); });
  });
  $("live-language").addEventListener("change", function (event) {
    live.listening = event.target.value;
    setGains();
  });
  $("live-drop-video").addEventListener("click", function () {
    live.local.getVideoTracks().forEach(function (track) { track.stop(); });
    live.publisher.getSenders().forEach(function (sender) {
      if (sender.track && sender.track.kind === "video") sender.replaceTrack(null);
    });
    $("live-drop-video").hidden = true;
  });
  root.addEventListener("click", function (event) {
    var action = event.target.dataset && event.target.dataset.action;
    if (!action) return;
    call("POST", "/control", { action: action, participant_id: event.target.dataset.participant || null })
      .catch(function (error) { say(error.message); });
  });
  var exit = document.getElementById("quick-exit");
  if (exit) exit.addEventListener("click", leave);
  document.addEventListener("keydown", function (event) { if (event.key === "Escape") leave(); });
  window.addEventListener("pagehide", leave);
  csrfToken().catch(function () {});
})();
