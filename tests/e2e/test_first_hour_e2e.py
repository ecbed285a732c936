"""The first hour, as a newcomer meets it (issue 26): `hws-server --help` by purpose with `--version`, a start-up
log of what was changed, a model that cannot be had failing once and naming the offline ones, the README's grpcurl
stream paced so that partials come, `make demo` and the snippet leaving nothing behind; and, read from the
Makefile and README (a second install is too slow for the suite), the install that says what it does and
`make run` installing only what running needs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from tests.support import EVAL_DIR, ROOT, ServerProcess, free_port

HWS_SERVER = Path(sys.executable).parent / "hws-server"


def hws_server(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [str(HWS_SERVER), "--host", "127.0.0.1", "--port", str(free_port()), "--metrics-port", "0", *args]
    env = {**os.environ, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# -- --help and --version ---------------------------------------------------------------------------------------
def test_help_groups_the_flags_by_purpose_and_hides_the_testing_aids() -> None:
    reply = subprocess.run([str(HWS_SERVER), "--help"], capture_output=True, text=True, timeout=60)
    assert reply.returncode == 0, reply.stderr
    from hws.server.settings import GROUPS, HIDDEN, Settings  # here: the other tests need neither

    assert {f.name for f in dataclasses.fields(Settings)} == {n for names in GROUPS.values() for n in names} | HIDDEN
    headings = [line[:-1] for line in reply.stdout.splitlines() if line.endswith(":") and not line.startswith(" ")]
    for purpose in ("serving", "model", "limits", "security", "observability"):
        assert purpose in headings, headings
    assert "other" not in headings, "a setting in no group of GROUPS (settings.py)"
    for name, names in GROUPS.items():  # each flag under its own heading
        section = reply.stdout.split(f"\n{name}:\n", 1)[1].split("\n\n", 1)[0]
        assert all(f"  {flag(each)} " in section for each in names), (name, section)
    assert "--fault-injection" not in reply.stdout and "testing aid" not in reply.stdout
    # Hidden, still accepted: the server goes on to the next setting it cannot use.
    refused = hws_server("--fault-injection", "raise", "--model", "/no/such/model")
    assert refused.returncode == 2 and "unrecognized" not in refused.stderr, refused.stderr
    assert "invalid setting model" in refused.stderr
    refused = hws_server("--fault-injection", "sometimes")
    assert refused.returncode == 2 and "invalid setting fault_injection" in refused.stderr, refused.stderr


def test_version() -> None:
    reply = subprocess.run([str(HWS_SERVER), "--version"], capture_output=True, text=True, timeout=60)
    assert reply.returncode == 0, reply.stderr
    assert reply.stdout.strip() == f"hws-server {metadata.version('hosted-whisper-streaming')}"


# -- the start-up log -------------------------------------------------------------------------------------------
def test_the_start_up_log_gives_a_summary_and_the_settings_changed(log_dir: Path) -> None:
    with ServerProcess(args=["--max-streams", "3", "--vad-aggressiveness", "2"]).start(log_dir) as server:
        (starting,) = [json.loads(line) for line in server.log().splitlines() if '"event": "starting"' in line]
    # The harness sets these four; --vad-aggressiveness 2 is the default, so it is not a change.
    assert starting["changed"] == {
        "host": "127.0.0.1",
        "port": server.port,
        "metrics_port": server.metrics_port,
        "log_format": "json",
        "max_streams": 3,
    }
    assert starting["grpc"] == f"127.0.0.1:{server.port}" and starting["model"] == "tiny.en-embedded"
    assert starting["version"] == metadata.version("hosted-whisper-streaming")
    assert len(starting) <= 15, sorted(starting)  # a summary, not all the settings
    assert "vad_frame_ms" not in starting and "emf_namespace" not in starting


# -- a model that cannot be had ---------------------------------------------------------------------------------
# HF_HUB_OFFLINE: the hub out of reach on any machine (this one has no network; CI may have one), and an empty
# cache: small.en is nowhere to be had.
NO_HUB = {"HF_HUB_OFFLINE": "1"}


def test_a_model_that_cannot_be_had_fails_once_naming_the_offline_models(tmp_path: Path) -> None:
    try:
        reply = hws_server(
            "--model", "small.en", "--model-cache-dir", str(tmp_path), "--log-format", "json", env=NO_HUB
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the server went on retrying a model it cannot have: {exc.stderr!r}"[-3000:]) from None
    assert reply.returncode == 2, reply.stderr[-3000:]
    *log, last = reply.stderr.strip().splitlines()
    assert [json.loads(line)["event"] for line in log].count("model_load_failed") == 1
    assert last.startswith(
        f"hws-server: --model small.en cannot be loaded (ModelUnavailable: small.en is not in {tmp_path}, and the"
        " Hugging Face hub cannot be reached); the models that need no network: tiny.en-embedded, base-embedded"
    ), last
    assert "tiny.en-embedded" in last and "base-embedded" in last and "--model-load-wait true" in last, last
    assert len(last.replace(str(tmp_path), "CACHE")) < 300 and "Traceback" not in reply.stderr  # the path varies


def test_asked_to_wait_a_model_that_cannot_be_had_is_retried(tmp_path: Path, log_dir: Path) -> None:
    args = ["--model", "small.en", "--model-cache-dir", str(tmp_path), "--model-load-wait", "true"]
    server = ServerProcess(args=args, env=NO_HUB)
    server.start(log_dir, wait=False)
    try:
        deadline = time.monotonic() + 30
        while server.log().count('"event": "model_load_failed"') < 2 and time.monotonic() < deadline:
            assert server.process is not None and server.process.poll() is None, server.log()[-3000:]
            time.sleep(0.2)
        assert server.log().count('"event": "model_load_failed"') >= 2, server.log()[-3000:]
        assert server.process is not None and server.process.poll() is None
    finally:
        server.stop()


def test_the_model_error_names_the_offline_models() -> None:
    reply = hws_server("--model", "tiny-en")
    assert reply.returncode == 2
    (line,) = reply.stderr.strip().splitlines()
    assert "invalid setting model" in line and "tiny.en-embedded" in line and "base-embedded" in line, line


# -- the README's grpcurl stream and make demo, run as written --------------------------------------------------
# grpcurl is not installable here; this stands in for it: `-d @` reads each message as it arrives on stdin, and
# each response is printed as protobuf's JSON mapping, as grpcurl prints it.
GRPCURL = """
import sys
import grpc
from google.protobuf import json_format
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb, transcriber_pb2_grpc as pb_grpc

