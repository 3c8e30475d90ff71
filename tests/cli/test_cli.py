"""The ``ratchet`` command as a user meets it: from any folder, config found by a search
order, mistakes told in one line, plain help."""

from __future__ import annotations

import json

import typer
import yaml
from typer.testing import CliRunner

from ratchet.core.config import BUILTIN_CONFIG, load_config
from ratchet_cli.main import app

runner = CliRunner()


def init_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "init", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_init_from_a_folder_outside_the_repository(project):
    result = runner.invoke(app, ["init", "--schema-from", "sample.csv", "--target", "target", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    schema, config = project.home / "schema.yaml", project.home / "ratchet.yaml"
    assert out["schema"] == str(schema) and schema.is_file()
    assert out["config"] == str(config) and out["config_written"] is True
    assert out["config_files"] == [str(BUILTIN_CONFIG)]  # nothing but the built-in defaults in force
    assert len(out["columns"]) == 30 and out["target"] == "target"
    # a short file for review that restates the defaults in force, not a copy of everything
    text = config.read_text()
    assert text.startswith("#") and 15 < len(text.splitlines()) < 45
    assert load_config([config]) == load_config([])
    assert set(yaml.safe_load(text)) < set(load_config([]).model_dump())
    # a user's edit survives the next init
    config.write_text(text.replace("model_name: ratchet-classifier", "model_name: cancer"))
    again = init_json()
    assert again["config_written"] is False and again["model"] == "cancer"
    assert again["config_files"] == [str(BUILTIN_CONFIG), str(config)]


def test_the_config_search_order(project, monkeypatch):
    home_file, cwd_file = project.home / "ratchet.yaml", project.folder / "ratchet.yaml"
    env_file, flag_file = project.folder / "env.yaml", project.folder / "flag.yaml"
    project.home.mkdir()
    for path, name in ((home_file, "from-home"), (env_file, "from-env"), (flag_file, "from-flag")):
        path.write_text(f"model_name: {name}\n")
    assert init_json()["model"] == "from-home"
    cwd_file.write_text("model_name: from-cwd\ntune: {trials: 3}\n")
    out = init_json()
    assert out["model"] == "from-cwd" and out["config_files"] == [str(BUILTIN_CONFIG), str(cwd_file)]
    # merged over the built-in defaults: what the file does not name keeps its default
    cfg = load_config()
    assert cfg.tune.trials == 3 and cfg.tune.search_space == load_config([]).tune.search_space
    assert init_json("--config", str(flag_file))["model"] == "from-flag"  # --config beats ./ratchet.yaml
    monkeypatch.setenv("RATCHET_CONFIG", str(env_file))  # (the --config above exported its own)
    assert init_json()["model"] == "from-env"  # RATCHET_CONFIG beats ./ratchet.yaml
    assert init_json("--config", str(flag_file))["model"] == "from-flag"  # --config beats RATCHET_CONFIG


def test_the_profile_overlay_comes_from_the_package(project, monkeypatch):
    monkeypatch.setenv("RATCHET_PROFILE", "cluster")
    assert load_config().data.backend == "lakefs"
    (project.folder / "ratchet.yaml").write_text("data: {backend: embedded}\n")
    assert load_config().data.backend == "embedded"  # the project's file has the last word


def one_line_error(result, *needles: str) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_bad_config_key_is_one_line(project):
    (project.folder / "ratchet.yaml").write_text("train:\n  learning_rat: 0.01\n")
    line = one_line_error(project.run("init"), "ratchet.yaml", "train.learning_rat", "learning_rate")
    assert line.startswith("error: ")


def test_a_missing_config_file_is_one_line(project):
    one_line_error(project.run("--config", "nope.yaml", "init"), "nope.yaml")
    one_line_error(project.run("init", RATCHET_CONFIG="nope.yaml"), "nope.yaml")


def test_an_unknown_target_column_is_one_line(project):
    one_line_error(project.run("init", "--schema-from", "sample.csv", "--target", "diagnosis"), "'diagnosis'")
    one_line_error(project.run("init", "--schema-from", "nope.csv", "--target", "target"), "nope.csv")


def test_a_bad_home_is_one_line(project):
    not_a_folder = project.folder / "home-file"
    not_a_folder.write_text("")
    one_line_error(project.run("--home", str(not_a_folder), "status"), str(not_a_folder), "not a folder")


def test_json_errors_keep_stdout_one_object(project):
    result = project.run("--config", "nope.yaml", "status", "--json")
    one_line_error(result, "nope.yaml")
    assert json.loads(result.stdout) == {"error": "config file not found: nope.yaml", "type": "FileNotFoundError"}


def test_no_schema_stops_before_any_flow_runs(project):
    assert project.run("init").returncode == 0
    result = project.run("ingest", "batch-1.csv")
    one_line_error(result, "no schema", "ratchet init")
    assert "Flow run" not in result.stderr


def test_debug_shows_the_traceback(project):
    for result in (
        project.run("--debug", "--config", "nope.yaml", "init"),
        project.run("--config", "nope.yaml", "init", RATCHET_DEBUG="1"),
    ):
        assert result.returncode == 1
        assert "Traceback (most recent call last)" in result.stderr
        assert "FileNotFoundError: config file not found: nope.yaml" in result.stderr


def commands(group: typer.Typer) -> list[list[str]]:
    def walk(cmd, path):
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(group), []))


def test_help_is_plain_text():
    paths = commands(app)
    assert ["init"] in paths and ["data", "branch", "create"] in paths and len(paths) > 20
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: " in result.output
        assert "`" not in result.output, (path, [line for line in result.output.splitlines() if "`" in line])
        assert "╭" not in result.output  # no rich panels either


def test_init_options_reach_the_schema_inference(project):
    result = runner.invoke(app, [
        "init", "--schema-from", "sample.csv", "--target", "target",
        "--ignore", "mean radius,mean texture", "--ignore", "worst area", "--task", "binary",
    ])
    assert result.exit_code == 0, result.output
    for column in ("mean radius", "mean texture", "worst area"):
        assert f"ignored: {column} (" in result.stdout
    assert "schema: " in result.stdout and "(27 features)" in result.stdout
    columns = {c["name"]: c for c in yaml.safe_load((project.home / "schema.yaml").read_text())["columns"]}
    assert {n for n, c in columns.items() if c["role"] == "ignore"} == {"mean radius", "mean texture", "worst area"}
    # an unknown column is named in one line, like any other mistake
    one_line_error(
        project.run("init", "--schema-from", "sample.csv", "--target", "target", "--force", "--ignore", "radius"),
        "'radius'",
    )
