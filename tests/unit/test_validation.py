"""Contract validation without workers: the static pass, descriptions, score, report, CLI."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from plexisandbox._cli_validate import add_parser, run
from plexisandbox._limits import Limits
from plexisandbox._validation import (
    CATEGORIES,
    RULES,
    _schemacheck,
    apply_description,
    enforce,
    format_report,
    score,
    validate_static,
)
from plexisandbox._validation._facts import read_facts
from plexisandbox.errors import ContractViolation
from tests.conftest import EXAMPLES, TEST_MODULES

BROKEN = TEST_MODULES / "broken"
#: Every corpus run uses this operator maximum (limits_exceed_operator.py asks for more).
OPERATOR_MAX = Limits(memory_mb=1024)


def _expectation(path: Path) -> tuple[str, str, bool]:
    """(rule, category, sandboxed_only) from the corpus file's `# EXPECT:` header."""
    words = path.read_text().splitlines()[0].split()
    assert words[:2] == ["#", "EXPECT:"], f"{path.name} lacks an # EXPECT: header"
    return words[2], words[3], "sandboxed" in words[4:]


CORPUS = sorted(BROKEN.glob("*.py"))
STATIC_CORPUS = [p for p in CORPUS if not _expectation(p)[2]]


def _items(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [*report["violations"], *report["warnings"]]


def _rules(report: dict[str, Any]) -> set[str]:
    return {i["rule"] for i in _items(report)}


@pytest.fixture(autouse=True)
def _quick_schema_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # schema_check_failed.py holds a catastrophic regex: do not wait the default 10 s for it.
    monkeypatch.setattr(_schemacheck, "SCHEMA_CHECK_TIMEOUT", 2.0)


def test_corpus_is_large_and_covers_every_rule() -> None:
    expected = {_expectation(p)[0] for p in CORPUS} | {"interface.syntax-error"}
    assert len(CORPUS) >= 20
    assert expected == set(RULES), f"rules without a corpus module: {set(RULES) - expected}"


@pytest.mark.parametrize("path", STATIC_CORPUS, ids=lambda p: p.stem)
def test_broken_module_yields_exactly_its_rule(path: Path) -> None:
    rule, category, _ = _expectation(path)
    report = validate_static(str(path), max_limits=OPERATOR_MAX)
    assert _rules(report) == {rule}
    for item in _items(report):
        assert item["category"] == category == RULES[rule].category
        assert item["severity"] == RULES[rule].severity
        assert item["fix"]
        assert item["location"].startswith(f"{path}:")
    assert report["is_valid"] is (RULES[rule].severity != "critical")
    assert report["score"] == score(_items(report)) < 100


@pytest.mark.parametrize("path", STATIC_CORPUS, ids=lambda p: p.stem)
def test_broken_module_location_points_at_the_defect(path: Path) -> None:
    lines = path.read_text().splitlines()
    marked = [n for n, text in enumerate(lines, 1) if text.rstrip().endswith("# <- defect")]
    report = validate_static(str(path), max_limits=OPERATOR_MAX)
    found = {int(i["location"].rsplit(":", 1)[1]) for i in _items(report)}
    assert (set(marked) or {1}) & found


@pytest.mark.parametrize("path", [p for p in CORPUS if _expectation(p)[2]], ids=lambda p: p.stem)
def test_sandbox_only_defects_are_invisible_to_the_static_pass(path: Path) -> None:
    assert validate_static(str(path))["violations"] == []


def test_syntax_error_is_a_violation_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('"""Doc."""\n\nclass Broken(BaseModule):\n    def oops(self:\n')
    report = validate_static(str(bad))
    assert _rules(report) == {"interface.syntax-error"}
    assert report["violations"][0]["location"].startswith(f"{bad}:")
    assert report["is_valid"] is False


_MODULE_ROOT = (
    "from plexisandbox.interfaces import BaseModule\n\n"
    "class C0(BaseModule):\n"
    "    async def initialize(self): return True\n"
    "    def get_metadata(self): return {}\n"
    "    def get_required_permissions(self): return None\n"
)


def test_a_class_graph_is_walked_once_per_class(tmp_path: Path) -> None:
    """Each class names the two before it as bases: every path from the last one to
    BaseModule is ~10**12 of them; each class is merged once instead."""
    graph = tmp_path / "graph.py"
    classes = "".join(f"class C{k}(C{k - 1}, C{k - 2}): pass\n" for k in range(2, 80))
    graph.write_text(_MODULE_ROOT + "class C1(C0): pass\n" + classes)
    facts = read_facts(str(graph), "C79")
    assert facts.error is None
    assert facts.module_class is not None
    assert facts.module_class.concrete
    assert len(facts.candidates) == 80


@pytest.mark.parametrize(
    ("classes", "problem"),
    [
        # A chain deeper than the recursion limit (bases named before they are defined:
        # no import gets that far, the static pass reads it all the same).
        (
            "".join(f"class D{k}(D{k + 1}): pass\n" for k in range(3000))
            + "class D3000(C0): pass\n",
            "too deeply",
        ),
        # Each class inherits a base of 3000 methods: 3000 copies per class.
        (
            "class B(C0):\n"
            + "".join(f"    def m{i}(self): pass\n" for i in range(3000))
            + "".join(f"class D{k}(B): pass\n" for k in range(400)),
            "too many members",
        ),
    ],
    ids=["deep", "wide"],
)
def test_a_class_graph_past_the_analysis_bounds_is_a_violation(
    tmp_path: Path, classes: str, problem: str
) -> None:
    module = tmp_path / "classes.py"
    module.write_text(_MODULE_ROOT + classes)
    report = validate_static(str(module))
    assert _rules(report) == {"interface.syntax-error"}
    assert problem in report["violations"][0]["message"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.stem)
def test_example_modules_score_at_least_90_without_violations(path: Path) -> None:
    report = validate_static(str(path))
    assert report["violations"] == []
    assert report["is_valid"] is True
    assert report["score"] >= 90


def test_guide_examples_are_present() -> None:
    assert {"my_module.py", "example_module.py"} <= {p.name for p in EXAMPLES.glob("*.py")}


def test_report_has_the_seed_shape() -> None:
    report = validate_static(str(BROKEN / "undeclared_network.py"))
    assert {"is_valid", "score", "violations", "warnings"} <= set(report)
    assert isinstance(report["score"], float)
    assert 0 <= report["score"] <= 100
    for item in _items(report):
        assert {"severity", "category", "message", "rule", "location", "fix"} <= set(item)
        assert item["category"] in CATEGORIES
    json.dumps(report)  # CI prints it


def test_static_pass_never_executes_the_module(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    module = tmp_path / "sneaky.py"
    module.write_text(
        f'"""Writes a file when imported."""\nopen({str(sentinel)!r}, "w").close()\n'
        "import os\nos.system('true')\n"
    )
    report = validate_static(str(module))
    assert not sentinel.exists()
    assert "interface.no-module-class" in _rules(report)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        validate_static(str(tmp_path / "nope.py"))


def test_class_can_be_named_with_path_colon_class() -> None:
    report = validate_static(f"{BROKEN / 'several_module_classes.py'}:BrokenToo")
    assert report["violations"] == []
    assert report["class"] == "BrokenToo"


def test_naming_a_class_that_is_not_there_is_a_violation() -> None:
    report = validate_static(f"{EXAMPLES / 'echo.py'}:Nope")
    assert _rules(report) == {"interface.no-module-class"}
    assert "'Nope'" in report["violations"][0]["message"]


# -- score ----------------------------------------------------------------------------------
def _item(rule: str) -> dict[str, Any]:
    return {"rule": rule}


def test_score_subtracts_rule_weights_and_floors_at_zero() -> None:
    assert score([]) == 100.0
    assert score([_item("api.version-format")]) == 80.0
    assert score([_item("performance.blocking-call")]) == 95.0
    assert score([_item("docs.method-docstring")]) == 98.0
    many = [_item(r) for r in RULES if RULES[r].severity == "critical"]
    assert score(many) == 0.0


def test_score_counts_each_rule_at_most_three_times() -> None:
    assert score([_item("docs.method-docstring")] * 10) == 94.0


# -- descriptions from a worker -------------------------------------------------------------
def _description(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "class": "plexisandbox_module_echo.EchoModule",
        "name": "echo",
        "version": "1.0.0",
        "permissions": {"network_access": False, "capabilities": []},
        "schema": {"type": "object"},
        "metadata": {"description": "Echoes", "author": "me"},
        "methods": ["echo"],
        "api_version": "1.0.0",
        "subscriptions": [],
        "signatures": {
            "echo": {
                "exists": True,
                "callable": True,
                "params": [{"name": "value", "kind": "POSITIONAL_OR_KEYWORD", "required": False}],
                "is_async": True,
            }
        },
    }
    base.update(overrides)
    return base


@pytest.fixture
def echo_report() -> dict[str, Any]:
    return validate_static(str(EXAMPLES / "echo.py"))


@pytest.mark.parametrize("depth", [400, 900])
def test_annotations_nested_past_the_recursion_limit_are_reported(
    tmp_path: Path, depth: int
) -> None:
    """CPython compiles them; the checks read them with ast.unparse, which recursed past the
    limit (at 900 the walker does too) and raised RecursionError out of load()."""
    deep = "~" * depth + "0"
    module = tmp_path / "deep.py"
    module.write_text(
        (EXAMPLES / "echo.py")
        .read_text()
        .replace("value: Any = None)", f"value: {deep} = 0)")
        .replace("def get_metadata(self) -> dict[str, Any]", f"def get_metadata(self) -> {deep}")
    )
    report = apply_description(validate_static(str(module)), _description())
    rules = {item["rule"] for item in (*report["violations"], *report["warnings"])}
    if depth == 400:  # the walker reads it; the messages show a placeholder
        assert {"signature.return-annotation", "api.param-not-serializable"} <= rules
    else:
        assert rules == {"interface.syntax-error"}


def test_clean_description_keeps_a_clean_report(echo_report: dict[str, Any]) -> None:
    report = apply_description(echo_report, _description())
    assert report["is_valid"]
    assert report["checks"] == "static+sandboxed"
    assert report["description"]["name"] == "echo"


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        (
            {"methods": ["echo", "ghost"], "signatures": {"ghost": {"exists": False}}},
            "api.method-missing",
        ),
        (
            {"methods": ["x"], "signatures": {"x": {"exists": True, "callable": False}}},
            "api.method-not-callable",
        ),
        (
            {
                "signatures": {
                    "echo": {
                        "exists": True,
                        "callable": True,
                        "params": [{"name": "a", "kind": "VAR_POSITIONAL", "required": False}],
                    }
                }
            },
            "api.unreachable-params",
        ),
        ({"api_version": "v-next!"}, "api.version-format"),
        ({"metadata": {"description": "x"}}, "docs.metadata-author"),
        (
            {"permissions": {"external_api_access": True, "capabilities": ["external_api"]}},
            "security.external-api-without-network",
        ),
        (
            {"permissions": {"admin_access": True, "capabilities": []}},
            "security.admin-without-justification",
        ),
        ({"schema": {"type": "object", "required": ["k"]}}, "config.required-not-in-properties"),
        ({"schema": {"type": "string"}}, "config.schema-not-object"),
    ],
)
def test_description_values_drive_the_declared_checks(
    echo_report: dict[str, Any], overrides: dict[str, Any], rule: str
) -> None:
    report = apply_description(echo_report, _description(**overrides))
    assert rule in _rules(report)


