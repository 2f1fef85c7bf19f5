"""Live sessions end to end: Chromium participants whose fake microphones play test tones, the real
hub and the Janus that `crossline up` supervises, all on loopback. Tones are found in what each page
plays (an AnalyserNode after the per-feed gains), in the packets a client without the key receives,
and, through libopus, in the frames Janus relayed."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import ADMIN, issue_invitation
from tests.live_audio import (HEARD_DB, LINE_DB, TONES, chromium_args, decrypt_audio_frame, heard, hears, opus_decode,
                              pattern_wav, tone_present, tone_wav, tones_heard)
from tests.support import WebSession, wait_for
from tests.test_browser_staff_pages import CHROMIUM_ARGS

pytestmark = [pytest.mark.synapse, pytest.mark.browser]

MEDIA_S = 60  # ICE, DTLS and a subscription on a loaded two-core machine
FLOOR, LEFT, RIGHT, INTERPRETER = TONES["alice"], TONES["bella"], TONES["chiara"], TONES["interpreter"]


@dataclass(eq=False)
class Person:
    name: str
    frequency: float | None
    page: object

    def live(self, expression: str):
        return self.page.evaluate(f"(() => {{ const live = window.crosslineLive; return {expression}; }})()")

    def api(self, lid: str, path: str, body: dict | None = None) -> dict:
        """The hub's JSON API from her page (her cookie, the page's CSRF token)."""
        return self.page.evaluate(API_JS, [lid, path, body])


API_JS = """async ([lid, path, body]) => {
  const token = document.querySelector('input[name=csrf_token]').value;
  const init = body === null ? {} : {method: 'POST', body: JSON.stringify(body),
    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': token}};
  const response = await fetch('/api/live/' + lid + path, init);
  return {status: response.status, body: await response.json()};
}"""


def form(session: WebSession, page: str, action: str, fields: dict) -> tuple[int, str, str]:
    status, text = session.get(page)
    assert status == 200, text
    token = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    return session.request("POST", action, {"csrf_token": token, **fields})


class Browsers:
    """One Chromium process per person: the fake microphone's file is per process."""

    def __init__(self, playwright, base_url: str, wav_dir: Path):
        self.playwright, self.base_url, self.wav_dir, self.open = playwright, base_url, wav_dir, []

    def person(self, name: str, frequency: float | None, wav: Path | None = None) -> Person:
        wav = wav or tone_wav(self.wav_dir / f"{name}.wav", frequency or 0.0)
        browser = self.playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                  args=CHROMIUM_ARGS + chromium_args(wav))
        self.open.append(browser)
        context = browser.new_context(base_url=self.base_url, viewport={"width": 360, "height": 740})
        context.route("https://www.bbc.com/**", lambda route: route.fulfill(body="<p>Weather</p>",
                                                                           content_type="text/html"))
        return Person(name, frequency, context.new_page())

    def close(self) -> None:
        for browser in self.open:
            browser.close()


def sign_in_with_invitation(world, person: Person, side: str) -> None:
    link = issue_invitation(world.admin, world.line_id, world.side_ids[side])
    person.page.goto(link.removeprefix(world.stack.hub_url))
    person.page.click("#web-only button")
    person.page.wait_for_selector("#return-link")


def sign_in_as_admin(person: Person) -> None:
    page = person.page
    page.goto("/login")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url("**/lines")


def open_live_session(world, consultation_id: int) -> str:
    path = f"/consultations/{consultation_id}"
    status, text, url = form(world.admin, path, f"{path}/live-sessions", {"starts_at": ""})
    assert status == 200 and "/live/" in url, text
    return url.rsplit("/", 1)[1]


def join(person: Person, lid: str, video: bool = False) -> None:
    person.page.goto(f"/live/{lid}")
    if video:
        person.page.check("#live-video")
    person.page.click("#live-join")
    try:
        wait_for(lambda: person.live("live.publisher && live.publisher.connectionState") == "connected",
                 timeout_s=MEDIA_S, what=f"{person.name}'s microphone to reach Janus")
    except AssertionError as error:
        raise AssertionError(f"{error}; her page says: {person.page.text_content('#live-status')}") from None


