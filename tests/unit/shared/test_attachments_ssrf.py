"""Image links cannot reach the server's own network: shared/netguard.py and fetch_image.

Each form of a non-public host is tried against a real loopback web server, so a form that slipped
through would download the image (the test then fails on the bytes, not on a message). The refusal
must come from the guard (its reason is in `detail`), and the user-visible sentence is the same
whatever the reason: refused, unreachable, HTTP error, or not an image.
"""

import base64
import ipaddress
import logging

import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import netguard
from shared.attachments import IMAGE_LINK_FAILED, AttachmentError, DownloadBudget, ImageLinkError, fetch_image
from shared.netguard import address_allowed, check_host, embedded_ipv4, normalise_host
from tests.fakes import gemini as g

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)

# Every non-public form the guard must refuse, as a URL host (IPv6 in brackets). The loopback ones
# point at the test server: without the guard they would download the image.
LOOPBACK_FORMS = [
    "127.0.0.1",
    "１２７.０.０.１",  # full-width digits
    "①②⑦.0.0.1",  # circled digits
    "127。0。0。1",  # ideographic full stops
    "１２７．０．０．１",  # full-width digits and full stops
    "127｡0｡0｡1",  # half-width ideographic full stops
    "𝟏𝟐𝟕.𝟎.𝟎.𝟏",  # mathematical bold digits
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",  # IPv4-compatible
    "[64:ff9b::127.0.0.1]",  # NAT64 well-known prefix
    "[64:ff9b::7f00:1]",
    "[2002:7f00:1::]",  # 6to4
    "[::1]",
    "localhost",  # names: refused at connect time, on the addresses they resolve to
    "ＬＯＣＡＬＨＯＳＴ",
    "127.1",  # short and numeric IPv4 spellings the resolver accepts
    "2130706433",
    "0x7f.0.0.1",
    "0177.0.0.1",
]
OTHER_FORMS = [
    "169.254.169.254",  # cloud metadata
    "[::ffff:169.254.169.254]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:a9fe:a9fe::]",
    "①⑥⑨.②⑤④.①⑥⑨.②⑤④",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # shared address space (CGNAT)
    "0.0.0.0",
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "[fd00::1]",  # unique local
    "[fe80::1]",  # link-local
    "[ff02::1]",  # multicast
    "[::]",
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
    "[64:ff9b:1::a00:1]",  # NAT64 local-use prefix
]


@pytest.fixture
def images():
    server = g.ImageServer(
        {
            "/cat.png": (200, "image/png", PNG, {}),
            "/page": (200, "text/html", b"<html>intranet</html>", {}),
            "/gone": (404, "text/plain", b"", {}),
            "/to-v6": (302, "text/plain", b"", {"Location": "http://[::ffff:127.0.0.1]/cat.png"}),
        }
    )
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_local_fetch(monkeypatch):
    monkeypatch.delenv("ENABLE_LOCAL_WEB_FETCH", raising=False)
    monkeypatch.delenv("ENABLE_RAG_LOCAL_WEB_FETCH", raising=False)


def _url(host: str, port: int, path: str = "/cat.png") -> str:
    return f"http://{host}:{port}{path}"


async def _refused(url: str, *, by_guard: bool = True) -> ImageLinkError:
    with pytest.raises(ImageLinkError) as caught:
        await fetch_image(url, timeout=5)
    assert str(caught.value) == IMAGE_LINK_FAILED
    if by_guard:
        assert caught.value.detail.startswith("refused"), caught.value.detail
    return caught.value


# aiohttp 3.13 itself refuses these before connecting ("not a canonical IPv4 address").
CLIENT_REFUSES = {"127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1"}


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
async def test_every_loopback_spelling_is_refused(images, host):
    await _refused(_url(host, images.server.server_address[1]), by_guard=host not in CLIENT_REFUSES)
    assert images.served == 0


@pytest.mark.parametrize("host", OTHER_FORMS)
async def test_private_metadata_and_special_addresses_are_refused(host):
    await _refused(_url(host, 80))