def test_admin_with_justification_is_accepted(echo_report: dict[str, Any]) -> None:
    meta = {"description": "d", "author": "a", "admin_justification": "moderates channels"}
    perms = {"admin_access": True, "capabilities": []}
    report = apply_description(echo_report, _description(metadata=meta, permissions=perms))
    assert report["is_valid"]


def test_limits_from_metadata_are_checked_against_the_operator_maximum(
    echo_report: dict[str, Any],
) -> None:
    meta = {"description": "d", "author": "a", "limits": {"memory_mb": 512}}
    ok = apply_description(echo_report, _description(metadata=meta))
    assert ok["is_valid"]
    capped = apply_description(
        echo_report, _description(metadata=meta), max_limits=Limits(memory_mb=256)
    )
    assert _rules(capped) == {"performance.limits-exceed-operator"}
    assert "memory_mb=512" in capped["violations"][0]["message"]


def test_description_without_source_file_runs_the_declared_checks() -> None:
    report = apply_description({"module": "pkg.mod:Thing"}, _description(api_version="??"))
    assert _rules(report) == {"api.version-format"}
    assert report["violations"][0]["location"] == "pkg.mod:Thing"


# -- finer static behaviour -----------------------------------------------------------------
_MODULE = '''"""Doc."""
import time
import socket
from plexisandbox.interfaces import BaseModule, ModulePermissions


class M(BaseModule):
    """Doc."""

    async def initialize(self) -> bool:
        """Doc."""
        def helper() -> None:
            time.sleep(1)
        return True

    def get_metadata(self) -> dict:
        """Doc."""
        return {"description": "d", "author": "a"}

    def get_required_permissions(self) -> ModulePermissions:
        """Doc."""
        return ModulePermissions(network_access=True)

    async def fetch(self, conn: bytes = b"") -> bytes:
        """Doc."""
        return await self.reader.recv(10)
'''