def wait_to_hear(person: Person, frequencies: list[float], absent: list[float] = ()) -> dict:
    def check():
        found = tones_heard(person.page, [*frequencies, *absent])
        ok = found and all(found[f] for f in frequencies) and not any(found[f] for f in absent)
        return found if ok else None

    try:
        return wait_for(check, timeout_s=MEDIA_S, what=f"{person.name} to hear {frequencies} and not {list(absent)}")
    except AssertionError as error:
        raise AssertionError(f"{error}; her page says: {person.page.text_content('#live-status')}") from None


@dataclass
class Live:
    lid: str
    fac: Person
    lena: Person
    rita: Person
    ira: Person
    kira: Person
    browsers: Browsers
    consultation_id: int
    second: dict | None = None  # the second session: its id and facilitator page


@pytest.fixture(scope="module")
def live(world, tmp_path_factory):
    wav_dir = tmp_path_factory.mktemp("tones")
    status, text, url = form(world.admin, f"/lines/{world.line_id}/consultations/new",
                             f"/lines/{world.line_id}/consultations",
                             {"title": "Live crossing talks", "questions": "What first?",
                              "side_ids": [str(v) for v in world.side_ids.values()], "premoderation": "on"})
    assert status == 200, text
    consultation_id = int(url.rsplit("/", 1)[1])
    lid = open_live_session(world, consultation_id)

    with sync_playwright() as playwright:
        browsers = Browsers(playwright, world.stack.hub_url, wav_dir)
        try:
            fac = browsers.person("facilitator", FLOOR)
            sign_in_as_admin(fac)
            lena, rita = browsers.person("lena", LEFT), browsers.person("rita", RIGHT)
            sign_in_with_invitation(world, lena, "Left bank")
            sign_in_with_invitation(world, rita, "Right bank")

            # Ira interprets into Russian: the facilitator names her before anyone joins.
            candidates = lambda: set(re.findall(r'<option value="(\d+)">', world.admin.get(f"/live/{lid}")[1]))
            before = candidates()
            ira = browsers.person("ira", INTERPRETER)
            sign_in_with_invitation(world, ira, "Left bank")
            (ira_id,) = candidates() - before
            status, text, _ = form(world.admin, f"/live/{lid}", f"/live/{lid}/interpreters",
                                   {"member_id": ira_id, "language": "ru"})
            assert status == 200, text

            # Kira joins through the API and drops the key: a silent microphone is enough for her.
            kira = browsers.person("kira", None, wav=tone_wav(wav_dir / "silence.wav", 0.0, seconds=1))
            sign_in_with_invitation(world, kira, "Right bank")
            kira.page.goto(f"/live/{lid}")
            yield Live(lid, fac, lena, rita, ira, kira, browsers, consultation_id)
        finally:
            browsers.close()


def test_three_participants_each_hear_the_other_two_and_nobody_hears_an_interpretation_unasked(live):
    for person in (live.fac, live.lena, live.rita, live.ira):
        join(person, live.lid)
    assert live.ira.page.get_attribute("#live-media", "data-role") == "interpreter"
    tones = {live.fac: FLOOR, live.lena: LEFT, live.rita: RIGHT}
    for person, own in tones.items():
        others = [f for p, f in tones.items() if p is not person]
        wait_to_hear(person, others, absent=[INTERPRETER])
    # Interpreters hear the floor.
    wait_to_hear(live.ira, [FLOOR, LEFT, RIGHT])
    # The page fits a phone.
    assert live.lena.page.evaluate("document.documentElement.scrollWidth") <= 360
    assert live.lena.page.text_content("#live-quality").startswith("good")


