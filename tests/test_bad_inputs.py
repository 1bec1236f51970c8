"""Runs every case of the bad-input corpus (tests/bad_inputs.py): the exact message, the exit status,
and which files exist afterwards. Also checks that docs/reliability.md lists every case as generated."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import zmq

from bad_inputs import CASES, Case, markdown_table
from rtpose.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


class RepeatingPublisher:
    """Binds a PUB socket on a free loopback port and, once someone subscribes, repeats ``messages``
    until closed (a garbage or header-less publisher for ``rtpose listen``)."""

    def __init__(self, messages):
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind("tcp://127.0.0.1:*")
        self.address = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._messages = messages
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-publisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        subscribed = False
        while not self._stop.is_set():
            if self._sock.poll(0 if subscribed else 50, zmq.POLLIN):
                self._sock.recv()  # a subscription: from now on every message reaches the subscriber
                subscribed = True
            if subscribed:
                for msg in self._messages:
                    self._sock.send_multipart(msg)
                self._stop.wait(0.01)  # a publisher's pace, not a synchronisation

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close(linger=0)
        self._ctx.term()


def _unserved_address() -> str:
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.PUB)
        sock.bind("tcp://127.0.0.1:*")
        address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        sock.close(linger=0)
    finally:
        ctx.term()
    return address


@pytest.fixture
def address_for():
    publishers: list[RepeatingPublisher] = []

    def make(case: Case) -> str:
        if case.publish is None:
            return _unserved_address()
        pub = RepeatingPublisher(case.publish)
        publishers.append(pub)
        return pub.address

    yield make
    for pub in publishers:
        pub.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, tmp_path, monkeypatch, capsys, address_for):
    case.make(tmp_path)
    monkeypatch.chdir(tmp_path)  # messages name the inputs as the user typed them
    addr = address_for(case) if "{addr}" in " ".join(case.argv) else ""
    try:
        status = main(case.args(addr))
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    out, err = capsys.readouterr()
    lines = err.splitlines()[-1:] if case.stream == "stderr" else out.splitlines()
    pattern = case.pattern(addr)
    assert any(pattern.fullmatch(line) for line in lines), f"expected\n  {case.message}\ngot\n  " + "\n  ".join(lines)
    assert status == case.exit_code
    assert "Traceback" not in err
    for name in case.files_after:
        assert (tmp_path / name).exists(), name
    for name in case.files_absent:
        assert not (tmp_path / name).exists(), name


def test_reliability_doc_lists_every_case():
    text = DOC.read_text(encoding="utf-8")
    for section in ("data", "errors"):
        assert markdown_table(section) in text, (
            f"docs/reliability.md is out of date: paste the output of `python tests/bad_inputs.py --markdown`")


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