def test_awaited_calls_and_nested_sync_helpers_are_not_blocking(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(_MODULE)
    report = validate_static(str(path))
    assert report["violations"] == []
    assert report["warnings"] == []


def test_computed_permissions_wait_for_the_description(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(_MODULE.replace("ModulePermissions(network_access=True)", "self._perms()"))
    assert "security.undeclared-network" not in _rules(validate_static(str(path)))
    report = apply_description(
        validate_static(str(path)),
        _description(
            **{"class": "x.M"},
            methods=["fetch"],
            signatures={"fetch": {"exists": True, "callable": True, "params": []}},
        ),
    )
    assert "security.undeclared-network" in _rules(report)


def test_remote_refs_are_never_fetched() -> None:
    problems = _schemacheck.check_schema_isolated(
        {"type": "object", "properties": {"x": {"$ref": "http://192.0.2.1/s.json", "default": 1}}}
    )
    assert [p["rule"] for p in problems] == ["config.schema-invalid"]
    assert "Unresolvable" in problems[0]["message"]


# -- output and enforcement -----------------------------------------------------------------
def test_format_report_groups_by_category_with_locations() -> None:
    report = validate_static(str(BROKEN / "undeclared_network.py"))
    text = format_report(report, color=False)
    assert "INVALID" in text
    assert "security_compliance" in text
    assert re.search(r"undeclared_network\.py:\d+: imports socket", text)
    assert "\033[" not in text
    assert "\033[31m" in format_report(report, color=True)


def test_module_supplied_text_cannot_drive_the_terminal(echo_report: dict[str, Any]) -> None:
    report = apply_description(echo_report, _description(api_version="\x1b[2J\nforged line"))
    text = format_report(report, color=False)
    assert "\x1b" not in text
    assert "forged line" in text
    assert len(text.splitlines()) == 4  # verdict, category, item, fix


def test_enforce_passes_a_valid_report_and_refuses_violations() -> None:
    enforce(validate_static(str(EXAMPLES / "echo.py")), module="echo")
    report = validate_static(str(BROKEN / "process_spawn.py"))
    with pytest.raises(ContractViolation, match=r"security\.process-spawn") as info:
        enforce(report, module="spawner")
    assert info.value.report is report
    assert info.value.module == "spawner"
    assert "validate=False" in str(info.value)


# -- CLI ------------------------------------------------------------------------------------
def _cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["validate", *argv])


def test_cli_json_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = str(EXAMPLES / "echo.py"), str(BROKEN / "process_spawn.py")
    assert run(_cli("--static", "--json", good)) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert document["reports"][0]["is_valid"] is True
    assert run(_cli("--static", "--json", good, bad)) == 1
    document = json.loads(capsys.readouterr().out)
    assert [r["is_valid"] for r in document["reports"]] == [True, False]


def test_cli_min_score_fails_a_valid_but_weak_module(capsys: pytest.CaptureFixture[str]) -> None:
    weak = str(BROKEN / "blocking_call.py")  # one warning: 95
    assert run(_cli("--static", weak, "--min-score", "90")) == 0
    assert run(_cli("--static", weak, "--min-score", "99")) == 1
    assert "below --min-score 99" in capsys.readouterr().out


def test_cli_missing_module_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(_cli("--static", str(tmp_path / "missing.py"))) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_max_limit_option(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(BROKEN / "limits_exceed_operator.py")
    assert run(_cli("--static", path)) == 0
    assert run(_cli("--static", path, "--max-limit", "memory_mb=1024")) == 1
    assert run(_cli("--static", path, "--max-limit", "bogus=1")) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err


def test_docs_list_every_rule_with_its_weight() -> None:
    doc = (TEST_MODULES.parent.parent / "docs" / "validation.md").read_text()
    for rule in RULES.values():
        row = re.search(rf"\| `{re.escape(rule.id)}` \| (\w+) \| ([\d.]+) \|", doc)
        assert row, f"docs/validation.md does not list {rule.id}"
        assert (row.group(1), float(row.group(2))) == (rule.severity, rule.weight)


def test_a_flood_of_findings_keeps_at_most_a_few_items_per_rule(
    echo_report: dict[str, Any],
) -> None:
    """The description is module output: 10,000 missing methods (the most the host accepts)
    give MAX_ITEMS_PER_RULE items of the rule and a count of the rest, not 20,000 items."""
    from plexisandbox._validation._api import MAX_ITEMS_PER_RULE

    methods = [f"_{i:x}" for i in range(10_000)]
    report = apply_description(echo_report, _description(methods=methods, signatures={}))
    missing = [v for v in report["violations"] if v["rule"] == "api.method-missing"]
    assert len(missing) == MAX_ITEMS_PER_RULE
    assert report["omitted"]["api.method-missing"] == 10_000 - MAX_ITEMS_PER_RULE
