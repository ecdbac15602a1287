"""weights download: a loopback HTTP server (127.0.0.1, started here) and file:// mirrors; no internet."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from minerrestore.cli import main
from minerrestore.errors import DownloadError, UsageError
from minerrestore.models import catalogue, files
from minerrestore.models.catalogue import ModelEntry
from minerrestore.models.download import MIRROR_ENV, PART_SUFFIX, download, download_url, download_weights

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
FILENAME = "test_weights.bin"


class _Handler(BaseHTTPRequestHandler):
    """``/<mode>/<file>``: good, bad (corrupted), cut (half the bytes once, then whole), missing (404), slow."""

    def do_GET(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        mode = self.path.strip("/").split("/")[0]
        server.requests.append((mode, self.headers.get("Range")))
        if mode == "missing":
            self.send_error(404)
            return
        if mode == "slow":
            time.sleep(1.0)
        data = PAYLOAD[:-1] + b"!" if mode == "bad" else PAYLOAD
        start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if mode == "cut" and not server.cut:
            server.cut = True
            body = body[: len(body) // 2]  # the connection closes early
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    requests: list[tuple[str, str | None]]
    cut = False


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    """A loopback HTTP server on a free port (proxies bypassed for it)."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", MIRROR_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _base(srv: _Server, mode: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/{mode}"


@pytest.fixture
def entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelEntry:
    """A test catalogue entry with its checksum; downloads go to tmp_path/weights."""
    test_entry = ModelEntry(
        "test-file",
        "loss",
        "a generated test file",
        filename=FILENAME,
        url=f"https://example.invalid/{FILENAME}",
        sha256=PAYLOAD_SHA,
    )
    monkeypatch.setattr(catalogue, "CATALOGUE", (test_entry,))
    monkeypatch.setitem(catalogue._BY_NAME, "test-file", test_entry)
    monkeypatch.setenv(files.WEIGHTS_ENV, str(tmp_path / "weights"))
    return test_entry


def test_good_file_lands_verified_then_is_skipped(server: _Server, entry: ModelEntry, tmp_path: Path) -> None:
    got = download(entry, mirror=_base(server, "good"))
    target = tmp_path / "weights" / FILENAME
    assert (got.status, got.path, got.sha256, got.verified) == ("downloaded", target, PAYLOAD_SHA, True)
    assert target.read_bytes() == PAYLOAD and not list(target.parent.glob("*" + PART_SUFFIX))
    assert download(entry, mirror=_base(server, "good")).status == "present" and len(server.requests) == 1


def test_wrong_file_exits_1_naming_both_hashes_and_leaves_nothing(
    server: _Server, entry: ModelEntry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["weights", "download", "test-file", "--mirror", _base(server, "bad"), "--quiet"])
    out = capsys.readouterr().out.replace("\n", "")
    assert code == 1
    assert PAYLOAD_SHA in out and hashlib.sha256(PAYLOAD[:-1] + b"!").hexdigest() in out
    assert not any((tmp_path / "weights").iterdir())


def test_interrupted_transfer_resumes_without_starting_over(server: _Server, entry: ModelEntry, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="interrupted after 524288 bytes") as info:
        download(entry, mirror=_base(server, "cut"))
    assert "run the same command again" in str(info.value)
    part = tmp_path / "weights" / (FILENAME + PART_SUFFIX)
    assert part.stat().st_size == len(PAYLOAD) // 2 and not (tmp_path / "weights" / FILENAME).exists()
    got = download(entry, mirror=_base(server, "cut"))
    assert got.resumed_from == len(PAYLOAD) // 2 and got.path.read_bytes() == PAYLOAD and not part.exists()
    assert server.requests == [("cut", None), ("cut", f"bytes={len(PAYLOAD) // 2}-")]


def test_http_404_and_timeout_give_clear_messages(server: _Server, entry: ModelEntry) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(entry, mirror=_base(server, "missing"))
    with pytest.raises(DownloadError, match=r"offline, or no answer within 0\.2 s") as info:
        download(entry, mirror=_base(server, "slow"), timeout=0.2)
    assert info.value.settings == ("mirror",) and "HTTPS_PROXY" in str(info.value)


def test_file_mirror_works_with_no_network(entry: ModelEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / FILENAME).write_bytes(PAYLOAD)

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setenv(MIRROR_ENV, mirror.as_uri())
    assert download_url(entry) == f"{mirror.as_uri()}/{FILENAME}"
    report = download_weights(everything=True, quiet=False)  # the progress bar path too
    assert [item.status for item in report.done] == ["downloaded"] and not report.failed
    assert (tmp_path / "weights" / FILENAME).read_bytes() == PAYLOAD
    (tmp_path / "weights" / FILENAME).unlink()
    assert download(entry, mirror=str(mirror)).status == "downloaded"  # a plain folder works too
    (tmp_path / "weights" / FILENAME).unlink()
    with pytest.raises(DownloadError, match="no such file on the mirror"):
        download(entry, mirror=str(tmp_path))


def test_unknown_hash_needs_the_flag_and_prints_the_hash(
    entry: ModelEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    unknown = dataclasses.replace(entry, sha256=None)
    monkeypatch.setattr(catalogue, "CATALOGUE", (unknown,))
    monkeypatch.setitem(catalogue._BY_NAME, "test-file", unknown)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / FILENAME).write_bytes(PAYLOAD)
    with pytest.raises(UsageError, match="no published SHA-256"):
        download_weights(["test-file"], mirror=str(mirror))
    assert download_weights(everything=True, mirror=str(mirror), quiet=True).skipped.keys() == {"test-file"}
    assert main(["weights", "download", "test-file", "--mirror", str(mirror), "--quiet"]) == 2
    args = ["weights", "download", "test-file", "--mirror", str(mirror), "--allow-unknown-hash", "--quiet"]
    assert main(args) == 0
    assert f"got {PAYLOAD_SHA}" in capsys.readouterr().out.replace("\n", "")


def test_names_are_checked_before_anything_is_fetched(server: _Server, entry: ModelEntry) -> None:
    with pytest.raises(UsageError, match="names or all"):
        download_weights()
    with pytest.raises(UsageError, match="yunet is not downloaded"):
        download_weights(["test-file", "yunet"], mirror=_base(server, "good"))
    assert server.requests == []


def test_weights_lists_where_each_file_would_come_from(
    entry: ModelEntry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["weights", "--json", "-"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["download_from"] == entry.url
    assert main(["weights", "--json", "-", "--mirror", "http://files.site.local/weights/"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["download_from"] == f"http://files.site.local/weights/{FILENAME}"


def test_official_entries_carry_the_published_checksums() -> None:
    expected = {
        "gfpgan-v1.3": "c953a88f",
        "gfpgan-v1.4": "e2cd4703",
        "gfpgan-v1.2": "29e25ee9",
        "stylegan2-ffhq512": "05f5d33d",
        "retinaface-resnet50": "6d1de9c2",
        "parsenet": "3d558d8d",
        "realesrgan-x2plus": "49fafd45",
        "realesrgan-x4plus": "4fa0d389",
        "vgg19": "dcbb9e9d",
    }
    for name, prefix in expected.items():
        entry = catalogue.get_entry(name)
        assert entry.is_downloadable and str(entry.sha256).startswith(prefix) and len(str(entry.sha256)) == 64, name
    assert catalogue.get_entry("stylegan2-ffhq512").sha256_note == "one public source only"
    assert not catalogue.get_entry("yunet").is_downloadable and catalogue.get_entry("arcface-resnet18").sha256 is None