KEYLESS_JS = """async ([lid, feedId]) => {
  // A participant who drops the key: her own RTCPeerConnection through the JSON API. The encoded
  // frames pass through untouched (a copy is kept): the decoder gets exactly what Janus relayed.
  const token = document.querySelector('input[name=csrf_token]').value;
  const post = async (path, body) => {
    const response = await fetch('/api/live/' + lid + path, {method: 'POST', body: JSON.stringify(body),
      headers: {'Content-Type': 'application/json', 'X-CSRF-Token': token}});
    const data = await response.json();
    if (!response.ok) throw new Error(data.error);
    return data;
  };
  const joined = await post('/join', {video: false, role: 'listener', language: null});
  delete joined.key;
  const audio = new AudioContext();
  const output = audio.createGain();
  const kept = {frames: [], pc: null};
  Object.assign(window.crosslineLive, {audio: audio, output: output, keyless: kept});
  const pc = kept.pc = new RTCPeerConnection({encodedInsertableStreams: true});
  pc.ontrack = (event) => {
    const streams = event.receiver.createEncodedStreams();
    streams.readable.pipeThrough(new TransformStream({transform(frame, controller) {
      if (kept.frames.length < 400) kept.frames.push(Array.from(new Uint8Array(frame.data)));
      controller.enqueue(frame);
    }})).pipeTo(streams.writable);
    const element = new Audio();
    element.muted = true;
    element.srcObject = new MediaStream([event.track]);
    element.play();
    audio.createMediaStreamSource(element.srcObject).connect(output);
  };
  const offer = await post('/subscribe', {feeds: [feedId]});
  await pc.setRemoteDescription({type: 'offer', sdp: offer.sdp});
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
  });
  await post('/subscribe/answer', {sdp: pc.localDescription.sdp});
  return joined.participant_id;
}"""


def packets_received(person: Person) -> int:
    return person.page.evaluate("""async () => {
      let count = 0;
      (await window.crosslineLive.keyless.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp') count += r.packetsReceived; });
      return count; }""")


def frames_kept(person: Person) -> int:
    return person.page.evaluate("window.crosslineLive.keyless.frames.length")


def key_forms(key_b64url: str) -> list[str]:
    raw = base64.urlsafe_b64decode(key_b64url + "=" * (-len(key_b64url) % 4))
    return [key_b64url, base64.b64encode(raw).decode(), base64.b64encode(raw).decode().rstrip("="),
            raw.hex(), raw.hex().upper()]


