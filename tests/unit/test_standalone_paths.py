"""Standalone state paths: a VM's directory is its own and lies inside the state dir, whatever
the YAML names it. A name that would escape (`../../tmp/evil`) or collide (`a`/`b_c` against
`a_b`/`c`) is refused with the field and the value before anything is written."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netplug.errors import InvalidField
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