async def test_the_image_is_fetched_when_the_server_allows_local(images, monkeypatch):
    monkeypatch.setenv("ENABLE_LOCAL_WEB_FETCH", "true")
    assert await fetch_image(_url("１２７.０.０.１", images.server.server_address[1])) == ("image/png", PNG)


async def test_every_redirect_hop_is_judged_at_connect_time(images, monkeypatch):
    # Let the guard take 127.0.0.1 as public (the test server's address) and nothing else: the first
    # hop downloads, a redirect to any other spelling of the machine is refused.
    monkeypatch.setattr(netguard, "address_allowed", lambda address: str(address) == "127.0.0.1")
    port = images.server.server_address[1]
    assert await fetch_image(_url("127.0.0.1", port)) == ("image/png", PNG)
    images.routes["/to-other"] = (302, "text/plain", b"", {"Location": f"http://127.0.0.2:{port}/cat.png"})
    images.routes["/to-v6"] = (302, "text/plain", b"", {"Location": f"http://[::ffff:127.0.0.1]:{port}/cat.png"})
    images.routes["/to-wide"] = (302, "text/plain", b"", {"Location": f"http://１２７.０.０.２:{port}/cat.png"})
    for path in ("/to-other", "/to-v6", "/to-wide"):
        await _refused(_url("127.0.0.1", port, path))


async def test_one_sentence_for_every_failure(images, monkeypatch, caplog):
    monkeypatch.setattr(netguard, "address_allowed", lambda address: str(address) == "127.0.0.1")
    port = images.server.server_address[1]
    caplog.set_level(logging.INFO, logger="openwebui_pack.attachments")
    said = set()
    for url in (
        _url("127.0.0.1", port, "/page"),  # not an image
        _url("127.0.0.1", port, "/gone"),  # HTTP 404
        _url("127.0.0.1", 9, "/x.png"),  # nothing listens
        _url("10.0.0.1", 80, "/x.png"),  # refused
        "ftp://example.com/x.png",
    ):
        with pytest.raises(ImageLinkError) as caught:
            await fetch_image(url, timeout=5)
        said.add(str(caught.value))
    assert said == {IMAGE_LINK_FAILED}
    # the administrator's log says which was which
    assert "not an image" in caplog.text and "HTTP 404" in caplog.text and "refused" in caplog.text


async def test_the_size_budget_is_shared_and_the_timeout_covers_redirects(images, monkeypatch):
    monkeypatch.setenv("ENABLE_LOCAL_WEB_FETCH", "true")
    port = images.server.server_address[1]
    images.routes["/big.png"] = (200, "image/png", PNG + b"\0" * 5000, {})
    budget = DownloadBudget(8000)
    assert (await fetch_image(_url("127.0.0.1", port, "/big.png"), budget=budget))[0] == "image/png"
    with pytest.raises(ImageLinkError, match="together are larger than 7 KB") as caught:
        await fetch_image(_url("127.0.0.1", port, "/big.png"), budget=budget)
    assert caught.value.too_large and budget.left == 0
    with pytest.raises(ImageLinkError) as caught:
        await fetch_image(_url("127.0.0.1", port), timeout=0)
    assert "no time" in caught.value.detail


async def test_a_slow_link_is_cut_at_its_timeout(monkeypatch):
    monkeypatch.setenv("ENABLE_LOCAL_WEB_FETCH", "true")
    server = g.ImageServer({}, drip={"/slow.png": (PNG * 50, 0.05)})
    try:
        with pytest.raises(ImageLinkError) as caught:
            await fetch_image(server.url + "/slow.png", timeout=0.3)
        assert "no answer within" in caught.value.detail
    finally:
        server.close()


def test_image_link_errors_are_attachment_errors():
    assert issubclass(ImageLinkError, AttachmentError)


# --- hypothesis: hosts as the HTTP client reads them ---------------------------------------------