def janus_process(data_dir: Path) -> Path:
    """/proc/PID of the Janus that `crossline up` started for this data directory."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if argv and argv[0].endswith(b"janus") and str(data_dir).encode() in b" ".join(argv):
            return entry
    raise AssertionError("Janus is not running for this stack")


def test_a_client_without_the_key_gets_packets_but_no_tone_and_janus_never_has_the_key(live, world):
    lena_feed = live.lena.live("live.joined.feed_id")
    live.kira.page.evaluate(KEYLESS_JS, [live.lid, lena_feed])
    wait_for(lambda: packets_received(live.kira) > 100, timeout_s=MEDIA_S, what="packets for the keyless client")

    # What she plays has no tone in it, sampled while packets keep arriving.
    for _ in range(8):
        count = frames_kept(live.kira)
        wait_for(lambda: frames_kept(live.kira) >= min(count + 25, 400), what="more relayed frames")
        found = tones_heard(live.kira.page, [LEFT, FLOOR, RIGHT])
        assert found is not None and not any(found.values()), (found, heard(live.kira.page, [LEFT, FLOOR, RIGHT]))
    assert hears(live.lena.page, FLOOR), "the floor is still heard by someone with the key"

    # The frames Janus relayed decode (libopus) to no tone; decrypted with the key, to Lena's.
    wait_for(lambda: frames_kept(live.kira) >= 400, timeout_s=MEDIA_S, what="400 relayed frames")
    frames = [bytes(frame) for frame in live.kira.page.evaluate("window.crosslineLive.keyless.frames")][100:]
    relayed, refused = opus_decode(frames)
    assert not tone_present(relayed, LEFT), "the relayed payload decoded to the tone: it is not encrypted"
    state = live.lena.api(live.lid, "/state")["body"]
    keys = {entry["epoch"] % 256: base64.urlsafe_b64decode(entry["key"] + "=" * (-len(entry["key"]) % 4))
            for entry in [state["key"], *state["previous_keys"]]}
    clear, refused_clear = opus_decode([decrypt_audio_frame(frame, keys) for frame in frames])
    assert refused_clear == 0 and tone_present(clear, LEFT), "the decrypted frames do not hold Lena's tone"

    # Janus never had the key: not in its configuration, its log, its command line or environment,
    # nor in anything `crossline up` printed; and nothing was recorded.
    janus_dir = world.stack.data_dir / "janus"
    assert (janus_dir / "janus.log").exists()
    texts = {str(path): path.read_bytes().decode("latin-1") for path in janus_dir.rglob("*") if path.is_file()}
    texts["crossline up output"] = "".join(world.stack.output)
    janus = janus_process(world.stack.data_dir)
    for part in ("cmdline", "environ"):
        texts[f"Janus's {part}"] = (janus / part).read_bytes().decode("latin-1")
    for entry in [state["key"], *state["previous_keys"], live.lena.live("live.joined.key")]:
        for shape in key_forms(entry["key"]):
            for where, text in texts.items():
                assert shape not in text, f"the key ({shape[:6]}…) is in {where}"
    assert not [p for p in world.stack.data_dir.rglob("*") if p.suffix in (".mjr", ".opus", ".webm", ".wav")]


def test_a_listener_who_chooses_russian_hears_the_interpreter_over_the_floor_and_back(live):
    lena = live.lena
    assert lena.page.is_visible("#live-language")
    lena.page.select_option("#live-language", "ru")

    def interpretation_over_floor():
        levels = heard(lena.page, [INTERPRETER, FLOOR, RIGHT])
        # The floor at 10 % is 20 dB down: much quieter than the interpretation, not gone.
        return levels and levels[INTERPRETER] > HEARD_DB and \
            levels[INTERPRETER] - max(levels[FLOOR], levels[RIGHT]) > 12 and levels

    levels = wait_for(interpretation_over_floor, timeout_s=MEDIA_S, what="the interpretation over the floor")
    assert levels[FLOOR] < levels[INTERPRETER]
    lena.page.select_option("#live-language", "")
    wait_to_hear(lena, [FLOOR, RIGHT], absent=[INTERPRETER])


def test_raised_hands_are_called_alternating_sides(live):
    names = {}
    for person in (live.lena, live.ira, live.kira):  # left, left, right
        assert person.api(live.lid, "/hand", {"raised": True})["status"] == 200
        names[person.name] = person.api(live.lid, "/state")["body"]
    you = {name: state["you"]["participant_id"] for name, state in names.items()}
    hands = live.fac.api(live.lid, "/state")["body"]["hands"]
    participants = {p["participant_id"]: p["display"] for p in live.fac.api(live.lid, "/state")["body"]["participants"]}
    assert hands == [participants[you["lena"]], participants[you["kira"]], participants[you["ira"]]]
    # The facilitator's page shows the same order, and calls the next speaker.
    wait_for(lambda: live.fac.page.locator("#live-hands li").all_text_contents() == hands, what="the queue shown")
    live.fac.page.click("#live-facilitator [data-action=next_speaker]")
    wait_for(lambda: live.fac.page.locator("#live-hands li").all_text_contents() == hands[1:], what="the next speaker")


def test_the_facilitators_mute_and_remove_take_effect(live):
    fac, lena, rita = live.fac, live.lena, live.rita
    lena_id, rita_id = lena.live("live.joined.participant_id"), rita.live("live.joined.participant_id")
    fac.page.click(f"#live-people button[data-action=mute][data-participant='{lena_id}']")
    wait_to_hear(rita, [FLOOR], absent=[LEFT])
    wait_to_hear(fac, [RIGHT], absent=[LEFT])
    wait_for(lambda: "muted you" in lena.page.text_content("#live-status"), what="Lena told she is muted")

    fac.page.click(f"#live-people button[data-action=remove][data-participant='{rita_id}']")
    wait_for(lambda: "removed you" in rita.page.text_content("#live-status"), what="Rita told she was removed")
    wait_to_hear(fac, [], absent=[RIGHT, LEFT])
    wait_to_hear(live.ira, [FLOOR], absent=[RIGHT])
    assert rita.live("live.publisher.connectionState") == "closed"
    assert rita.api(live.lid, "/join", {"video": False, "role": "listener", "language": None})["status"] == 403


SPEAKING = {"Left bank": (LEFT, 18.0), "Right bank": (RIGHT, 14.0)}
LEAD_SILENCE_S = 8.0

TONE_LOG_JS = """([feeds, frequencies, heardDb, lineDb]) => {
  // Every 50 ms: is each feed's tone heard (loud, and a narrow line)? Kept: whether silence came
  // first (the whole tone came after her feed was connected), and when the tone was first and last
  // heard, in the page's audio clock; it is over once unheard for 1.5 s.
  const live = window.crosslineLive;
  const analyser = live.audio.createAnalyser();
  analyser.fftSize = 4096;
  analyser.smoothingTimeConstant = 0;
  live.output.connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  const width = live.audio.sampleRate / analyser.fftSize;
  const level = (f) => { const i = Math.round(f / width); return Math.max(bins[i - 1], bins[i], bins[i + 1]); };
  window.toneLog = feeds.map(() => ({silentFirst: false, first: null, last: null, over: false}));
  setInterval(() => {
    analyser.getFloatFrequencyData(bins);
    const sorted = Array.from(bins).filter(Number.isFinite).sort((a, b) => a - b);
    const floor = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
    const now = live.audio.currentTime;
    feeds.forEach((feed, i) => {
      const log = window.toneLog[i];
      if (!live.feeds[feed]) return;
      const f = frequencies[i];
      const on = level(f) - floor > heardDb && level(f) - Math.max(level(f * 0.93), level(f * 1.07)) > lineDb;
      if (!on && log.first === null) log.silentFirst = true;
      if (on && log.silentFirst && !log.over) { if (log.first === null) log.first = now; log.last = now; }
      if (!on && log.last !== null && now - log.last > 1.5) log.over = true;
    });
  }, 50);
}"""


def test_speaking_time_per_side_is_counted_within_ten_percent(live, world):
    # The first session ends (its pages are told), and a new one counts from zero.
    if live.fac.page.evaluate("!!(window.crosslineLive && window.crosslineLive.joined)"):
        live.fac.page.click("#live-facilitator [data-action=end]")
        wait_for(lambda: "ended" in live.fac.page.text_content("#live-status"), what="the end reaching the page")
    lid = open_live_session(world, live.consultation_id)
    fac = live.browsers.person("facilitator2", None, wav=tone_wav(live.browsers.wav_dir / "quiet.wav", 0.0, 1))
    sign_in_as_admin(fac)
    join(fac, lid)
    live.second = {"lid": lid, "fac": fac}
    speakers = {}
    for index, (side, (frequency, seconds)) in enumerate(SPEAKING.items()):
        wav = pattern_wav(live.browsers.wav_dir / f"speaker{index}.wav", frequency, LEAD_SILENCE_S, seconds, 90)
        speaker = live.browsers.person(f"speaker{index}", frequency, wav=wav)
        sign_in_with_invitation(world, speaker, side)
        speaker.page.goto(f"/live/{lid}")
        speaker.page.click("#live-join")
        speakers[side] = speaker
    feeds = []
    for speaker in speakers.values():
        wait_for(lambda: speaker.live("live.joined && live.joined.feed_id"), what="her feed id")
        feeds.append(speaker.live("live.joined.feed_id"))
    fac.page.evaluate(TONE_LOG_JS, [feeds, [f for f, _ in SPEAKING.values()], HEARD_DB, LINE_DB])

    logs = wait_for(lambda: (lambda logs: all(log["over"] for log in logs) and logs)(
        fac.page.evaluate("window.toneLog")), timeout_s=LEAD_SILENCE_S + 18 + MEDIA_S, what="both tones to end")
    assert all(log["silentFirst"] for log in logs), "a tone had begun before the facilitator could hear it"
    for speaker in speakers.values():
        speaker.page.click("#live-leave")
    mine = fac.live("live.joined.feed_id")
    wait_for(lambda: [f["feed_id"] for f in fac.api(lid, "/state")["body"]["feeds"]] == [mine], what="both speakers gone")
    counted = fac.api(lid, "/state")["body"]["speaking_seconds_by_side"]
    for (side, (_, seconds)), log in zip(SPEAKING.items(), logs):
        heard_s = log["last"] - log["first"]
        what = f"{side}: a tone of {seconds} s, heard for {heard_s:.1f} s, counted {counted.get(side)} s"
        assert abs(heard_s - seconds) <= 0.1 * seconds, what
        assert abs(counted[side] - seconds) <= 0.1 * seconds, what



def test_someone_who_joins_after_others_left_is_heard(live):
    """After the speakers of the speaking-time test left, the facilitator's subscription in Janus
    lost their feeds; Ira, joining now, must still reach her."""
    assert live.second, "runs after the speaking-time test, in its session"
    join(live.ira, live.second["lid"])
    wait_to_hear(live.second["fac"], [INTERPRETER])


def inbound(person: Person, kind: str) -> dict:
    return person.page.evaluate("""async (kind) => {
      const found = {framesDecoded: 0, packetsReceived: 0};
      const pc = window.crosslineLive.subscriber;
      if (!pc) return found;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === kind) {
          found.framesDecoded += r.framesDecoded || 0; found.packetsReceived += r.packetsReceived || 0; } });
      return found; }""", kind)


def test_video_is_optional_end_to_end_encrypted_and_the_bitrate_capped(live):
    assert live.second, "runs after the speaking-time test, in its session"
    lid, fac, kira = live.second["lid"], live.second["fac"], live.kira
    assert not fac.live("live.local.getVideoTracks().length"), "audio only unless she chooses video"
    join(fac, lid)  # again, from a fresh page: a new subscriber handle in Janus
    join(kira, lid, video=True)
    # The facilitator's page decodes her video frames: they were decrypted (a frame that is not is dropped).
    wait_for(lambda: inbound(fac, "video")["framesDecoded"] > 30, timeout_s=MEDIA_S, what="video frames decoded")
    wait_for(lambda: fac.page.evaluate(
        "Array.from(document.querySelectorAll('#live-videos video')).some((v) => v.videoWidth > 0)"),
        what="her video shown")
    # Opus is capped at the session's audio bitrate.
    cap = kira.live("live.joined.audio_bitrate")
    encodings = kira.live("live.publisher.getSenders().filter((s) => s.track && s.track.kind === 'audio')"
                          "[0].getParameters().encodings")
    assert encodings[0]["maxBitrate"] == cap

    # A poor link (her statistics made to show 30 % loss, 1.2 s round trip): the page says so in
    # words and offers to turn video off, which stops her camera at once.
    # Measured from her statistics every few seconds: "checking…" until the first measurement.
    wait_for(lambda: kira.page.text_content("#live-quality").startswith("good"), what="the quality shown as good")
    assert kira.page.is_hidden("#live-drop-video")
    kira.page.evaluate(POOR_LINK_JS)
    wait_for(lambda: kira.page.text_content("#live-quality").startswith("poor"), what="the quality shown as poor")
    kira.page.click("#live-drop-video")
    assert kira.live("live.local.getVideoTracks().every((t) => t.readyState === 'ended')")
    # Taking the track off the connection is asynchronous in the browser (the camera is off already).
    wait_for(lambda: kira.live("live.publisher.getSenders().every((s) => !s.track || s.track.kind === 'audio')"),
             what="no video sent")
    assert kira.page.is_hidden("#live-drop-video")


POOR_LINK_JS = """() => {
  const live = window.crosslineLive;
  let calls = 0;
  const poor = async () => {
    calls += 1;
    return new Map([["in", {type: "inbound-rtp", packetsLost: calls * 30, packetsReceived: calls * 70, jitter: 0.05}],
                    ["pair", {type: "candidate-pair", nominated: true, currentRoundTripTime: 1.2}]]);
  };
  live.publisher.getStats = poor;
  if (live.subscriber) live.subscriber.getStats = poor;
}"""


def test_the_quick_exit_leaves_the_session_at_once(live):
    lid, fac, kira = live.second["lid"], live.second["fac"], live.kira
    feed = kira.live("live.joined.feed_id")
    assert feed in [f["feed_id"] for f in fac.api(lid, "/state")["body"]["feeds"]]
    kira.page.keyboard.press("Escape")
    kira.page.wait_for_url("https://www.bbc.com/**")
    wait_for(lambda: feed not in [f["feed_id"] for f in fac.api(lid, "/state")["body"]["feeds"]],
             what="the hub to see her leave")
