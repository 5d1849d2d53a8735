"""The app as an MCP server: ``launch(mcp_server=True)`` serves its tools to AI assistants.

``python app.py`` runs with the tiny stand-in models; the test reads the tool schema that Gradio
builds from each API function's docstring and type hints (``/gradio_api/mcp/schema``) and checks
that ``generate`` and ``restore`` (and ``groundtruth`` when the app has it) are there, described
in words, with typed, described parameters.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from test_app_api import AppServer, tiny_models_env

GENERATE_PARAMS = {"prompt": "string", "duration": "number", "seed": "integer", "guidance": "number",
                   "temperature": "number", "top_k": "number", "mode": "string", "demucs_shifts": "number",
                   "gating": "string", "gating_strength": "number", "hber_cutoff_hz": "number"}


@pytest.fixture(scope="module")
def app(tiny_musicgen_dir, tmp_path_factory):
    server = AppServer(tmp_path_factory.mktemp("mcp-app"), tiny_models_env(tiny_musicgen_dir)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tools(app) -> dict:
    with urllib.request.urlopen(app.url + "gradio_api/mcp/schema", timeout=30) as response:
        assert response.status == 200
        schema = json.loads(response.read())
    return {tool["name"]: tool for tool in schema}


def properties(tool: dict) -> dict:
    return tool["inputSchema"]["properties"]


def api_names(app) -> set[str]:
    with urllib.request.urlopen(app.url + "gradio_api/info", timeout=30) as response:
        info = json.loads(response.read())
    return {name.lstrip("/") for name in info["named_endpoints"]}


def test_every_api_endpoint_is_a_tool_and_nothing_private_is(app, tools):
    assert {"generate", "restore"} <= set(tools), set(tools)
    assert set(tools) == api_names(app), "the MCP tools differ from the script API's endpoints"


def test_every_tool_and_parameter_is_described(tools):
    """Each tool (/generate, /restore, and /groundtruth once the app has it) reads as a tool description."""
    for name, tool in tools.items():
        assert len(tool["description"]) > 60, f"{name}: {tool['description']!r}"
        for param, spec in properties(tool).items():
            assert spec.get("type"), f"{name}.{param} has no type"
            assert len(spec.get("description", "")) > 5, f"{name}.{param} is not described"


def test_generate_tool_reads_as_a_description(tools):
    tool = tools["generate"]
    assert "MusicGen" in tool["description"] and "Demucs" in tool["description"]
    props = properties(tool)
    for name, kind in GENERATE_PARAMS.items():
        assert name in props, f"generate has no parameter {name}"
        assert props[name].get("type") == kind, (name, props[name])
        assert len(props[name].get("description", "")) > 10, f"generate's {name} is not described"
    assert "prompt" in tool["inputSchema"].get("required", [])
    assert props["duration"]["default"] == 5 and props["seed"]["default"] == -1
    assert "request" not in props  # Gradio's request object is not a tool parameter


def test_restore_tool_takes_an_audio_file(tools):
    tool = tools["restore"]
    assert "audio" in tool["description"].lower()
    props = properties(tool)
    assert list(props)[0] == "audio"
    assert props["audio"].get("type") == "string"
    assert "url" in props["audio"].get("description", "").lower() or "file" in props["audio"].get("description", "")
    assert len(props["demucs_shifts"].get("description", "")) > 10