DIGIT_FORMS = [
    lambda d: str(d),
    lambda d: chr(0xFF10 + d),  # full-width
    lambda d: chr(0x1D7CE + d),  # mathematical bold
    lambda d: chr(0x1D7EC + d),  # mathematical sans-serif bold
    lambda d: chr(0x2460 + d - 1) if d else chr(0x24EA),  # circled
]
DOTS = [".", "。", "．", "｡"]

NON_PUBLIC_NETS = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
]
NON_PUBLIC_V4 = st.one_of(
    *(
        st.integers(int(net.network_address), int(net.broadcast_address)).map(ipaddress.IPv4Address)
        for net in map(
            ipaddress.ip_network,
            [
                "127.0.0.0/8",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "169.254.0.0/16",
                "100.64.0.0/10",
                "0.0.0.0/8",
                "224.0.0.0/4",
                "240.0.0.0/4",
            ],
        )
    )
)


@st.composite
def unicode_spelling(draw, address: st.SearchStrategy = NON_PUBLIC_V4) -> str:
    ip = draw(address)
    labels = []
    for octet in str(ip).split("."):
        labels.append("".join(draw(st.sampled_from(DIGIT_FORMS))(int(c)) for c in octet))
    dots = [draw(st.sampled_from(DOTS)) for _ in range(3)]
    return labels[0] + "".join(dot + label for dot, label in zip(dots, labels[1:], strict=True))


@settings(max_examples=300, deadline=None)
@given(unicode_spelling())
def test_unicode_spellings_of_non_public_addresses_are_refused(host):
    assert ipaddress.ip_address(yarl.URL(f"http://{host}/").raw_host)  # the client connects to a literal
    with pytest.raises(netguard.BlockedAddressError):
        check_host(host)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(
        st.one_of(
            st.sampled_from(list("0123456789.:abcdefx[]") + DOTS + [chr(0xFF10 + d) for d in range(10)]),
            st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_the_guard_reads_a_host_as_the_client_does(host):
    """Whatever yarl (aiohttp's URL type) makes of a host, if it is a non-public IP literal the
    guard refuses the host as given."""
    try:
        client_host = yarl.URL(f"http://{host}/").raw_host
    except (ValueError, UnicodeError):
        return
    literal = netguard.ip_literal(client_host or "")
    if literal is not None and not address_allowed(literal):
        with pytest.raises(netguard.BlockedAddressError):
            check_host(host)
        with pytest.raises(netguard.BlockedAddressError):
            check_host(client_host)


PUBLIC_V4 = st.sampled_from(["8.8.8.8", "1.1.1.1", "93.184.216.34", "142.250.74.46"]).map(ipaddress.IPv4Address)


def _embed(kind: str, v4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    n = int(v4)
    return ipaddress.IPv6Address(
        {
            "mapped": (0xFFFF << 32) | n,
            "compatible": n,
            "nat64": (0x64FF9B << 96) | n,
            "6to4": (0x2002 << 112) | (n << 80),
            "teredo": (0x20010000 << 96) | (~n & 0xFFFFFFFF),
        }[kind]
    )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["mapped", "compatible", "nat64", "6to4", "teredo"]), NON_PUBLIC_V4)
def test_ipv6_forms_that_carry_a_non_public_ipv4_are_refused(kind, v4):
    address = _embed(kind, v4)
    assert v4 in embedded_ipv4(address) or (kind == "compatible" and int(v4) <= 1)
    assert not address_allowed(address)
    with pytest.raises(netguard.BlockedAddressError):
        check_host(f"[{address}]")


@given(st.sampled_from(["nat64", "6to4"]), PUBLIC_V4)
def test_nat64_and_6to4_of_a_public_address_stay_allowed(kind, v4):
    assert address_allowed(_embed(kind, v4))


def test_normalise_host_matches_the_client():
    for host in ("１２７.０.０.１", "①②⑦.0.0.1", "127。0。0。1", "ＥＸＡＭＰＬＥ.com", "example.com."):
        assert normalise_host(host) == (yarl.URL(f"http://{host}/").raw_host or "").rstrip(".")
    assert address_allowed("8.8.8.8") and address_allowed("2606:4700::1111")
    assert not address_allowed("not an address")
