"""Standalone state: a VM's directory is its own and lies inside the state dir, whatever the
YAML names it — a name that would escape (`../../tmp/evil`) or collide (`a`/`b_c` against
`a_b`/`c`) is refused with the field and the value before anything is written — and of
several `up`s of one VM exactly one claims it."""

from __future__ import annotations

import json
import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netplug.errors import InvalidConfig, InvalidField
from runtime.standalone import Standalone


@pytest.fixture(scope="module")
def standalone(tmp_path_factory) -> Standalone:
    return Standalone(str(tmp_path_factory.mktemp("state")))


@pytest.mark.parametrize("namespace, name, field", [
    ("default", "../../../../tmp/evil", "metadata.name"),
    ("default", "a/b", "metadata.name"),
    ("default", "..", "metadata.name"),
    ("default", "", "metadata.name"),
    ("default", "b_c", "metadata.name"),     # would share a_b/c's directory
    ("a_b", "c", "metadata.namespace"),
    ("..", "x", "metadata.namespace"),
    ("default", "x" * 64, "metadata.name"),
    ("default", "My-VM", "metadata.name"),
])
def test_a_name_that_could_escape_or_collide_is_refused(standalone, namespace, name, field):
    with pytest.raises(InvalidField) as refused:
        standalone.paths(namespace, name)
    assert refused.value.field == field
    assert refused.value.value in (namespace, name)


NAMEISH = st.text(alphabet="ab-._/0A ", min_size=0, max_size=12)


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(namespace=NAMEISH, name=NAMEISH)
def test_every_accepted_name_gets_its_own_directory_inside_vms(standalone, namespace, name):
    try:
        root = standalone.paths(namespace, name).root
    except InvalidField:
        return
    vms = os.path.join(standalone.state_dir, "vms")
    assert os.path.dirname(os.path.realpath(root)) == os.path.realpath(vms)
    # the directory name gives the pair back: two pairs never share one
    assert os.path.basename(root).split("_", 1) == [namespace, name]


def test_of_ups_racing_for_one_vm_exactly_one_claims_it(standalone):
    paths = standalone.paths("default", "racer")
    start, outcomes = threading.Barrier(8), {}

    def claim(n: int) -> None:
        start.wait()
        try:
            standalone._claim(paths, {"name": "racer", "namespace": "default", "by": n})
            outcomes[n] = "won"
        except InvalidConfig as exc:
            outcomes[n] = exc.msg
    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (winner,) = [n for n, outcome in outcomes.items() if outcome == "won"]
    assert all("already up" in outcome for n, outcome in outcomes.items() if n != winner)
    assert json.loads(open(paths.record).read())["by"] == winner  # the losers wrote nothing over it
    assert os.listdir(paths.root) == ["record.json"]
    assert os.listdir(os.path.dirname(paths.root)) == ["default_racer"]  # no claim file left behind
