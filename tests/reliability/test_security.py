"""Security properties of the code itself: no command ever runs through a shell, and bandit
finds nothing of medium severity or above in what runs on a node (netplug/, runtime/,
cni/netplug); each `# nosec` names the one check it silences and says why.

The rest of issue 8's security list is tested where the thing lives: hostile input (netns
paths outside /proc and /run/netns, interface names with "/", "..", spaces or over 15
characters, configs over 1 MiB, deeply nested or non-UTF-8 JSON) in
tests/functional/test_bad_input.py and by the fuzzer (test_fuzz_cni.py); the agent socket in
test_agent_socket.py; what a guest can reach in test_guest_isolation.py.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "__pycache__", "node_modules", ".hypothesis"}
#: what bandit scans: the code that runs on a node
NODE_CODE = ["netplug", "runtime", "cni/netplug"]
#: calls that always hand their command to /bin/sh
SHELL_FUNCTIONS = {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                   "commands.getoutput", "popen2.popen2"}
SHELLS = {"sh", "bash", "dash", "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash", "/bin/dash"}


def python_sources() -> list[Path]:
    """Every Python file of the repository: *.py, and scripts whose #! line runs python."""
    found = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = Path(root) / name
            if name.endswith(".py"):
                found.append(path)
            elif os.access(path, os.X_OK) and path.is_file():
                with open(path, "rb") as f:
                    if re.match(rb"#!.*python", f.readline()):
                        found.append(path)
    return sorted(found)


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def shell_uses(source: str, filename: str = "<source>") -> list[str]:
    """Each place that runs a command through a shell: shell= anything but False, the os and
    subprocess functions that always use one, and an argv that starts a shell with -c."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if not isinstance(node, ast.Call):
            continue
        where = f"{filename}:{node.lineno}"
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                found.append(f"{where}: shell={ast.unparse(keyword.value)}")
        if _dotted(node.func) in SHELL_FUNCTIONS:
            found.append(f"{where}: {_dotted(node.func)}()")
        argv = node.args[0] if node.args and isinstance(node.args[0], (ast.List, ast.Tuple)) else None
        if argv is not None:
            words = [e.value if isinstance(e, ast.Constant) else None for e in argv.elts]
            for i, word in enumerate(words[:-1]):
                if isinstance(word, str) and os.path.basename(word) in {os.path.basename(s) for s in SHELLS} \
                        and words[i + 1] == "-c":
                    found.append(f"{where}: argv runs {word} -c")
    return found


def test_the_scanner_finds_each_way_to_a_shell():
    samples = {
        "subprocess.run(cmd, shell=True)": 1,
        "subprocess.Popen(cmd, shell=1)": 1,
        "subprocess.run(cmd, shell=flag)": 1,
        "subprocess.run(['ls'], shell=False)": 0,
        "os.system('ls')": 1,
        "os.popen('ls')": 1,
        "subprocess.getoutput('ls')": 1,
        "subprocess.run(['unshare', '-n', 'sh', '-c', script])": 1,
        "subprocess.run(['/bin/bash', '-c', script])": 1,
        "subprocess.run(['iperf3', '-c', host])": 0,
        "subprocess.run([sys.executable, '-c', code])": 0,
    }
    for source, count in samples.items():
        assert len(shell_uses(source)) == count, source


def test_no_command_runs_through_a_shell():
    sources = python_sources()
    assert REPO / "cni" / "netplug" in sources and REPO / "netplug" / "apply.py" in sources
    found = [use for path in sources for use in shell_uses(path.read_text(), str(path.relative_to(REPO)))]
    assert found == [], "\n".join(found)


def test_bandit_finds_nothing_of_medium_severity_or_above():
    done = subprocess.run([sys.executable, "-m", "bandit", "-q", "-r", "--severity-level", "medium",
                           "-f", "json", *NODE_CODE], cwd=REPO, capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout)
    assert report["errors"] == [], report["errors"]
    scanned = {os.path.normpath(name) for name in report["metrics"]} - {"_totals"}
    assert "cni/netplug" in scanned and len(scanned) > 20, scanned
    issues = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_severity']}: {r['issue_text']}"
              for r in report["results"]]
    assert issues == [], "\n".join(issues)


def test_every_nosec_names_its_check_and_says_why():
    """A bare `# nosec` silences every check on its line; each one here names the check it
    silences and says why, as `# nosec B104  # why` (bandit reads the IDs up to the next #)."""
    bad = []
    for top in NODE_CODE:
        for path in [REPO / top] if (REPO / top).is_file() else sorted((REPO / top).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                comment = line.partition("#")[2]
                if "nosec" in comment and not re.search(r"nosec B\d{3}(,\s*B\d{3})*\s*#\s*\S.{8,}", comment):
                    bad.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert bad == [], "\n".join(bad)
