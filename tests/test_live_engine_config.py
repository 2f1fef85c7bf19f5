"""[live] configuration, the files generated for Janus, coturn and Synapse, TURN credentials, SDP edits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
import yaml

from crossline import secrets
from crossline.config import ConfigError, load_config, parse_config
from crossline.live.coturn import coturn_settings
from crossline.live.interfaces import default_route_interface, interface_address, media_interfaces
from crossline.live.janus_config import janus_settings, write_janus_config
from crossline.live.sdp import audio_mids, cap_opus_bitrate, without_video
from crossline.live.turn import ice_servers
from crossline.setup import init_data_dir


@pytest.mark.parametrize(
    "live, says",
    [
        ({"rtp_port_range": "20000"}, "[live] rtp_port_range must be two ports"),
        ({"rtp_port_range": "30000-20000"}, "[live] rtp_port_range must be two ports"),
        ({"turn_relay_port_range": "80-90"}, "[live] turn_relay_port_range must be two ports"),
        ({"turn_port": 70000}, "[live] turn_port must be between 1 and 65535"),
        ({"turn_host": "turn.example.org"}, "[live] turn_host must be an IP address"),
        ({"turn_host": "0.0.0.0"}, "set turn_public_host"),
        ({"public_address": "my-host"}, "[live] public_address must be an IP address"),
        ({"turn_allowed_peer_ips": ["10.0.0.0/8"]}, "turn_allowed_peer_ips: '10.0.0.0/8' is not an IP address"),
        ({"ice_interfaces": ["eth0; rm -rf"]}, "[live] ice_interfaces must be network interface names"),
        ({"turn_credential_lifetime_seconds": 5}, "turn_credential_lifetime_seconds must be between 60 and 86400"),
        ({"audio_bitrate": 100}, "[live] audio_bitrate must be between 6000 and 510000"),
        ({"max_publishers": 1}, "[live] max_publishers must be between 2 and 100"),
        ({"janus_binary": "janus"}, "[live] janus_binary must be an absolute path"),
        ({"enabled": "yes"}, "[live] enabled must be true or false"),
        ({"ice_interfaces": "lo"}, "[live] ice_interfaces must be a list of strings"),
        ({"turn_secret": "x"}, "unknown key 'turn_secret' in [live]"),
    ],
)
def test_bad_live_values_are_named(live, says, tmp_path):
    with pytest.raises(ConfigError) as error:
        parse_config({"live": live}, tmp_path, source="crossline.toml")
    assert says in str(error.value) and "crossline.toml" in str(error.value)


@pytest.fixture
def data_dir(tmp_path):
    config, _ = init_data_dir(tmp_path / "data", server_name="crossline.test", turn_port=34999)
    return config.data_dir


def test_init_writes_live_section_and_private_secrets(data_dir):
    config = load_config(data_dir)
    assert config.live.enabled and config.live.turn_port == 34999 and config.live.ice_interfaces == ()
    for name in (secrets.JANUS_API_SECRET, secrets.JANUS_ADMIN_SECRET, secrets.TURN_SHARED_SECRET):
        path = config.paths.secret(name)
        assert path.stat().st_mode & 0o777 == 0o600 and len(path.read_text()) >= 32
    assert len({config.paths.secret(n).read_text() for n in (secrets.JANUS_API_SECRET, secrets.JANUS_ADMIN_SECRET,
                                                               secrets.TURN_SHARED_SECRET)}) == 3


def test_synapse_gets_turn_uris_and_the_secret_by_path(data_dir):
    config = load_config(data_dir)
    homeserver = yaml.safe_load(config.paths.synapse_config.read_text())
    assert homeserver["turn_uris"] == ["turn:127.0.0.1:34999?transport=udp", "turn:127.0.0.1:34999?transport=tcp"]
    assert homeserver["turn_shared_secret_path"] == str(config.paths.secret(secrets.TURN_SHARED_SECRET))
    assert "turn_shared_secret" not in homeserver  # the secret itself is never copied into the file
    # The same short lifetime as the hub's own credentials (ten minutes unless configured).
    assert homeserver["turn_user_lifetime"] == "600s" and homeserver["turn_allow_guests"] is False
    assert config.live.turn_credential_lifetime_seconds == 600


def test_synapse_gets_no_turn_when_live_is_off(tmp_path):
    from crossline.synapse.files import homeserver_config

    config = parse_config({"live": {"enabled": False}}, tmp_path)
    assert "turn_uris" not in homeserver_config(config)


def test_janus_loads_only_videoroom_and_the_socket_transport(data_dir):
    config = load_config(data_dir)
    [interface] = media_interfaces(config)
    write_janus_config(config, "API-SECRET", "ADMIN-KEY", [interface])
    janus_dir = config.paths.janus_dir
    assert sorted(p.name for p in (janus_dir / "plugins").iterdir()) == ["libjanus_videoroom.so"]
    assert sorted(p.name for p in (janus_dir / "transports").iterdir()) == ["libjanus_websockets.so"]
    assert list((janus_dir / "events").iterdir()) == [] and list((janus_dir / "loggers").iterdir()) == []
    assert sorted(p.name for p in janus_dir.glob("*.jcfg")) == [
        "janus.jcfg", "janus.plugin.videoroom.jcfg", "janus.transport.websockets.jcfg"]
    main = (janus_dir / "janus.jcfg").read_text()
    assert 'api_secret = "API-SECRET"' in main and f'ice_enforce_list = "{interface}"' in main
    assert 'rtp_port_range = "20000-20999"' in main and "broadcast = false" in main
    assert "stun_server" not in main and "turn_server" not in main and "nat_1_1_mapping" not in main
    # WebSocket on a UNIX socket only: no TCP port (no ws_port/ws_ip), no TLS server, no admin API.
    transport = (janus_dir / "janus.transport.websockets.jcfg").read_text()
    assert f'ws_unix = "{config.paths.janus_socket}"' in transport and "ws_port" not in transport
    assert "wss = false" in transport and "admin_ws = false" in transport and "admin_wss = false" in transport
    videoroom = (janus_dir / "janus.plugin.videoroom.jcfg").read_text()
    assert 'admin_key = "ADMIN-KEY"' in videoroom and "lock_rtp_forward = true" in videoroom
    assert janus_dir.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in janus_dir.glob("*.jcfg"))


def test_janus_folders_lose_anything_else_put_there(data_dir):
    config = load_config(data_dir)
    write_janus_config(config, "a", "b", ["eth9"])
    (config.paths.janus_dir / "plugins" / "libjanus_echotest.so").write_text("")
    (config.paths.janus_dir / "events" / "libjanus_sampleevh.so").write_text("")
    write_janus_config(config, "a", "b", ["eth9"])
    assert sorted(p.name for p in (config.paths.janus_dir / "plugins").iterdir()) == ["libjanus_videoroom.so"]
    assert list((config.paths.janus_dir / "events").iterdir()) == []


def test_public_address_and_interfaces_reach_janus_and_coturn(tmp_path):
    config = parse_config({"live": {"public_address": "203.0.113.7", "ice_interfaces": ["eth0"],
                                    "turn_host": "10.1.2.3", "turn_allowed_peer_ips": []}}, tmp_path)
    main = janus_settings(config, "a", "b", ["eth0"])["janus.jcfg"]
    assert 'nat_1_1_mapping = "203.0.113.7"' in main and 'ice_enforce_list = "eth0"' in main
    assert "ice_enforce_list" not in janus_settings(config, "a", "b", [])["janus.jcfg"]  # loopback-only machine
    turn = coturn_settings(config, "s", [])
    assert "external-ip=203.0.113.7/10.1.2.3" in turn and "allowed-peer-ip" not in turn


def test_media_interfaces_are_real_and_never_loopback(tmp_path):
    """Janus skips loopback, and falls back to every interface when none it is given exists."""
    default = default_route_interface()
    assert default and media_interfaces(parse_config({}, tmp_path)) == [default]
    assert interface_address(default) is not None
    with pytest.raises(ConfigError, match="loopback interface 'lo'"):
        media_interfaces(parse_config({"live": {"ice_interfaces": ["lo"]}}, tmp_path))
    with pytest.raises(ConfigError, match="'nosuch0', which is not a network interface"):
        media_interfaces(parse_config({"live": {"ice_interfaces": ["nosuch0"]}}, tmp_path))


def test_without_a_default_route_the_one_network_interface_is_used(tmp_path, monkeypatch):
    import crossline.live.interfaces as interfaces

    monkeypatch.setattr(interfaces, "default_route_interface", lambda: None)
    expected = [name for _, name in __import__("socket").if_nameindex()
                if name != "lo" and interfaces.interface_address(name)]
    if len(expected) > 1:
        with pytest.raises(ConfigError, match="no default route"):
            media_interfaces(parse_config({}, tmp_path))
    else:
        assert media_interfaces(parse_config({}, tmp_path)) == expected
    assert default_route_interface(tmp_path / "no-route-table") is None


def test_coturn_refuses_private_peers_and_keeps_only_what_it_needs(tmp_path):
    config = parse_config({"live": {"turn_port": 4000}}, tmp_path)
    lines = coturn_settings(config, "SHARED", ["10.1.2.3"]).splitlines()
    for wanted in ("listening-ip=127.0.0.1", "listening-port=4000", "use-auth-secret", "static-auth-secret=SHARED",
                   "no-cli", "no-tls", "no-dtls", "no-tcp-relay", "no-multicast-peers", "no-software-attribute",
                   "denied-peer-ip=10.0.0.0-10.255.255.255", "denied-peer-ip=127.0.0.0-127.255.255.255",
                   "denied-peer-ip=192.168.0.0-192.168.255.255", "denied-peer-ip=169.254.0.0-169.254.255.255",
                   "denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                   "allowed-peer-ip=10.1.2.3", "log-file=stdout", "realm=crossline.local"):
        assert wanted in lines, wanted
    assert not any(line.startswith(("cli-", "web-admin", "prometheus", "user=", "allow-loopback")) for line in lines)
    loopback = parse_config({"live": {"turn_allowed_peer_ips": ["127.0.0.1"]}}, tmp_path)
    assert "allow-loopback-peers" in coturn_settings(loopback, "s", []).splitlines()


def test_ice_servers_are_short_lived_and_signed_with_the_shared_secret(tmp_path):
    config = parse_config({"live": {"turn_public_host": "turn.example.org", "turn_port": 3478,
                                    "turn_credential_lifetime_seconds": 600}}, tmp_path)
    [server] = ice_servers(config, "SECRET", now=1_700_000_000_123, new_token=lambda: "r4nd0m")
    assert server["urls"] == ["turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp"]
    assert server["username"] == "1700000600:r4nd0m"
    expected = base64.b64encode(hmac.new(b"SECRET", b"1700000600:r4nd0m", hashlib.sha1).digest()).decode()
    assert server["credential"] == expected


OFFER = "\r\n".join([
    "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0", "c=IN IP4 0.0.0.0", "a=mid:0", "a=sendonly",
    "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1;maxaveragebitrate=64000",
    "a=rtpmap:0 PCMU/8000",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=mid:1", "a=sendonly", "a=rtpmap:96 VP8/90000",
]) + "\r\n"


def test_video_is_refused_in_an_audio_only_offer():
    offer = without_video(OFFER)
    assert "m=video 0 UDP/TLS/RTP/SAVPF 96" in offer and "a=group:BUNDLE 0\r\n" in offer
    assert "m=audio 9 " in offer and audio_mids(offer) == ["0"]


def test_opus_is_capped_at_the_configured_bitrate():
    answer = cap_opus_bitrate(OFFER, 16000)
    assert "a=fmtp:111 minptime=10;useinbandfec=1;maxaveragebitrate=16000\r\n" in answer
    assert answer.count("maxaveragebitrate") == 1
    audio = answer.split("m=video")[0]
    assert re.search(r"c=IN IP4 0.0.0.0\r\nb=AS:16\r\n", audio)
    without_fmtp = OFFER.replace("a=fmtp:111 minptime=10;useinbandfec=1;maxaveragebitrate=64000\r\n", "")
    assert "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 maxaveragebitrate=16000\r\n" in cap_opus_bitrate(without_fmtp, 16000)


def test_status_leaves_out_the_engines_when_live_is_off(data_dir):
    from crossline.cli import status_report

    assert {"janus", "coturn"} <= set(status_report(data_dir))
    path = data_dir / "crossline.toml"
    path.write_text(path.read_text().replace("enabled = true", "enabled = false"))
    report = status_report(data_dir)
    assert "janus" not in report and "coturn" not in report
