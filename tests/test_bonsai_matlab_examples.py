"""examples/bonsai and examples/matlab: valid files that decode the JSON stream as documented.

No Bonsai or MATLAB runs here. The workflow is checked as XML against the names Bonsai.ZeroMQ
really defines (bonsai-rx/zeromq at 118ab7f, src/Bonsai.ZeroMQ/*.cs) and its IronPython scripts
are run in CPython, with a stand-in for the two .NET names they use, on payloads rtpose's own
publisher produced. The MATLAB script is checked for the address, topics and message fields it
uses, and its parse (jsondecode, reshape) is mirrored in Python on the same payloads.
"""

from __future__ import annotations

import json
import re
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from rtpose.sinks.zmq_pub import DEFAULT_ADDRESS

from test_zmq_protocol_doc import BP, T0, example_messages

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "examples" / "bonsai" / "rtpose_subscriber.bonsai"
MATLAB = REPO / "examples" / "matlab" / "rtpose_subscriber.m"

BONSAI_NS = "https://bonsai-rx.org/2018/workflow"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
ZMQ_NS = "clr-namespace:Bonsai.ZeroMQ;assembly=Bonsai.ZeroMQ"
PY_NS = "clr-namespace:Bonsai.Scripting.IronPython;assembly=Bonsai.Scripting.IronPython"
#: Operator classes of Bonsai.ZeroMQ (src/Bonsai.ZeroMQ/*.cs at 118ab7f) and their properties.
ZMQ_OPERATORS = {
    "Subscriber": {"ConnectionString", "Topic"}, "Publisher": {"ConnectionString", "Topic"},
    "ConvertToString": set(), "ConvertToFrame": set(), "Request": {"ConnectionString"},
    "Response": {"ConnectionString"}, "Push": {"ConnectionString"}, "Pull": {"ConnectionString"},
    "Dealer": {"ConnectionString"}, "Router": {"ConnectionString"},
}
#: Bonsai.Scripting.IronPython's PythonTransform properties (bonsai-rx/bonsai, PythonTransform.cs).
PYTHON_TRANSFORM_PROPERTIES = {"Name", "Description", "Script"}


def _xsi_type(element) -> str:
    return element.get(f"{{{XSI_NS}}}type", "")


def _namespaces(path: Path) -> dict[str, str]:
    return {prefix: uri for _, (prefix, uri) in ET.iterparse(path, events=["start-ns"])}


def _nodes(root) -> list:
    return root.findall(f"{{{BONSAI_NS}}}Workflow/{{{BONSAI_NS}}}Nodes/{{{BONSAI_NS}}}Expression")


def test_workflow_is_well_formed_and_uses_bonsai_zeromq_names():
    root = ET.parse(WORKFLOW).getroot()  # raises on malformed XML
    assert root.tag == f"{{{BONSAI_NS}}}WorkflowBuilder"
    ns = _namespaces(WORKFLOW)
    assert ns["zmq"] == ZMQ_NS and ns["py"] == PY_NS and ns[""] == BONSAI_NS and ns["xsi"] == XSI_NS
    nodes = _nodes(root)
    subscribers = []
    for node in nodes:
        kind = _xsi_type(node)
        if kind == "Combinator":
            (combinator,) = list(node)
            prefix, _, name = _xsi_type(combinator).partition(":")
            assert prefix == "zmq" and name in ZMQ_OPERATORS, _xsi_type(combinator)
            props = {child.tag.split("}")[1]: child.text for child in combinator}
            assert all(child.tag.startswith(f"{{{ZMQ_NS}}}") for child in combinator)
            assert set(props) <= ZMQ_OPERATORS[name]
            if name == "Subscriber":
                subscribers.append(props)
        elif kind == "py:PythonTransform":
            assert {child.tag.split("}")[1] for child in node} <= PYTHON_TRANSFORM_PROPERTIES
            assert all(child.tag.startswith(f"{{{PY_NS}}}") for child in node)
        else:
            assert kind == "MemberSelector" and node.find(f"{{{BONSAI_NS}}}Selector").text == "Last"  # NetMQMessage.Last
    assert subscribers == [{"ConnectionString": DEFAULT_ADDRESS, "Topic": "pose"},
                           {"ConnectionString": DEFAULT_ADDRESS, "Topic": "header"}]
    edges = root.findall(f"{{{BONSAI_NS}}}Workflow/{{{BONSAI_NS}}}Edges/{{{BONSAI_NS}}}Edge")
    chain = [(int(e.get("From")), int(e.get("To"))) for e in edges]
    assert chain == [(0, 1), (1, 2), (2, 3), (4, 5), (5, 6), (6, 7)] and len(nodes) == 8


def _scripts() -> dict[str, str]:
    root = ET.parse(WORKFLOW).getroot()
    out = {}
    for node in _nodes(root):
        if _xsi_type(node) == "py:PythonTransform":
            out[node.find(f"{{{PY_NS}}}Name").text] = node.find(f"{{{PY_NS}}}Script").text
    return out


def _run_ironpython_script(script: str, monkeypatch):
    """Execute a PythonTransform script in CPython; return its ``process`` and declared output type.
    Stand-ins: ``System.Array[T](items)`` builds a list of T; ``returns`` is Bonsai's decorator
    (PythonHelper.ReturnsDecorator) recording the type instead of calling clr.GetClrType."""
    system = types.ModuleType("System")

    class _Array:
        def __getitem__(self, item_type):
            def build(items):
                return [item_type(v) for v in items]
            build.item_type = item_type
            return build

    system.Array = _Array()
    monkeypatch.setitem(__import__("sys").modules, "System", system)

    def returns(kind):
        def decorate(func):
            func.__returntype__ = kind
            return func
        return decorate

    scope = {"returns": returns}
    exec(compile(script, str(WORKFLOW), "exec"), scope)
    process = scope["process"]
    return process, process.__returntype__