def messages():
    for line in sys.stdin:
        yield json_format.Parse(line, pb.StreamingTranscribeRequest())

print('{"grpcurl": "a stream"}', flush=True)  # for the test: where each run's output starts
with grpc.insecure_channel(sys.argv[1]) as channel:
    for response in pb_grpc.TranscriberStub(channel).StreamingTranscribe(messages(), timeout=120):
        print(json_format.MessageToJson(response), flush=True)
"""


def json_objects(text: str) -> list[dict[str, object]]:
    decoder, objects, at = json.JSONDecoder(), [], 0
    while (at := len(text) - len(text[at:].lstrip())) < len(text):
        value, at = decoder.raw_decode(text, at)
        objects.append(value)
    return objects


def test_the_readme_grpcurl_stream_paced_gives_partials_and_leaves_nothing(
    server: ServerProcess, tmp_path: Path
) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"\n(\S*python - \S+ > jfk\.requests\.json <<'EOF'\n.*?)\n```\n", readme, re.S)
    assert block is not None
    stand_in = tmp_path / "grpcurl.py"
    stand_in.write_text(GRPCURL)
    script = block.group(1).replace(".venv/bin/python", sys.executable)
    script = script.replace("../shared/eval/", f"{EVAL_DIR}/").replace("localhost:50051", server.address)
    grpcurl = f'grpcurl() {{ "{sys.executable}" "{stand_in}" "${{@: -2:1}}"; }}\n'  # the address, before the method
    reply = subprocess.run(["bash", "-c", grpcurl + script], capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert reply.returncode == 0, reply.stderr
    assert not (ROOT / "jfk.requests.json").exists(), "the snippet left its messages in the checkout"
    runs: list[list[dict[str, object]]] = []
    for each in json_objects(reply.stdout):
        if "grpcurl" in each:
            runs.append([])
        elif "result" in each:
            runs[-1].append(each["result"])  # type: ignore[arg-type]
    assert len(runs) == 2, reply.stdout[-3000:]
    fast, paced = ([bool(result.get("isFinal")) for result in run] for run in runs)
    # As fast as grpcurl reads the file: the finals alone. At real-time pace: partials while the speech goes on.
    assert fast and all(fast), runs[0]
    assert paced.count(False) >= 3 and paced.count(True) == len(fast), runs[1]
    assert "fellow Americans" in str(runs[0][0].get("text")), runs[0]


def test_make_demo_leaves_no_log_behind(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "DEMO_PORT": str(free_port())}
    reply = subprocess.run(
        ["scripts/demo.sh", str(EVAL_DIR / "jfk.flac")], capture_output=True, text=True, cwd=ROOT, env=env, timeout=180
    )
    assert reply.returncode == 0, reply.stdout + reply.stderr
    assert "And so my fellow Americans" in reply.stdout, reply.stdout
    assert list(tmp_path.iterdir()) == [], "make demo left its server log behind"


# -- the Makefile and the README, read (a second install is too slow for the suite) ------------------------------
def recipe(makefile: str, target: str) -> str:
    found = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert found is not None, target
    return found.group(1)


def test_make_run_installs_only_the_server_and_says_each_step() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: \$\(STAMP\)$", makefile, re.M) and re.search(r"^demo: \$\(STAMP\)$", makefile, re.M)
    assert re.search(r"^test: \$\(TEST_STAMP\) infra-tools$", makefile, re.M)
    run, test = recipe(makefile, "$(STAMP)"), recipe(makefile, "$(TEST_STAMP)")
    assert "-c constraints.txt -e '.[server]'" in run and "dev" not in run and "base" not in run
    assert "-c constraints.txt -e '.[server,dev,base]'" in test
    pip = re.search(r"^PIP := (.*)$", makefile, re.M)
    assert pip is not None and "--quiet" not in pip.group(1) and " -q" not in pip.group(1), "pip would say nothing"
    for steps in (run, test):
        pip = [line for line in steps.splitlines() if "$(PIP)" in line]
        echoes = [line for line in steps.splitlines() if line.startswith("\t@echo ")]
        assert pip and len(echoes) >= len(pip), steps  # a line saying what each pip step does
    assert re.search(r"^\$\(TEST_STAMP\): \$\(STAMP\)$", makefile, re.M)


def test_the_readme_says_what_each_command_installs_how_big_and_how_long() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    block = commands.split("```sh\n", 1)[1].split("```", 1)[0]
    assert re.search(r"make run .*\d+ MB", block) and re.search(r"make test .*\d+ MB", block, re.S), block
    for package in ("prometheus", "haproxy", "espeak-ng"):
        assert package in block, package
    assert "11-12 min" in block and "root" in block
    assert "'.[server]'" in commands and "make install-test" in commands
    development = (ROOT / "docs" / "development.md").read_text()
    assert "du -sh" in development and "'.[server]'" in development