def test_workflow_scripts_decode_the_json_stream(monkeypatch):
    msgs = example_messages("json")
    scripts = _scripts()
    assert set(scripts) == {"PoseValues", "Bodyparts"}
    pose_values, pose_type = _run_ironpython_script(scripts["PoseValues"], monkeypatch)
    assert pose_type.item_type is float  # Array[float]: double[] in Bonsai
    # ZeroMQ.ConvertToString gives the payload frame as text; the script gets that string
    values = pose_values(msgs["pose"][1].decode("ascii"))
    published = np.frombuffer(__import__("msgpack").unpackb(example_messages()["pose"][1])["pose"], "<f4")
    assert np.array(values, np.float32).tobytes() == published.tobytes()
    bodyparts, bp_type = _run_ironpython_script(scripts["Bodyparts"], monkeypatch)
    assert bp_type.item_type is str
    assert bodyparts(msgs["header"][1].decode("ascii")) == list(BP)


def test_workflow_script_turns_null_into_nan(monkeypatch):
    pose_values, _ = _run_ironpython_script(_scripts()["PoseValues"], monkeypatch)
    values = pose_values('{"v":1,"pose":[null,2.5,0.5]}')
    assert np.isnan(values[0]) and values[1:] == [2.5, 0.5]


# ---- MATLAB ---------------------------------------------------------------------------------------
def _strip_matlab_comment(line: str) -> str:
    """``line`` up to its ``%`` comment; a ``%`` inside a 'string' is kept. A quote right after a
    name, a closing bracket, a dot or another quote is MATLAB's transpose, not a string."""
    in_string = False
    for i, c in enumerate(line):
        if c == "'":
            before = line[:i].rstrip()[-1:]
            if in_string:
                in_string = False
            elif not (before.isalnum() or before in ")]}._'"):
                in_string = True
        elif c == "%" and not in_string:
            return line[:i]
    return line


def _matlab_code() -> str:
    """The script without its comments (for the field checks)."""
    return "\n".join(_strip_matlab_comment(line) for line in MATLAB.read_text().splitlines())


def test_matlab_script_names_the_address_topics_and_library():
    text = MATLAB.read_text()
    code = _matlab_code()
    assert re.search(r"^ADDRESS = '(.*)';", text, re.M).group(1) == DEFAULT_ADDRESS
    assert re.findall(r"sub\.subscribe\('(\w+)'\)", code) == ["header", "pose"]
    assert re.findall(r"case '(\w+)'", code) == ["header", "pose"]
    assert "org.zeromq.SocketType.SUB" in code and "javaaddpath(JEROMQ_JAR)" in code
    assert "--publish-format json" in text and "jsondecode(payload)" in code


def test_matlab_script_reads_only_fields_rtpose_sends():
    code = _matlab_code()
    msgs = {topic: json.loads(payload) for topic, (_, payload) in example_messages("json").items()}
    used = set(re.findall(r"\bmsg\.(\w+)", code))
    assert used == {"v", "hdr", "stream", "pose", "pred", "t_send_ns", "t_capture_ns", "frame"}
    assert used <= set(msgs["pose"]) and {"v", "hdr"} <= set(msgs["header"])
    assert set(re.findall(r"\bheader\.(\w+)", code)) <= set(msgs["header"])
    assert set(re.findall(r"\bstream\.(\w+)", code)) <= set(msgs["header"]["streams"][0])


def _jsondecode_numbers(values: list) -> np.ndarray:
    """MATLAB jsondecode of a JSON array of numbers and nulls: a double column, NaN for null
    (a cell array when all are null: the script's numbers() turns that into NaNs too)."""
    return np.array([np.nan if v is None else v for v in values], np.float64)


def _matlab_reshape_3_by_k_transposed(column: np.ndarray) -> np.ndarray:
    """``reshape(v, 3, [])'``: MATLAB fills column by column (Fortran order), then transposes."""
    return np.reshape(column, (3, -1), order="F").T


def test_matlab_parse_mirrored_in_python_gives_the_published_pose():
    packed = __import__("msgpack").unpackb(example_messages()["pose"][1])
    msgs = {topic: payload for topic, (_, payload) in example_messages("json").items()}
    header, msg = json.loads(msgs["header"]), json.loads(msgs["pose"])
    headers = {float(header["hdr"]): header}  # containers.Map with double keys
    assert float(msg["hdr"]) in headers
    stream = headers[float(msg["hdr"])]["streams"][int(msg["stream"]) + 1 - 1]  # streams(msg.stream + 1)
    assert stream["bodyparts"] == list(BP)
    pose = _matlab_reshape_3_by_k_transposed(_jsondecode_numbers(msg["pose"]))
    pred = _matlab_reshape_3_by_k_transposed(_jsondecode_numbers(msg["pred"]))
    assert pose.shape == (len(BP), 3)
    # single(pose) in MATLAB: the same float32 values rtpose published, bit for bit
    assert pose.astype(np.float32).tobytes() == packed["pose"]
    assert pred.astype(np.float32).tobytes() == packed["pred"]
    assert tuple(pose[0]) == (100.5, 200.25, 0.96875)  # snout, as in docs/protocol.md's example
    assert float(msg["t_capture_ns"]) == T0 and (msg["t_send_ns"] - msg["t_capture_ns"]) / 1e6 > 0


@pytest.mark.parametrize("path", [WORKFLOW, MATLAB])
def test_examples_are_ascii(path):
    assert path.read_bytes().isascii()
